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
    from caffe_cae.errors import CaffeCaeError

    target = pathlib.Path(path)
    if target.is_dir():
        raise CaffeCaeError(f"{path}: is a directory, expected a file to write")
    folder = target.parent if str(target.parent) else pathlib.Path(".")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=folder)
    except FileExistsError:
        raise CaffeCaeError(f"{path}: cannot write (a file is in the way of folder {folder})") from None
    except OSError as err:  # a read-only folder, ...
        raise CaffeCaeError(f"{path}: cannot write ({err.strerror or err})") from None
    os.close(fd)
    try:
        writer(tmp)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the file what open() would
        os.replace(tmp, target)
    except BaseException as err:
        if os.path.exists(tmp):
            os.unlink(tmp)
        if isinstance(err, OSError) and not isinstance(err, CaffeCaeError):  # e.g. disk full
            raise CaffeCaeError(f"{path}: cannot write ({err.strerror or err})") from None
        raise


def make_folder(path: str | os.PathLike) -> pathlib.Path:
    """``mkdir -p path``, with a file in the way or a read-only parent as a one-line CaffeCaeError."""
    from caffe_cae.errors import CaffeCaeError

    folder = pathlib.Path(path)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise CaffeCaeError(f"{path}: cannot create the folder (a file is in the way)") from None
    except OSError as err:
        raise CaffeCaeError(f"{path}: cannot create the folder ({err.strerror or err})") from None
    return folder


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def open_hdf5(path: str | os.PathLike, what: str = "HDF5 file"):
    """``h5py.File(path, "r")``, with a missing or unreadable file as a one-line CaffeCaeError."""
    import h5py

    from caffe_cae.errors import CaffeCaeError

    if os.path.isdir(path):
        raise CaffeCaeError(f"{path}: is a directory, expected an {what}")
    try:
        return h5py.File(path, "r")
    except FileNotFoundError:
        raise CaffeCaeError(f"{path}: no such file") from None
    except OSError as err:
        raise CaffeCaeError(f"{path}: not an {what} ({one_line(err)})") from None


def one_line(err: BaseException) -> str:
    """An exception's message on one line (HDF5's messages span several)."""
    return " ".join(str(err).split())
