"""Atomic writes: the whole file or the old one, with the permissions a plain open() gives."""
import os

import pytest

from caffe_cae import fileio
from caffe_cae.errors import CaffeCaeError


def test_atomic_write_replaces_and_uses_umask_permissions(tmp_path):
    target = tmp_path / "sub" / "f.bin"
    old = os.umask(0o022)
    try:
        fileio.atomic_write_bytes(target, b"one")
        fileio.atomic_write_bytes(target, b"two")
    finally:
        os.umask(old)
    assert target.read_bytes() == b"two"
    assert target.stat().st_mode & 0o777 == 0o644
    assert [p.name for p in target.parent.iterdir()] == ["f.bin"]


def test_failed_writer_leaves_the_old_file_and_no_temp(tmp_path):
    target = tmp_path / "f.bin"
    target.write_bytes(b"old")

    def broken(tmp):
        open(tmp, "wb").write(b"half")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        fileio.atomic_write(target, broken)
    assert target.read_bytes() == b"old" and [p.name for p in tmp_path.iterdir()] == ["f.bin"]


def test_open_hdf5_errors_are_one_line(tmp_path):
    with pytest.raises(CaffeCaeError, match="no such file"):
        fileio.open_hdf5(tmp_path / "missing.h5")
    bad = tmp_path / "bad.h5"
    bad.write_bytes(b"not hdf5")
    with pytest.raises(CaffeCaeError, match="^.*bad.h5: not an HDF5 file"):
        fileio.open_hdf5(bad)
