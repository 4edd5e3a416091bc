"""Audit of ``Net`` against BVLC Caffe's ``net.cpp`` / ``layer.hpp`` (master 9b89154).

Covers the backward plan (``propagate_down`` overriding ``blob_need_backward`` in both directions,
layers whose Backward ignores ``propagate_down``), loss weights on non-loss tops, and outputs.
Expected values are computed here with NumPy from Caffe's formulas.
"""
from __future__ import annotations

import logging

import numpy as np
import pytest

import caffe_cae
from caffe_cae.proto import caffe_pb2
from caffe_cae.prototxt import parse_text

F32 = np.float32


def make_net(text: str) -> caffe_cae.Net:
    return caffe_cae.Net(parse_text(text, caffe_pb2.NetParameter, "<audit>"), seed=0)


@pytest.fixture(autouse=True)
def quiet():
    logging.disable(logging.INFO)
    yield
    logging.disable(logging.NOTSET)


IP_SOFTMAX_EUCLID = """
layer { name: "x" type: "Input" top: "x" input_param { shape { dim: 2 dim: 3 } } }
layer { name: "t" type: "Input" top: "t" input_param { shape { dim: 2 dim: 4 } } }
layer { name: "ip" type: "InnerProduct" bottom: "x" top: "ip"
        inner_product_param { num_output: 4 weight_filler { type: "gaussian" std: 1 } } }
layer { name: "prob" type: "Softmax" bottom: "ip" top: "prob" propagate_down: false }
layer { name: "loss" type: "EuclideanLoss" bottom: "prob" bottom: "t" top: "loss" }
"""


def test_softmax_with_propagate_down_false_still_writes_its_bottom_diff():
    """Caffe: the Softmax layer still needs backward (its bottom blob does), its bottom does not;
    Net::Backward calls SoftmaxLayer::Backward_cpu, which never reads propagate_down and writes
    the diff of 'ip' anyway; the InnerProduct (whose top now skips backprop) is not run."""
    net = make_net(IP_SOFTMAX_EUCLID)
    assert net.layer_need_backward == [False, False, False, True, True]
    assert net.bottom_need_backward[3] == [False]
    rng = np.random.default_rng(0)
    x, t = rng.standard_normal((2, 3)).astype(F32), rng.standard_normal((2, 4)).astype(F32)
    net.blobs["x"].data[...] = x
    net.blobs["t"].data[...] = t
    net.forward_loss()
    net.blobs["ip"].diff[...] = 0
    net.backward()
    prob = net.blobs["prob"].data
    dprob = (prob - t) / F32(2)  # EuclideanLoss: loss_weight * (a - b) / N
    want = (dprob - (dprob * prob).sum(1, keepdims=True)) * prob
    np.testing.assert_allclose(net.blobs["ip"].diff, want, rtol=1e-5, atol=1e-7)
    np.testing.assert_array_equal(net.params["ip"][0].diff, 0)  # ip's backward never ran


def test_propagate_down_true_forces_a_diff_into_an_input_without_force_backward():
    """AppendBottom: a non-empty propagate_down *replaces* blob_need_backward, so `true` makes
    Caffe compute the gradient for an Input blob even without force_backward."""
    net = make_net("""
layer { name: "x" type: "Input" top: "x" input_param { shape { dim: 2 dim: 3 } } }
layer { name: "t" type: "Input" top: "t" input_param { shape { dim: 2 dim: 2 } } }
layer { name: "ip" type: "InnerProduct" bottom: "x" top: "y" propagate_down: true
        inner_product_param { num_output: 2 weight_filler { type: "gaussian" std: 1 } } }
layer { name: "loss" type: "EuclideanLoss" bottom: "y" bottom: "t" top: "loss" }
""")
    assert net.bottom_need_backward[2] == [True]
    rng = np.random.default_rng(1)
    x, t = rng.standard_normal((2, 3)).astype(F32), rng.standard_normal((2, 2)).astype(F32)
    net.blobs["x"].data[...] = x
    net.blobs["t"].data[...] = t
    net.forward_loss()
    net.backward()
    w = net.params["ip"][0].data
    dy = (net.blobs["y"].data - t) / F32(2)
    np.testing.assert_allclose(net.blobs["x"].diff, dy @ w, rtol=1e-5, atol=1e-7)


def test_loss_weight_on_a_non_loss_layer_makes_its_top_a_loss():
    """Layer::SetLossWeights fills the top diff with the weight; Layer::Forward adds
    dot(top data, top diff) to the loss; InsertSplits counts the loss as one more consumer."""
    net = make_net("""
layer { name: "x" type: "Input" top: "x" input_param { shape { dim: 2 dim: 3 } } }
layer { name: "t" type: "Input" top: "t" input_param { shape { dim: 2 dim: 2 } } }
layer { name: "ip" type: "InnerProduct" bottom: "x" top: "y" loss_weight: 0.5
        inner_product_param { num_output: 2 weight_filler { type: "gaussian" std: 1 } } }
layer { name: "loss" type: "EuclideanLoss" bottom: "y" bottom: "t" top: "loss" }
""")
    assert net.layer_names == ["x", "t", "ip", "y_ip_0_split", "loss"]
    assert net.top_names["y_ip_0_split"] == ["y_ip_0_split_0", "y_ip_0_split_1"]
    assert net.bottom_names["loss"] == ["y_ip_0_split_1", "t"]
    assert {k: v for k, v in net.blob_loss_weights.items() if v} == {"y_ip_0_split_0": 0.5, "loss": 1.0}
    assert net.outputs == ["loss", "y_ip_0_split_0"]
    rng = np.random.default_rng(2)
    x, t = rng.standard_normal((2, 3)).astype(F32), rng.standard_normal((2, 2)).astype(F32)
    net.blobs["x"].data[...] = x
    net.blobs["t"].data[...] = t
    loss = net.forward_loss()
    y = net.blobs["y"].data
    assert loss == pytest.approx(0.5 * y.sum() + ((y - t) ** 2).sum() / 4, rel=1e-5)
    net.backward()
    dy = F32(0.5) + (y - t) / F32(2)
    np.testing.assert_allclose(net.params["ip"][0].diff, dy.T @ x, rtol=1e-5, atol=1e-6)


def test_anonymous_loss_top_is_no_output_and_outputs_are_sorted():
    net = make_net("""
layer { name: "in" type: "Input" top: "zeta" top: "alpha" top: "t"
        input_param { shape { dim: 2 dim: 2 } } }
layer { name: "loss" type: "EuclideanLoss" bottom: "zeta" bottom: "t" }
""")
    assert "(automatic)" in net.blobs
    assert net.outputs == ["alpha"]  # the auto top is never in available_blobs


def test_net_loss_is_summed_in_float_like_caffe():
    """Net::ForwardFromTo: `Dtype loss = 0; loss += layer_loss` -- a float sum."""
    net = make_net("""
layer { name: "in" type: "Input" top: "a" top: "b" top: "c" input_param { shape { dim: 4 dim: 3 } } }
layer { name: "l1" type: "EuclideanLoss" bottom: "a" bottom: "b" top: "l1" }
layer { name: "l2" type: "EuclideanLoss" bottom: "b" bottom: "c" top: "l2" loss_weight: 0.3 }
""")
    for seed in range(50):  # find inputs whose float and double sums differ
        rng = np.random.default_rng(seed)
        for name in "abc":
            net.blobs[name].data[...] = rng.standard_normal((4, 3))
        loss = net.forward_loss()
        l1, l2 = net.blobs["l1"].data, net.blobs["l2"].data
        weighted = np.float32(l2 * F32(0.3))
        if float(l1) + float(weighted) != float(l1 + weighted):
            break
    else:
        pytest.fail("no discriminating input found")
    assert loss == float(l1 + weighted)
