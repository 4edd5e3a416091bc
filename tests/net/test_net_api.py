"""pycaffe-style interface: construction forms, forward/backward with start/end, in-place
blobs, to_proto/save/copy_from, float64, infer_shapes without data."""
import numpy as np
import pytest

import caffe_cae
from caffe_cae.errors import CaffeCaeError
from caffe_cae.net import infer_shapes
from caffe_cae.proto import caffe_pb2
from caffe_cae.prototxt import parse_text
from caffe_cae.weights import read_net_binary
from tests.helpers.golden import GoldenCase

TEXT = """
name: "small"
layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 2 dim: 1 dim: 6 dim: 6 } } }
layer { name: "conv" type: "Convolution" bottom: "data" top: "conv"
        convolution_param { num_output: 2 kernel_size: 3 weight_filler { type: "gaussian" std: 0.5 }
                            bias_filler { type: "constant" value: 0.25 } } }
layer { name: "relu" type: "ReLU" bottom: "conv" top: "conv" }
layer { name: "up" type: "Deconvolution" bottom: "conv" top: "up"
        convolution_param { num_output: 1 kernel_size: 3 weight_filler { type: "gaussian" std: 0.5 } } }
layer { name: "loss" type: "EuclideanLoss" bottom: "up" bottom: "data" top: "l2" }
"""


@pytest.fixture
def prototxt(tmp_path):
    path = tmp_path / "small.prototxt"
    path.write_text(TEXT)
    return str(path)


def x_data():
    return np.random.default_rng(1).random((2, 1, 6, 6), dtype=np.float32)


def test_construction_forms(prototxt, tmp_path):
    net = caffe_cae.Net(prototxt, caffe_cae.TRAIN, seed=3)
    assert net.phase == caffe_cae.TRAIN
    net.save(str(tmp_path / "w.caffemodel"))
    for other in (caffe_cae.Net(prototxt, str(tmp_path / "w.caffemodel"), caffe_cae.TEST),
                  caffe_cae.Net(prototxt, weights=str(tmp_path / "w.caffemodel"), phase=caffe_cae.TEST)):
        assert other.phase == caffe_cae.TEST
        np.testing.assert_array_equal(other.params["conv"][0].data, net.params["conv"][0].data)
    same_seed = caffe_cae.Net(parse_text(TEXT, caffe_pb2.NetParameter), seed=3)
    np.testing.assert_array_equal(same_seed.params["up"][0].data, net.params["up"][0].data)
    np.testing.assert_array_equal(net.params["conv"][1].data, 0.25)


def test_blobs_layers_and_in_place(prototxt):
    net = caffe_cae.Net(prototxt)
    assert list(net.blobs) == ["data", "data_data_0_split_0", "data_data_0_split_1", "conv", "up", "l2"]
    assert net.layer_names == ["data", "data_data_0_split", "conv", "relu", "up", "loss"]
    assert net.top_names["relu"] == ["conv"] and net.bottom_names[3] == ["conv"]
    assert net.inputs == ["data"] and net.outputs == ["l2"]
    assert net.blobs["l2"].shape == () and net.blob_loss_weights["l2"] == 1.0
    out = net.forward(data=x_data())
    assert set(out) == {"l2"}
    assert (net.blobs["conv"].data >= 0).all()  # ReLU wrote into conv in place


def test_forward_start_end_and_backward(prototxt):
    net = caffe_cae.Net(prototxt, seed=0)
    x = x_data()
    full = net.forward(data=x)["l2"]
    tops = net.forward(end="conv")
    assert set(tops) == {"conv"} and tops["conv"].min() < 0  # before the ReLU
    rest = net.forward(start="relu")
    np.testing.assert_allclose(rest["l2"], full, rtol=1e-6)
    assert net.forward_loss() == pytest.approx(float(full), rel=1e-6)
    diffs = net.backward()
    assert set(diffs) == {"data"} and not diffs["data"].any()  # input needs no backward
    assert net.params["conv"][0].diff.any()
    diffs = net.backward(end="up", diffs=["up"])
    assert set(diffs) == {"conv", "up"}
    assert net.backward(start="loss", end="loss")["up"].shape == (2, 1, 6, 6)


def test_float64_matches_float32(prototxt, tmp_path):
    net32 = caffe_cae.Net(prototxt, seed=4)
    net32.save(str(tmp_path / "w.caffemodel"))
    net64 = caffe_cae.Net(prototxt, weights=str(tmp_path / "w.caffemodel"), dtype=np.float64)
    assert net64.blobs["conv"].data.dtype == np.float64
    x = x_data()
    a, b = net32.forward(data=x)["l2"], net64.forward(data=x)["l2"]
    assert b.dtype == np.float64 and float(a) == pytest.approx(float(b), rel=1e-5)
    proto = net64.to_proto()
    assert len(proto.layer[2].blobs[0].double_data) == 18 and not proto.layer[2].blobs[0].data


def test_to_proto_is_caffes_net_to_proto(prototxt):
    net = caffe_cae.Net(prototxt, caffe_cae.TRAIN)
    proto = net.to_proto()
    assert [l.name for l in proto.layer] == net.layer_names  # Split and Input included
    assert all(l.phase == caffe_pb2.TRAIN for l in proto.layer)
    assert list(proto.layer[-1].loss_weight) == [1.0]  # LossLayer's default, as Caffe writes it
    assert list(proto.layer[2].bottom) == ["data_data_0_split_0"]
    assert [list(b.shape.dim) for b in proto.layer[2].blobs] == [[2, 1, 3, 3], [2]]
    with_diff = net.to_proto(write_diff=True)
    assert len(with_diff.layer[2].blobs[0].diff) == 18


def test_save_reload_and_copy_rules(prototxt, tmp_path):
    net = caffe_cae.Net(prototxt, seed=1)
    net.save(str(tmp_path / "a.caffemodel"))
    net.save_hdf5(str(tmp_path / "a.caffemodel.h5"))
    assert (tmp_path / "a.caffemodel").read_bytes() == net.to_proto().SerializeToString()
    for name in ("a.caffemodel", "a.caffemodel.h5"):
        other = caffe_cae.Net(prototxt, seed=2)
        other.copy_from(str(tmp_path / name))
        for layer in ("conv", "up"):
            for mine, theirs in zip(other.params[layer], net.params[layer]):
                np.testing.assert_array_equal(mine.data, theirs.data)
    # unknown source layers are ignored; a layer with another blob count is refused
    source = read_net_binary(tmp_path / "a.caffemodel")
    source.layer.add(name="not_in_net", type="Sigmoid")
    net.copy_from(source)
    del source.layer[2].blobs[1]
    with pytest.raises(CaffeCaeError, match=r"^<weights>: layer 'conv': incompatible number of blobs: the file has 1, the net's Convolution layer has 2$"):
        net.copy_from(source)
    source.layer[2].blobs.add().CopyFrom(source.layer[2].blobs[0])
    with pytest.raises(CaffeCaeError, match=r"^<weights>: layer 'conv': cannot copy param 1 weights: shape mismatch; source param shape is 2 1 3 3 \(18\), target param shape is 2 \(2\)"):
        net.copy_from(source)


def test_prototxt_blobs_are_used_instead_of_fillers():
    param = parse_text(TEXT, caffe_pb2.NetParameter)
    conv = param.layer[1]
    conv.blobs.add().shape.dim.extend([2, 1, 3, 3])
    conv.blobs[0].data.extend(np.arange(18, dtype=np.float32).tolist())
    conv.blobs.add().shape.dim.extend([2])
    conv.blobs[1].data.extend([5, 6])
    net = caffe_cae.Net(param)
    np.testing.assert_array_equal(net.params["conv"][0].data.ravel(), np.arange(18))
    np.testing.assert_array_equal(net.params["conv"][1].data, [5, 6])


def test_feeding_another_batch_size_reshapes_the_net(prototxt):
    net = caffe_cae.Net(prototxt)
    net.forward(data=np.zeros((5, 1, 6, 6), np.float32))
    assert net.blobs["up"].shape == (5, 1, 6, 6) and net.blobs["conv"].shape == (5, 2, 4, 4)
    assert net.blobs["l2"].diff == 1.0  # loss weight kept
    net.blobs["data"].reshape((3, 1, 8, 8))
    net.reshape()
    assert net.blobs["conv"].shape == (3, 2, 6, 6)


def test_infer_shapes_without_data(tmp_path):
    text = """
    name: "cae"
    layer { name: "data" type: "HDF5Data" top: "data" include { phase: TRAIN }
            hdf5_data_param { source: "does/not/exist.txt" batch_size: 4 } }
    layer { name: "data" type: "Input" top: "data" include { phase: TEST }
            input_param { shape { dim: 1 dim: 1 dim: 28 dim: 28 } } }
    layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
            convolution_param { num_output: 8 kernel_size: 9 } }
    layer { name: "pool" type: "Pooling" bottom: "conv1" top: "pool" pooling_param { pool: MAX kernel_size: 2 stride: 2 } }
    layer { name: "loss" type: "SigmoidCrossEntropyLoss" bottom: "pool" bottom: "pool" top: "loss" }
    """
    param = parse_text(text, caffe_pb2.NetParameter)
    shapes = infer_shapes(param, caffe_cae.TEST)
    assert shapes["conv1"] == (1, 8, 20, 20) and shapes["pool"] == (1, 8, 10, 10)
    assert shapes.params == {"conv1": [(8, 1, 9, 9), (8,)]}
    assert shapes.loss_weights == {"loss": 1.0} and shapes.inputs == ["data"]
    assert [layer[0] for layer in shapes.layers] == ["data", "conv1", "pool", "pool_pool_0_split", "loss"]
    train = infer_shapes(param, caffe_cae.TRAIN, input_shapes={"data": (4, 1, 28, 28)})
    assert train["pool"] == (4, 8, 10, 10) and train.inputs == []


def test_golden_caffemodel_round_trips_byte_identical(tmp_path):
    case = GoldenCase("model4_bvlc_equiv")
    net = caffe_cae.Net(str(case.path("net.prototxt")), str(case.path("init.caffemodel")), caffe_cae.TEST)
    net.save(str(tmp_path / "again.caffemodel"))
    assert (tmp_path / "again.caffemodel").read_bytes() == case.path("init.caffemodel").read_bytes()


def test_share_with_uses_the_other_nets_memory(prototxt):
    train = caffe_cae.Net(prototxt, caffe_cae.TRAIN, seed=1)
    test = caffe_cae.Net(prototxt, caffe_cae.TEST, seed=2)
    test.share_with(train)
    train.params["conv"][0].data -= 1.0  # a solver update, in place
    np.testing.assert_array_equal(test.params["conv"][0].data, train.params["conv"][0].data)
    assert not np.shares_memory(test.params["conv"][0].diff, train.params["conv"][0].diff)


def test_loss_layer_without_top_gets_an_automatic_one():
    text = """
    layer { name: "x" type: "Input" top: "x" input_param { shape { dim: 2 dim: 3 } } }
    layer { name: "y" type: "Input" top: "y" input_param { shape { dim: 2 dim: 3 } } }
    layer { name: "loss" type: "EuclideanLoss" bottom: "x" bottom: "y" }
    """
    net = caffe_cae.Net(parse_text(text, caffe_pb2.NetParameter))
    assert net.top_names["loss"] == ["(automatic)"] and net.outputs == []
    net.blobs["x"].data[...] = 1.0
    assert net.forward_loss() == pytest.approx(2 * 3 / 4)  # sum(d^2) / 2N
    assert list(net.to_proto().layer[2].top) == []
