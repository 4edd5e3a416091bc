"""Which layers and bottoms take part in the backward pass: Caffe's pruning, propagate_down,
force_backward, lr_mult 0."""
import re

import numpy as np
import pytest

import caffe_cae
from caffe_cae.errors import CaffeCaeError
from caffe_cae.netgraph.graph import build_graph
from caffe_cae.proto import caffe_pb2
from caffe_cae.prototxt import parse_text, read_net_text
from tests.helpers.golden import GoldenCase, case_names

NEED = re.compile(r"\] (\S+) (needs|does not need) backward computation\.")


@pytest.mark.parametrize("name", case_names("layer", "model"))
def test_pruning_matches_caffe_log(name):
    """caffe.log lists Caffe's decision per layer (before force_backward is applied)."""
    case = GoldenCase(name)
    logged = [(m.group(1), m.group(2) == "needs") for m in NEED.finditer(case.path("caffe.log").read_text())]
    param = read_net_text(case.path("net.prototxt"))
    param.force_backward = False
    graph = build_graph(param)
    mine = [(node.name, node.need_backward) for node in reversed(graph.layers)]
    assert mine == logged


def net(text, **kwargs):
    return caffe_cae.Net(parse_text(text, caffe_pb2.NetParameter), seed=0, **kwargs)


BASE = """
layer { name: "x" type: "Input" top: "x" input_param { shape { dim: 2 dim: 3 dim: 5 dim: 5 } } }
layer { name: "t" type: "Input" top: "t" input_param { shape { dim: 2 dim: 2 dim: 3 dim: 3 } } }
layer { name: "conv" type: "Convolution" bottom: "x" top: "c" %s
        convolution_param { num_output: 2 kernel_size: 3 weight_filler { type: "gaussian" std: 0.3 }
                            bias_filler { type: "constant" value: 0.1 } } }
layer { name: "sig" type: "Sigmoid" bottom: "c" top: "s" %s }
layer { name: "loss" type: "EuclideanLoss" bottom: "s" bottom: "t" top: "l" %s }
"""


def run(n):
    rng = np.random.default_rng(3)
    n.forward(x=rng.standard_normal((2, 3, 5, 5)), t=rng.standard_normal((2, 2, 3, 3)))
    n.backward()
    return n


def test_default_net_backprops_into_params_not_inputs():
    n = run(net(BASE % ("", "", "")))
    assert n.layer_need_backward == [False, False, True, True, True]
    assert n.bottom_need_backward[4] == [True, False]
    assert np.abs(n.params["conv"][0].diff).sum() > 0
    assert not n.blobs["x"].diff.any() and not n.blobs["t"].diff.any()


def test_propagate_down_false_prunes_everything_below():
    n = run(net(BASE % ("", "propagate_down: false", "")))
    assert n.layer_need_backward[2] is False
    assert n.bottom_need_backward[3] == [False]
    assert not n.params["conv"][0].diff.any()
    assert not n.blobs["c"].diff.any()


def test_force_backward_overrides_propagate_down_and_respects_labels():
    n = run(net("force_backward: true\n" + BASE % ("", "propagate_down: false", "")))
    assert all(n.layer_need_backward)
    assert n.bottom_need_backward[3] == [True]
    assert n.blobs["x"].diff.any() and n.params["conv"][0].diff.any()
    assert n.bottom_need_backward[4] == [True, True]  # EuclideanLoss allows both bottoms
    assert n.blobs["t"].diff.any()


def test_loss_weight_zero_prunes_the_net():
    n = run(net(BASE % ("", "", "loss_weight: 0")))
    assert not any(n.layer_need_backward)
    assert not n.params["conv"][0].diff.any()


def test_lr_mult_zero_params_get_no_gradient_unless_forced():
    frozen = 'param { lr_mult: 0 } param { lr_mult: 0 }'
    n = run(net(BASE % (frozen, "", "")))
    assert n.layer_need_backward[2] is False  # nothing below needs a gradient
    assert not n.params["conv"][0].diff.any()
    partly = 'param { lr_mult: 0 } param { lr_mult: 1 }'
    n = run(net(BASE % (partly, "", "")))
    assert not n.params["conv"][0].diff.any() and n.params["conv"][1].diff.any()
    assert n.layer_dict["conv"].param_propagate_down == [False, True]  # the layer skips the work
    n = run(net("force_backward: true\n" + BASE % (frozen, "", "")))
    assert n.params["conv"][0].diff.any() and n.params["conv"][1].diff.any()


def test_propagate_down_count_must_match_bottoms():
    with pytest.raises(CaffeCaeError, match=r"^layer 'loss' \(EuclideanLoss\): propagate_down must be given 0 or 2 times"):
        net(BASE % ("", "", "propagate_down: true"))
