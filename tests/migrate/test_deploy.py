"""deploy_net: the deploy form of a train/val net (data layers -> Input of given shapes, labels
and what reads them dropped, SoftmaxWithLoss -> Softmax "prob", no phase rules), built on
data_layers_as_inputs (data layers -> Input, everything else kept)."""
import pytest

from caffe_cae.errors import CaffeCaeError
from caffe_cae.migrate.deploy import data_layers_as_inputs, deploy_net
from caffe_cae.net import Net
from caffe_cae.proto import caffe_pb2
from caffe_cae.prototxt import parse_text, read_net_text
from tests.helpers.paths import ZOO

LENET = ZOO / "lenet_train_test" / "lenet_train_test.prototxt"


def _types(net):
    return [(layer.name, layer.type) for layer in net.layer]


def test_lenet_deploy_form():
    net = deploy_net(LENET, {"data": (2, 1, 28, 28)})
    assert _types(net) == [("mnist", "Input"), ("conv1", "Convolution"), ("pool1", "Pooling"),
                           ("conv2", "Convolution"), ("pool2", "Pooling"), ("ip1", "InnerProduct"),
                           ("relu1", "ReLU"), ("ip2", "InnerProduct"), ("prob", "Softmax")]
    assert list(net.layer[0].input_param.shape[0].dim) == [2, 1, 28, 28] and list(net.layer[0].top) == ["data"]
    assert list(net.layer[-1].bottom) == ["ip2"] and list(net.layer[-1].top) == ["prob"]
    assert not any(layer.include or layer.exclude for layer in net.layer) and not net.HasField("state")
    assert Net(net, phase=caffe_pb2.TEST).blobs["prob"].shape == (2, 10)


def test_phase_picks_the_layers_and_accuracies_go():
    text = """
layer { name: "d" type: "Data" top: "data" top: "label" include { phase: TRAIN } }
layer { name: "d" type: "Data" top: "data" top: "label" include { phase: TEST } }
layer { name: "ip" type: "InnerProduct" bottom: "data" top: "ip" inner_product_param { num_output: 3 } }
layer { name: "drop" type: "Dropout" bottom: "ip" top: "ip" include { phase: TRAIN } }
layer { name: "acc" type: "Accuracy" bottom: "ip" bottom: "label" top: "acc" include { phase: TEST } }
layer { name: "acc_use" type: "Power" bottom: "acc" top: "acc2" include { phase: TEST } }
layer { name: "l2" type: "EuclideanLoss" bottom: "ip" bottom: "ip" top: "l2" }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip" bottom: "label" top: "loss" softmax_param { axis: 1 } }
"""
    net = parse_text(text, caffe_pb2.NetParameter, "t")
    test = deploy_net(net, {"data": (1, 5)})
    assert _types(test) == [("d", "Input"), ("ip", "InnerProduct"), ("prob", "Softmax")]
    assert test.layer[-1].softmax_param.axis == 1
    train = deploy_net(net, {"data": (1, 5)}, phase=caffe_pb2.TRAIN)
    assert _types(train) == [("d", "Input"), ("ip", "InnerProduct"), ("drop", "Dropout"), ("prob", "Softmax")]


def test_input_layers_keep_their_shapes_unless_given():
    text = 'layer { name: "in" type: "Input" top: "x" top: "y" input_param { shape { dim: 1 dim: 2 } shape { dim: 3 } } }'
    net = deploy_net(parse_text(text, caffe_pb2.NetParameter, "t"), {"x": (4, 2)})
    assert [list(s.dim) for s in net.layer[0].input_param.shape] == [[4, 2], [3]]


def test_unknown_data_blob_is_an_error():
    with pytest.raises(CaffeCaeError, match="no data blob named image .*data blobs: data, label"):
        deploy_net(LENET, {"image": (1, 1, 28, 28)})
    with pytest.raises(CaffeCaeError, match="no input"):
        deploy_net(LENET, {})


def test_data_layers_as_inputs_keeps_labels_and_losses():
    net = read_net_text(str(LENET))
    net.state.phase = caffe_pb2.TEST
    inputs = data_layers_as_inputs(net, {"data": (2, 1, 28, 28), "label": (2,)})
    assert _types(inputs)[0] == ("mnist", "Input") and _types(inputs)[-2:] == [("accuracy", "Accuracy"),
                                                                              ("loss", "SoftmaxWithLoss")]
    assert [list(s.dim) for s in inputs.layer[0].input_param.shape] == [[2, 1, 28, 28], [2]]
    assert Net(inputs, phase=caffe_pb2.TEST).blobs["loss"].shape == ()


def test_an_input_layer_with_one_shape_gives_it_to_every_top():
    text = 'layer { name: "in" type: "Input" top: "x" top: "y" input_param { shape { dim: 1 dim: 2 } } }'
    net = deploy_net(parse_text(text, caffe_pb2.NetParameter, "t"), {"y": (4, 2)})
    assert [list(s.dim) for s in net.layer[0].input_param.shape] == [[1, 2], [4, 2]]


def test_an_unknown_layer_type_is_an_error():
    text = 'layer { name: "d" type: "MyData" top: "data" }'
    with pytest.raises(CaffeCaeError, match="layer 'd': unknown layer type 'MyData'"):
        deploy_net(parse_text(text, caffe_pb2.NetParameter, "t"), {"data": (1, 2)})
