"""InsertSplits: Caffe's split names, the loss-weight rule, in-place producers."""
import numpy as np
import pytest

import caffe_cae
from caffe_cae.errors import CaffeCaeError
from caffe_cae.netgraph.splits import insert_splits
from caffe_cae.proto import caffe_pb2
from caffe_cae.prototxt import parse_text

INPUT = 'layer { name: "in" type: "Input" top: "x" input_param { shape { dim: 2 dim: 3 } } }\n'


def splits(text):
    net = insert_splits(parse_text(INPUT + text, caffe_pb2.NetParameter))
    return [(l.name, l.type, list(l.bottom), list(l.top), list(l.loss_weight)) for l in net.layer]


def test_blob_read_twice_gets_a_split_after_its_producer():
    layers = splits(
        'layer { name: "a" type: "Sigmoid" bottom: "x" top: "a" }\n'
        'layer { name: "b" type: "TanH" bottom: "x" top: "b" }\n'
    )
    assert layers == [
        ("in", "Input", [], ["x"], []),
        ("x_in_0_split", "Split", ["x"], ["x_in_0_split_0", "x_in_0_split_1"], []),
        ("a", "Sigmoid", ["x_in_0_split_0"], ["a"], []),
        ("b", "TanH", ["x_in_0_split_1"], ["b"], []),
    ]


def test_single_consumer_needs_no_split():
    assert [l[0] for l in splits('layer { name: "a" type: "Sigmoid" bottom: "x" top: "a" }')] == ["in", "a"]


def test_in_place_layer_is_the_producer_that_names_the_split():
    layers = splits(
        'layer { name: "relu" type: "ReLU" bottom: "x" top: "x" }\n'
        'layer { name: "a" type: "Sigmoid" bottom: "x" top: "a" }\n'
        'layer { name: "b" type: "TanH" bottom: "x" top: "b" }\n'
    )
    assert layers[1] == ("relu", "ReLU", ["x"], ["x"], [])
    assert layers[2] == ("x_relu_0_split", "Split", ["x"], ["x_relu_0_split_0", "x_relu_0_split_1"], [])


def test_loss_weighted_top_read_again_moves_its_weight_to_the_split():
    layers = splits(
        'layer { name: "a" type: "Sigmoid" bottom: "x" top: "a" loss_weight: 2.5 }\n'
        'layer { name: "b" type: "TanH" bottom: "a" top: "b" }\n'
    )
    assert layers[1] == ("a", "Sigmoid", ["x"], ["a"], [])  # producer's weight cleared
    assert layers[2] == ("a_a_0_split", "Split", ["a"], ["a_a_0_split_0", "a_a_0_split_1"], [2.5, 0.0])
    assert layers[3] == ("b", "TanH", ["a_a_0_split_1"], ["b"], [])  # first split top is the loss


def test_zero_loss_weight_does_not_count_as_a_consumer():
    layers = splits(
        'layer { name: "a" type: "Sigmoid" bottom: "x" top: "a" loss_weight: 0 }\n'
        'layer { name: "b" type: "TanH" bottom: "a" top: "b" }\n'
    )
    assert [l[0] for l in layers] == ["in", "a", "b"]


def test_split_index_names_the_top_index():
    layers = splits(
        'layer { name: "s" type: "Slice" bottom: "x" top: "p" top: "q" slice_param { axis: 1 slice_point: 1 } }\n'
        'layer { name: "a" type: "Sigmoid" bottom: "q" top: "a" }\n'
        'layer { name: "b" type: "TanH" bottom: "q" top: "b" }\n'
    )
    assert layers[2][0] == "q_s_1_split"
    assert layers[2][3] == ["q_s_1_split_0", "q_s_1_split_1"]


def test_unknown_bottom_names_layer_and_blob():
    with pytest.raises(CaffeCaeError, match=r"^layer 'a' \(Sigmoid\): unknown bottom blob 'nope' \(bottom index 0\)"):
        splits('layer { name: "a" type: "Sigmoid" bottom: "nope" top: "a" }')


def test_net_with_loss_split_counts_the_loss_once_and_sums_diffs():
    net = caffe_cae.Net(parse_text(
        INPUT
        + 'layer { name: "a" type: "Sigmoid" bottom: "x" top: "a" loss_weight: 2 }\n'
        + 'layer { name: "b" type: "TanH" bottom: "a" top: "b" }\n'
        + "force_backward: true\n",
        caffe_pb2.NetParameter,
    ))
    assert net.blob_loss_weights["a_a_0_split_0"] == 2.0
    assert net.outputs == ["a_a_0_split_0", "b"]
    x = np.linspace(-1, 1, 6, dtype=np.float32).reshape(2, 3)
    net.blobs["x"].data[...] = x
    loss = net.forward_loss()
    s = 1 / (1 + np.exp(-x))
    assert loss == pytest.approx(2 * s.sum(), rel=1e-6)
    net.blobs["b"].diff[...] = 1.0
    net.backward()
    # d/dx [2*sum(s) + sum(tanh(s) * 1)] = s(1-s) * (2 + 1 - tanh(s)^2)
    np.testing.assert_allclose(net.blobs["x"].diff, s * (1 - s) * (3 - np.tanh(s) ** 2), rtol=1e-5)
