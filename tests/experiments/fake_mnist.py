"""A tiny fake MNIST (random pixels, labels 0..9 in turn) with its own checksum spec."""
import gzip
import hashlib
import pickle

import numpy as np

from caffe_cae.experiments import mnist


def fake_splits(seed=0, counts=(("train", 30), ("test", 20))):
    rng = np.random.default_rng(seed)
    out = {}
    for split, n in counts:
        images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        labels = (np.arange(n) % 10).astype(np.uint8)
        out[split] = (images, labels)
    return out


def fake_spec(splits, **overrides):
    idx_md5, gz_md5 = {}, {}
    for (split, kind), name in mnist.IDX_NAMES.items():
        array = splits[split][0 if kind == "images" else 1]
        idx_md5[name] = hashlib.md5(mnist.to_idx(array)).hexdigest()
        gz_md5[name] = hashlib.md5(gzip.compress(mnist.to_idx(array), mtime=0)).hexdigest()
    fields = dict(counts={s: len(v[1]) for s, v in splits.items()}, idx_md5=idx_md5, gz_md5=gz_md5,
                  pkl_sha256=None, wheel_sha256=None)
    fields.update(overrides)
    return mnist.MnistSpec(**fields)


def write_idx_dir(folder, splits, gz=False):
    folder.mkdir(parents=True, exist_ok=True)
    for (split, kind), name in mnist.IDX_NAMES.items():
        data = mnist.to_idx(splits[split][0 if kind == "images" else 1])
        if gz:
            (folder / (name + ".gz")).write_bytes(gzip.compress(data, mtime=0))
        else:
            (folder / name).write_bytes(data)
    return folder


def pkl_bytes(splits):
    (tx, ty), (ex, ey) = splits["train"], splits["test"]
    to_float = lambda x: (x.reshape(len(x), -1).astype(np.float32) / 256)  # noqa: E731
    parts = ((to_float(tx[:20]), ty[:20].astype(np.int64)), (to_float(tx[20:]), ty[20:].astype(np.int64)),
             (to_float(ex), ey.astype(np.int64)))
    return gzip.compress(pickle.dumps(parts), mtime=0)


