"""Reading HDF5 files that may be corrupt, truncated or oddly typed, as Caffe's readers would.

Every read goes through :func:`read_dataset` (or :func:`check_dataset` before a partial read):
the object must be a dataset of float or integer numbers (Caffe's ``hdf5_load_nd_dataset``
refuses every other type class: strings, booleans (an HDF5 enum), complex numbers and records
(compounds)), its element count within Caffe's INT_MAX and the memory budget, and its declared
size backed by what the file stores (a few-KB file cannot hold a 37 GiB dataset; deflate packs at
most 1032:1).  Any failure inside h5py while reading (a bad checksum, a truncated file, a broken
B-tree) becomes one :class:`CaffeCaeError` naming the file and the object.
"""
from __future__ import annotations

import contextlib
import os

import numpy as np

from caffe_cae.errors import CaffeCaeError
from caffe_cae.fileio import one_line, open_hdf5
from caffe_cae.limits import check_allocation, element_count, human_bytes

__all__ = ["open_hdf5", "hdf5_errors", "check_dataset", "read_dataset", "read_scalar", "read_string",
           "dataset_or_error", "group_or_error"]

#: the most a deflate-compressed dataset can expand (zlib's maximum ratio is about 1032:1)
MAX_EXPANSION = 1100
#: declared sizes up to this are never compared with what is stored (fill values, tiny files)
UNCHECKED_BYTES = 1 << 20


def _raised_in_h5py(err: BaseException) -> bool:
    tb = err.__traceback__
    while tb is not None:
        if f"{os.sep}h5py{os.sep}" in tb.tb_frame.f_code.co_filename:
            return True
        tb = tb.tb_next
    return False


@contextlib.contextmanager
def hdf5_errors(path, what: str = "HDF5 file"):
    """Turn exceptions raised inside h5py (a corrupt file) into one line naming ``path``."""
    try:
        yield
    except CaffeCaeError:
        raise
    except (OSError, RuntimeError, KeyError, ValueError, TypeError, AttributeError, SystemError) as err:
        if not _raised_in_h5py(err):
            raise
        raise CaffeCaeError(f"{path}: {what} is corrupt or unreadable ({one_line(err)})") from None


def describe_dtype(dtype: np.dtype) -> str:
    kind = dtype.kind
    if kind == "b":
        return "booleans"
    if kind == "c":
        return "complex numbers"
    if kind in "SUO":
        return "strings" if kind != "O" or _is_string_dtype(dtype) else "variable-length objects"
    if kind == "V":
        return "records (a compound type)" if dtype.names else "opaque bytes"
    return f"{dtype}"


def _is_string_dtype(dtype) -> bool:
    import h5py

    return h5py.check_string_dtype(dtype) is not None


def group_or_error(handle, name: str, path, what: str = "HDF5 file"):
    """The group ``name`` of an open file, or an error naming the file (missing or not a group)."""
    import h5py

    with hdf5_errors(path):
        if name not in handle:
            raise CaffeCaeError(f"{path}: {what} has no {handle.name.rstrip('/')}/{name} group")
        obj = handle[name]
        if not isinstance(obj, h5py.Group):
            raise CaffeCaeError(f"{path}: {what}: '{obj.name}' is a dataset, expected a group")
        return obj


def dataset_or_error(handle, name: str, path):
    """The dataset ``name`` of an open file or group, or an error naming the file."""
    import h5py

    with hdf5_errors(path):
        if name not in handle:
            raise CaffeCaeError(f"{path}: no dataset '{name}'")
        obj = handle[name]
        if not isinstance(obj, h5py.Dataset):
            raise CaffeCaeError(f"{path}: '{obj.name.lstrip('/') or name}' is a group, expected a dataset")
        return obj


def check_dataset(dataset, path, rows: int | None = None, itemsize: int = 4) -> tuple[int, ...]:
    """Validate a dataset before reading (all of it, or its first ``rows``); its shape.

    Numbers only; within INT_MAX, the memory budget (as ``itemsize``-byte values) and what the
    file stores.
    """
    name = dataset.name.lstrip("/")
    with hdf5_errors(path):
        dtype, shape = dataset.dtype, tuple(int(d) for d in dataset.shape or ())
        if dataset.shape is None:
            raise CaffeCaeError(f"{path}: dataset '{name}' has no data (a null dataspace)")
        if dtype.kind not in "fiu":
            raise CaffeCaeError(f"{path}: dataset '{name}' holds {describe_dtype(dtype)}; Caffe reads float or "
                                f"integer data")
        count = element_count(shape)
        declared = count * dtype.itemsize
        stored = dataset.id.get_storage_size()
    if declared > MAX_EXPANSION * stored + UNCHECKED_BYTES:
        raise CaffeCaeError(f"{path}: dataset '{name}' declares {human_bytes(declared)} ({list(shape)}) but the file "
                            f"stores {human_bytes(stored)} of it: incomplete or corrupt")
    wanted = count if rows is None or not shape else element_count((min(rows, shape[0]),) + shape[1:])
    check_allocation(wanted, max(itemsize, 1), f"{path}: dataset '{name}' {list(shape)}")
    return shape


def read_dataset(dataset, path, dtype=np.float32, rows: slice | None = None) -> np.ndarray:
    """The dataset's values (or ``rows`` of the first axis) as ``dtype``, validated first."""
    count_rows = None
    if rows is not None and dataset.shape:
        start, stop, _ = rows.indices(int(dataset.shape[0]))
        count_rows = max(0, stop - start)
    check_dataset(dataset, path, rows=count_rows, itemsize=np.dtype(dtype).itemsize)
    with hdf5_errors(path, f"dataset '{dataset.name.lstrip('/')}'"):
        values = dataset[()] if rows is None or not dataset.shape else dataset[rows]
    return np.asarray(values, dtype=dtype)


def read_scalar(dataset, path, kind: str = "int"):
    """A one-value dataset (Caffe's ``hdf5_load_int``: a scalar or a single-element array)."""
    name = dataset.name.lstrip("/")
    with hdf5_errors(path):
        size = dataset.size if dataset.shape is not None else 0
    if size != 1:
        raise CaffeCaeError(f"{path}: dataset '{name}' must hold one {kind}, it holds {size} values")
    value = read_dataset(dataset, path, np.float64).reshape(-1)[0]
    if kind == "int":
        if not np.isfinite(value) or value != int(value) or abs(value) > 2**63:
            raise CaffeCaeError(f"{path}: dataset '{name}' must hold an integer, not {value!r}")
        return int(value)
    return float(value)


def read_string(dataset, path) -> str:
    """A string dataset (Caffe's ``hdf5_load_string``), decoded as UTF-8."""
    name = dataset.name.lstrip("/")
    with hdf5_errors(path):
        if dataset.dtype.kind not in "SUO" or dataset.size != 1:
            raise CaffeCaeError(f"{path}: dataset '{name}' must hold one string")
        value = dataset[()]
    value = np.asarray(value).reshape(-1)[0] if np.ndim(value) else value
    if isinstance(value, bytes):
        try:
            return value.split(b"\0", 1)[0].decode("utf-8")
        except UnicodeDecodeError:
            raise CaffeCaeError(f"{path}: dataset '{name}' is not valid UTF-8 text") from None
    return str(value)
