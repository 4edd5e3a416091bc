"""A bad net is one CaffeCaeError line naming the layer, the blob(s) and the shapes."""
import numpy as np
import pytest

import caffe_cae
from caffe_cae.errors import CaffeCaeError
from caffe_cae.proto import caffe_pb2
from caffe_cae.prototxt import parse_text

INPUTS = """
layer { name: "x" type: "Input" top: "x" input_param { shape { dim: 2 dim: 3 } } }
layer { name: "y" type: "Input" top: "y" input_param { shape { dim: 2 dim: 4 } } }
"""


def build(text):
    return caffe_cae.Net(parse_text(INPUTS + text, caffe_pb2.NetParameter))


def error_of(text) -> str:
    with pytest.raises(CaffeCaeError) as info:
        build(text)
    message = str(info.value)
    assert "\n" not in message
    return message


def test_unknown_bottom():
    assert error_of('layer { name: "s" type: "Sigmoid" bottom: "z" top: "s" }') == (
        "layer 's' (Sigmoid): unknown bottom blob 'z' (bottom index 0); no earlier layer produces it"
    )


def test_top_produced_twice():
    assert error_of('layer { name: "s" type: "Sigmoid" bottom: "x" top: "y" }') == (
        "layer 's' (Sigmoid): top blob 'y' produced by multiple sources"
    )


def test_wrong_number_of_bottoms():
    message = error_of('layer { name: "s" type: "Sigmoid" bottom: "x" bottom: "y" top: "s" }')
    assert message.startswith("layer 's' (Sigmoid): ")
    assert "1 bottom" in message and "got 2" in message
    assert message.endswith("[bottoms: 'x' 2 3 (6), 'y' 2 4 (8)]")


def test_euclidean_loss_on_different_counts():
    message = error_of('layer { name: "loss" type: "EuclideanLoss" bottom: "x" bottom: "y" top: "l" }')
    assert message.startswith("layer 'loss' (EuclideanLoss): ")
    assert message.endswith("[bottoms: 'x' 2 3 (6), 'y' 2 4 (8)]")


def test_loss_weights_must_match_tops():
    message = error_of('layer { name: "s" type: "Sigmoid" bottom: "x" top: "s" loss_weight: 1 loss_weight: 2 }')
    assert message == (
        "layer 's' (Sigmoid): loss_weight must be unspecified or given once per top blob "
        "(1 tops, 2 loss_weight values)"
    )


def test_too_many_param_specs():
    message = error_of('layer { name: "s" type: "Sigmoid" bottom: "x" top: "s" param { lr_mult: 1 } }')
    assert message == "layer 's' (Sigmoid): too many param specs: 1 given, the layer has 0 parameter blob(s)"


def test_inner_product_input_size_changed():
    net = build('layer { name: "ip" type: "InnerProduct" bottom: "x" top: "ip" '
                'inner_product_param { num_output: 2 } }')
    with pytest.raises(CaffeCaeError) as info:
        net.forward(x=np.zeros((2, 5), np.float32))
    message = str(info.value)
    assert message.startswith("layer 'ip' (InnerProduct): ")
    assert message.endswith("[bottoms: 'x' 2 5 (10)]")


def test_feeding_a_blob_that_is_not_an_input():
    net = build('layer { name: "s" type: "Sigmoid" bottom: "x" top: "s" }')
    with pytest.raises(CaffeCaeError, match=r"^blob 's': not an input of net '' \(inputs: x, y\)$"):
        net.forward(s=np.zeros((2, 3)))
    with pytest.raises(CaffeCaeError, match=r"^blob 'x': not an output"):
        net.backward(x=np.zeros((2, 3)))
    with pytest.raises(CaffeCaeError, match=r"^blob 's': diff of shape 3 \(3\) given for a blob of shape 2 3 \(6\)$"):
        net.backward(s=np.zeros(3))


def test_unknown_layer_name():
    net = build('layer { name: "s" type: "Sigmoid" bottom: "x" top: "s" }')
    with pytest.raises(CaffeCaeError, match=r"^layer 'nope': no such layer"):
        net.forward(start="nope")
