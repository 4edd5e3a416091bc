"""HDF5Output: the file it writes, when it writes it, and Caffe's refusals."""
from __future__ import annotations

import h5py
import numpy as np
import pytest

import caffe_cae
from caffe_cae.errors import CaffeCaeError
from caffe_cae.proto import caffe_pb2
from caffe_cae.prototxt import parse_text


def output_net(data_shape, label_shape, file_name="out.h5"):
    def input_layer(name, shape):
        dims = " ".join(f"dim: {d}" for d in shape)
        return f'layer {{ name: "{name}" type: "Input" top: "{name}" input_param {{ shape {{ {dims} }} }} }}\n'

    text = input_layer("x", data_shape) + input_layer("label", label_shape)
    text += ('layer { name: "out" type: "HDF5Output" bottom: "x" bottom: "label" '
             f'hdf5_output_param {{ file_name: "{file_name}" }} }}')
    return caffe_cae.Net(parse_text(text, caffe_pb2.NetParameter, "<test>"))


@pytest.fixture(autouse=True)
def in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # Caffe opens file_name relative to the working directory
    return tmp_path


def test_writes_data_and_label_as_4d_datasets(in_tmp):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((3, 2, 4)).astype(np.float32)
    label = rng.standard_normal((3,)).astype(np.float32)
    net = output_net(x.shape, label.shape, "sub/out.h5")
    assert not (in_tmp / "sub").exists()  # building the net writes nothing
    assert net.forward(x=x, label=label) == {}
    with h5py.File(in_tmp / "sub/out.h5", "r") as h5:
        assert sorted(h5) == ["data", "label"]
        assert h5["data"].dtype == np.float32
        np.testing.assert_array_equal(h5["data"][...], x.reshape(3, 2, 4, 1))
        np.testing.assert_array_equal(h5["label"][...], label.reshape(3, 1, 1, 1))
    assert sorted(p.name for p in (in_tmp / "sub").iterdir()) == ["out.h5"]  # no temporary left


def test_backward_writes_nothing():
    net = output_net((2, 3), (2, 1))
    net.forward()
    net.blobs["x"].diff[...] = 5
    net.layers[-1].backward([], [True, True], [net.blobs["x"], net.blobs["label"]])
    np.testing.assert_array_equal(net.blobs["x"].diff, 5)


def test_a_second_forward_is_refused_as_in_caffe(in_tmp):
    net = output_net((2, 3), (2, 1))
    net.forward()
    with pytest.raises(CaffeCaeError, match=r"layer 'out' \(HDF5Output\): Failed to make float dataset data"):
        net.forward()
    with h5py.File(in_tmp / "out.h5", "r") as h5:  # the first forward's file is intact
        assert h5["data"].shape == (2, 3, 1, 1)


def test_a_5d_bottom_is_refused_at_the_forward(in_tmp):
    net = output_net((2, 1, 1, 1, 3), (2,))
    with pytest.raises(CaffeCaeError, match=r"Check failed: num_axes\(\) <= 4 \(5 vs\. 4\) Cannot use legacy "
                                            r"accessors on Blobs with > 4 axes"):
        net.forward()
    assert not (in_tmp / "out.h5").exists()


def test_data_and_label_need_the_same_batch_size():
    net = output_net((2, 3), (3,))
    with pytest.raises(CaffeCaeError, match=r"bottom\[0\]->num\(\) == bottom\[1\]->num\(\) \(2 vs\. 3\)"):
        net.forward()


def test_file_name_is_required():
    with pytest.raises(CaffeCaeError, match="Failed to open HDF5 file"):
        output_net((2, 3), (2,), file_name="")
