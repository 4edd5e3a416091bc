"""Small file helpers shared by every reader and writer: atomic, durable writes (no reader ever
sees half a file, a crash never loses a finished one), the temporary files a killed writer left
behind, and the cheap checks of an input path before any work starts."""
from __future__ import annotations

import errno
import glob
import logging
import os
import pathlib
import tempfile
from typing import Callable

log = logging.getLogger(__name__)

#: the suffix of the temporary files of :func:`atomic_write` (``.<name>.<pid>.<random>.part``)
PART_SUFFIX = ".part"


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temporary file in the same folder and an atomic rename."""
    atomic_write(path, lambda tmp: pathlib.Path(tmp).write_bytes(data))


def atomic_write(path: str | os.PathLike, writer: Callable[[str], object]) -> None:
    """Call ``writer(tmp_path)``, flush it to disk, then rename ``tmp_path`` over ``path``.

    A crash or Ctrl-C at any moment leaves either the old file or the new one, never a torn one;
    after a power loss the renamed file has its contents (fsync before the rename, and of the
    folder after it).  A killed process leaves its ``.part`` file, which
    :func:`remove_stale_parts` clears on the next start.
    """
    from caffe_cae.errors import CaffeCaeError

    target = pathlib.Path(path)
    if target.is_dir():
        raise CaffeCaeError(f"{path}: is a directory, expected a file to write")
    folder = target.parent if str(target.parent) else pathlib.Path(".")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.{os.getpid()}.", suffix=PART_SUFFIX, dir=folder)
    except FileExistsError:
        raise CaffeCaeError(f"{path}: cannot write (a file is in the way of folder {folder})") from None
    except OSError as err:  # a read-only folder, ...
        raise CaffeCaeError(f"{path}: cannot write ({err.strerror or err})") from None
    os.close(fd)
    try:
        writer(tmp)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the file what open() would
        _fsync(tmp)
        os.replace(tmp, target)
        _fsync(folder, directory=True)
    except BaseException as err:
        if os.path.exists(tmp):
            os.unlink(tmp)
        if isinstance(err, OSError) and not isinstance(err, CaffeCaeError):  # e.g. disk full
            raise CaffeCaeError(f"{path}: cannot write ({err.strerror or err})") from None
        raise


def _fsync(path, directory: bool = False) -> None:
    try:
        fd = os.open(path, os.O_RDONLY | (getattr(os, "O_DIRECTORY", 0) if directory else 0))
    except OSError:
        if directory:  # some platforms cannot open a folder; the file itself is synced
            return
        raise
    try:
        os.fsync(fd)
    except OSError as err:
        if not directory or err.errno not in (errno.EINVAL, errno.EBADF, errno.ENOTSUP):
            raise
    finally:
        os.close(fd)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_parts(path_prefix: str | os.PathLike) -> list[str]:
    """Remove the ``.part`` files that killed writers of ``<path_prefix>*`` files left behind.

    Only files whose writing process no longer runs are removed (a second training writing to
    the same folder keeps its file); returns the removed paths.
    """
    prefix = pathlib.Path(path_prefix)
    folder = prefix.parent if str(prefix.parent) else pathlib.Path(".")
    pattern = os.path.join(glob.escape(str(folder)), "." + glob.escape(prefix.name) + "*" + PART_SUFFIX)
    removed = []
    for part in glob.glob(pattern):
        pieces = os.path.basename(part)[: -len(PART_SUFFIX)].rsplit(".", 2)
        pid = int(pieces[1]) if len(pieces) == 3 and pieces[1].isdigit() else None
        if pid is not None and pid != os.getpid() and _pid_alive(pid):
            continue
        try:
            os.unlink(part)
        except OSError:
            continue
        removed.append(part)
        log.info("Removed %s, left by an interrupted write", part)
    return removed


def check_input_file(path: str | os.PathLike, what: str = "a file") -> None:
    """A path argument that must name a readable file (``what``: "an HDF5 file"), checked
    before any work starts."""
    from caffe_cae.errors import CaffeCaeError

    p = pathlib.Path(path)
    if p.is_dir():
        raise CaffeCaeError(f"{path}: is a directory, expected {what}")
    if not p.exists():
        raise CaffeCaeError(f"{path}: no such file")
    if not os.access(p, os.R_OK):
        raise CaffeCaeError(f"{path}: cannot read ({what}): permission denied")


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
        handle = h5py.File(path, "r")
    except FileNotFoundError:
        raise CaffeCaeError(f"{path}: no such file") from None
    except OSError as err:
        raise CaffeCaeError(f"{path}: not an {what} ({one_line(err)})") from None
    try:
        probe_hdf5(path, what)
    except BaseException:
        handle.close()
        raise
    return handle


#: how long the HDF5 library may take to read a file's structure (every object and attribute)
HDF5_PROBE_SECONDS = 10.0


def probe_hdf5(path: str | os.PathLike, what: str = "HDF5 file", timeout: float = HDF5_PROBE_SECONDS) -> None:
    """Read the file's whole structure in a forked child first: the HDF5 library loops forever
    or crashes on some corrupt files, in C code that no signal interrupts.  A child that does
    not finish in ``timeout`` seconds, or dies, makes the file one error; the caller then reads
    it knowing the library returns.  (No fork, as on Windows: no probe.)"""
    import signal
    import time

    from caffe_cae.errors import CaffeCaeError

    if not hasattr(os, "fork"):
        return
    pid = os.fork()
    if pid == 0:  # the child: walk, then leave without any cleanup of the parent's state
        status = 0
        try:
            import h5py

            with h5py.File(path, "r") as handle:
                dict(handle.attrs)
                handle.visititems(lambda name, obj: dict(obj.attrs) and None)
        except BaseException:  # noqa: BLE001 - an error the parent meets and reports itself
            status = 1
        os._exit(status)
    deadline = time.monotonic() + timeout
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            raise CaffeCaeError(f"{path}: the HDF5 library does not finish reading this {what}'s structure "
                                f"(over {timeout:g} s): a corrupt file")
        time.sleep(0.002)
    if os.WIFSIGNALED(status):
        raise CaffeCaeError(f"{path}: the HDF5 library crashes reading this {what} "
                            f"({signal.Signals(os.WTERMSIG(status)).name}): a corrupt file")


def one_line(err: BaseException) -> str:
    """An exception's message on one line (HDF5's messages span several)."""
    return " ".join(str(err).split())
