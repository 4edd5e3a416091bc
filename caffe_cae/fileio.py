"""Small file helpers shared by every writer: atomic writes, so no reader ever sees half a file."""
from __future__ import annotations

import os
import pathlib
import tempfile
from typing import Callable


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temporary file in the same folder and an atomic rename."""
    atomic_write(path, lambda tmp: pathlib.Path(tmp).write_bytes(data))


def atomic_write(path: str | os.PathLike, writer: Callable[[str], object]) -> None:
    """Call ``writer(tmp_path)`` then rename ``tmp_path`` over ``path``.

    A crash or Ctrl-C at any moment leaves either the old file or the new one, never a torn one.
    """
    target = pathlib.Path(path)
    folder = target.parent if str(target.parent) else pathlib.Path(".")
    folder.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=folder)
    os.close(fd)
    try:
        writer(tmp)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the file what open() would
        os.replace(tmp, target)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def open_hdf5(path: str | os.PathLike, what: str = "HDF5 file"):
    """``h5py.File(path, "r")``, with a missing or unreadable file as a one-line CaffeCaeError."""
    import h5py

    from caffe_cae.errors import CaffeCaeError

    try:
        return h5py.File(path, "r")
    except FileNotFoundError:
        raise CaffeCaeError(f"{path}: no such file") from None
    except OSError as err:
        raise CaffeCaeError(f"{path}: not an {what} ({err})") from None
