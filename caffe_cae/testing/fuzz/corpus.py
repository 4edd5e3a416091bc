"""The seed files every fuzz case starts from: a small convolutional auto-encoder with switches
(the papers' Model 3 in miniature), its data, weights, snapshots, codes and ONNX export.

:func:`seed_files` builds them once, as ``{relative path: bytes}``; a case writes them into a
fresh folder with one of them replaced by a mutant.
"""
from __future__ import annotations

import functools
import io
import os
import tempfile

import numpy as np

BATCH = 4
SIDE = 8

_LAYERS = """\
layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
  convolution_param { num_output: 2 kernel_size: 3 weight_filler { type: "xavier" } } }
layer { name: "sig1en" type: "Sigmoid" bottom: "conv1" top: "conv1" }
layer { name: "pool1" type: "Pooling" bottom: "conv1" top: "pool1" top: "pool1_mask"
  pooling_param { pool: MAX kernel_size: 2 stride: 2 } }
layer { name: "ip2encode" type: "InnerProduct" bottom: "pool1" top: "ip2encode"
  inner_product_param { num_output: 2 weight_filler { type: "gaussian" std: 0.5 } } }
layer { name: "ip1decode" type: "InnerProduct" bottom: "ip2encode" top: "ip1decode"
  inner_product_param { num_output: 18 weight_filler { type: "xavier" } } }
layer { name: "reshape" type: "Reshape" bottom: "ip1decode" top: "ip1decodesh"
  reshape_param { shape { dim: 0 dim: 2 dim: 3 dim: 3 } } }
layer { name: "unpool1" type: "Unpooling" bottom: "ip1decodesh" bottom: "pool1_mask" top: "unpool1"
  unpooling_param { unpool: MAX kernel_size: 2 stride: 2 unpool_size: 6 } }
layer { name: "deconv1neur" type: "Deconvolution" bottom: "unpool1" top: "deconv1neur"
  convolution_param { num_output: 1 kernel_size: 3 weight_filler { type: "xavier" } } }
layer { name: "deconv1neursig" type: "Sigmoid" bottom: "deconv1neur" top: "deconv1neursig" }
"""

#: the training net: HDF5Data from the list file, a cross-entropy loss against the input
TRAIN_NET = f"""name: "tiny_cae"
layer {{ name: "data" type: "HDF5Data" top: "data" include {{ phase: TRAIN }}
  hdf5_data_param {{ source: "train.txt" batch_size: {BATCH} }} }}
layer {{ name: "data" type: "HDF5Data" top: "data" include {{ phase: TEST }}
  hdf5_data_param {{ source: "test.txt" batch_size: {BATCH} }} }}
{_LAYERS}layer {{ name: "loss" type: "SigmoidCrossEntropyLoss" bottom: "deconv1neur" bottom: "data" top: "loss" }}
"""

#: the same layers fed by an Input layer (a deploy net)
DEPLOY_NET = f"""name: "tiny_cae"
layer {{ name: "data" type: "Input" top: "data" input_param {{ shape {{ dim: 1 dim: 1 dim: {SIDE} dim: {SIDE} }} }} }}
{_LAYERS}"""

SOLVER = """net: "train.prototxt"
test_iter: 1
test_interval: 2
base_lr: 0.01
lr_policy: "fixed"
momentum: 0.9
display: 1
max_iter: 2
snapshot: 2
snapshot_prefix: "snap"
random_seed: 1
"""

#: a Data layer reading an LMDB of Datums, with a mean file
LMDB_NET = """name: "tiny_lmdb"
layer { name: "data" type: "Data" top: "data" top: "label" transform_param { mean_file: "mean.binaryproto" scale: 0.0039 }
  data_param { source: "lmdb" batch_size: 4 backend: LMDB } }
layer { name: "ip" type: "InnerProduct" bottom: "data" top: "ip" inner_product_param { num_output: 3 } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip" bottom: "label" top: "loss" }
"""

#: a V1 (``layers {}``) net, what ``migrate`` upgrades
LEGACY_NET = f"""name: "legacy"
input: "data"
input_dim: 1 input_dim: 1 input_dim: {SIDE} input_dim: {SIDE}
layers {{ name: "conv1" type: CONVOLUTION bottom: "data" top: "conv1"
  convolution_param {{ num_output: 2 kernel_size: 3 }} }}
layers {{ name: "ip" type: INNER_PRODUCT bottom: "conv1" top: "ip" inner_product_param {{ num_output: 2 }} }}
"""


def _hdf5_bytes(writer) -> bytes:
    import h5py

    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "f.h5")
        with h5py.File(path, "w") as handle:
            writer(handle)
        with open(path, "rb") as f:
            return f.read()


def data_arrays(rows: int = 12, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {"data": rng.random((rows, 1, SIDE, SIDE), dtype=np.float32),
            "label": (np.arange(rows) % 3).astype(np.float32)}


def hdf5_from_arrays(arrays: dict, attrs: dict | None = None) -> bytes:
    def write(handle):
        for name, value in arrays.items():
            handle.create_dataset(name, data=value)
        for key, value in (attrs or {}).items():
            handle.attrs[key] = value

    return _hdf5_bytes(write)


@functools.lru_cache(maxsize=1)
def seed_files() -> dict[str, bytes]:
    """Every seed file, built with the project's own writers (so they are what users have)."""
    from caffe_cae import Net
    from caffe_cae.experiments import encode
    from caffe_cae.netgraph.logs import quiet_loggers
    from caffe_cae.onnx import export, save
    from caffe_cae.solvers import get_solver

    files: dict[str, bytes] = {
        "train.prototxt": TRAIN_NET.encode(), "deploy.prototxt": DEPLOY_NET.encode(),
        "solver.prototxt": SOLVER.encode(), "legacy.prototxt": LEGACY_NET.encode(),
        "train.txt": b"data.h5\n", "test.txt": b"data.h5\n",
        "data.h5": hdf5_from_arrays(data_arrays()),
        "lmdb.prototxt": LMDB_NET.encode(),
        **lmdb_files(),
    }
    cwd = os.getcwd()
    with tempfile.TemporaryDirectory() as tmp, quiet_loggers("caffe_cae"):
        try:
            os.chdir(tmp)
            write_files(".", files)
            solver = get_solver("solver.prototxt")
            solver.step(2)
            solver.snapshot()
            solver.param.snapshot_format = solver.param.HDF5
            solver.snapshot()
            Net("deploy.prototxt", seed=1).save_hdf5("deploy.caffemodel.h5")
            save(export("deploy.prototxt", "snap_iter_2.caffemodel", outputs=["ip2encode", "deconv1neursig"]),
                 "model.onnx")
            codes, labels, switches = encode.encode_h5("train.prototxt", "snap_iter_2.caffemodel", "data.h5",
                                                       ["ip2encode"], batch_size=BATCH)
            encode.write_codes("codes.h5", codes, labels.astype(np.int64) if labels is not None else None,
                               switches=switches)
            for name in ("snap_iter_2.caffemodel", "snap_iter_2.solverstate", "snap_iter_2.caffemodel.h5",
                         "snap_iter_2.solverstate.h5", "deploy.caffemodel.h5", "model.onnx", "codes.h5"):
                with open(name, "rb") as f:
                    files[name] = f.read()
        finally:
            os.chdir(cwd)
    return files


def lmdb_files(rows: int = 12) -> dict[str, bytes]:
    """``lmdb/data.mdb`` (raw uint8 Datums 1 x 8 x 8, labels 0..2) and its mean file."""
    import lmdb

    from caffe_cae.proto import caffe_pb2

    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, (rows, 1, SIDE, SIDE), dtype=np.uint8)
    with tempfile.TemporaryDirectory() as tmp:
        env = lmdb.open(os.path.join(tmp, "db"), map_size=1 << 22, subdir=True)
        with env.begin(write=True) as txn:
            for i, image in enumerate(images):
                datum = caffe_pb2.Datum(channels=1, height=SIDE, width=SIDE, data=image.tobytes(), label=i % 3)
                txn.put(b"%08d" % i, datum.SerializeToString())
        env.close()
        with open(os.path.join(tmp, "db", "data.mdb"), "rb") as f:
            data = f.read()
    mean = caffe_pb2.BlobProto(num=1, channels=1, height=SIDE, width=SIDE)
    mean.data.extend(images.mean(axis=0).ravel().astype(np.float32).tolist())
    return {"lmdb/data.mdb": data, "mean.binaryproto": mean.SerializeToString()}


def write_files(folder: str, files: dict[str, bytes]) -> None:
    for name, content in files.items():
        path = os.path.join(folder, name)
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        with open(path, "wb") as f:
            f.write(content)


__all__ = ["seed_files", "write_files", "hdf5_from_arrays", "data_arrays", "io"]
