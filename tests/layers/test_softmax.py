"""Softmax and SoftmaxWithLoss: golden data, normalization modes, ignore_label, gradients."""
import numpy as np
import pytest

import caffe_cae
from caffe_cae.errors import CaffeCaeError
from caffe_cae.prototxt import parse_text
from caffe_cae.proto import caffe_pb2
from tests.helpers.layer_golden import build, check_golden_layer, numeric_gradient_check


def layer(text):
    return parse_text(text, caffe_pb2.LayerParameter, "<test>")


@pytest.mark.usefixtures("each_engine")
@pytest.mark.parametrize("case", ["softmax_loss", "softmax_loss_spatial", "accuracy"])
def test_golden_softmax_loss(case):
    *_, checked = check_golden_layer(case, "loss")
    assert checked == 1


def spatial_inputs(rng, n=2, c=4, h=2, w=3):
    scores = rng.standard_normal((n, c, h, w))
    labels = rng.integers(0, c, (n, 1, h, w)).astype(np.float64)
    return scores, labels


def reference_nll(scores, labels, axis=1):
    p = np.exp(scores - scores.max(axis=axis, keepdims=True))
    p /= p.sum(axis=axis, keepdims=True)
    picked = np.take_along_axis(p, np.expand_dims(labels.astype(int), axis), axis=axis)
    return -np.log(picked), p


@pytest.mark.parametrize("loss_param, divisor", [
    ("", "valid"), ("normalization: VALID", "valid"), ("normalization: FULL", "full"),
    ("normalization: BATCH_SIZE", "batch"), ("normalization: NONE", "none"),
    ("normalize: true", "valid"), ("normalize: false", "batch"),
])
def test_normalization_modes_with_ignore_label(loss_param, divisor):
    rng = np.random.default_rng(2)
    scores, labels = spatial_inputs(rng)
    labels.reshape(-1)[[1, 4, 7]] = 3
    text = f'name: "l" type: "SoftmaxWithLoss" bottom: "s" bottom: "t" top: "loss" loss_param {{ ignore_label: 3 {loss_param} }}'
    lay, bottom, top = build(layer(text), [scores, labels], dtype=np.float64)
    lay.forward(bottom, top)
    nll, p = reference_nll(scores, labels.reshape(2, 2, 3))
    valid = labels.reshape(2, 2, 3) != 3
    n_valid = int(valid.sum())
    norm = {"valid": n_valid, "full": 12, "batch": 2, "none": 1}[divisor]
    np.testing.assert_allclose(top[0].data, nll[:, 0][valid].sum() / norm)
    top[0].diff[...] = 0.5
    lay.backward(top, [True, False], bottom)
    grad = p.copy()
    onehot = np.eye(4)[labels.reshape(2, 2, 3).astype(int)].transpose(0, 3, 1, 2)
    grad = (grad - onehot) * valid[:, None] * 0.5 / norm
    np.testing.assert_allclose(bottom[0].diff, grad, atol=1e-12)


def test_axis_last():
    rng = np.random.default_rng(4)
    scores = rng.standard_normal((3, 2, 5))
    labels = rng.integers(0, 5, (3, 2)).astype(np.float64)
    text = 'type: "SoftmaxWithLoss" bottom: "s" bottom: "t" top: "loss" softmax_param { axis: -1 }'
    lay, bottom, top = build(layer(text), [scores, labels], dtype=np.float64)
    lay.forward(bottom, top)
    nll, _ = reference_nll(scores, labels, axis=2)
    np.testing.assert_allclose(top[0].data, nll.sum() / 6)


PROB_TOP_NET = """
layer { name: "s" type: "Input" top: "s" input_param { shape { dim: 3 dim: 4 } } }
layer { name: "t" type: "Input" top: "t" input_param { shape { dim: 3 } } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "s" bottom: "t" top: "loss" top: "prob" %s }
"""


@pytest.mark.parametrize("weights, counts", [("", r"\(2 vs\. 1\)"),
                                             ("loss_weight: 1 loss_weight: 0", r"\(1 vs\. 2\)")])
def test_prob_top_is_refused_as_in_caffe(weights, counts):
    """BVLC Caffe cannot set up a SoftmaxWithLoss with a second top (golden_bvlc README)."""
    net = parse_text(PROB_TOP_NET % weights, caffe_pb2.NetParameter, "<test>")
    with pytest.raises(CaffeCaeError, match=r"layer 'loss' \(SoftmaxWithLoss\): Check failed: "
                                            r"top.size\(\) == num_loss_weights " + counts):
        caffe_cae.Net(net)


def test_gradient_check_loss():
    rng = np.random.default_rng(5)
    scores, labels = spatial_inputs(rng)
    text = 'type: "SoftmaxWithLoss" bottom: "s" bottom: "t" top: "loss"'
    numeric_gradient_check(layer(text), [scores, labels])


@pytest.mark.parametrize("axis", [1, 2, -1])
def test_softmax_gradient_and_sum(axis):
    rng = np.random.default_rng(6)
    x = rng.standard_normal((2, 3, 4))
    text = f'type: "Softmax" bottom: "x" top: "y" softmax_param {{ axis: {axis} }}'
    lay, bottom, top = build(layer(text), [x], dtype=np.float64)
    lay.forward(bottom, top)
    np.testing.assert_allclose(top[0].data.sum(axis=axis), 1)
    numeric_gradient_check(layer(text), [x])


def test_softmax_large_inputs_are_stable():
    lay, bottom, top = build(layer('type: "Softmax" bottom: "x" top: "y"'), [np.array([[1000.0, 1000.0]], np.float32)])
    lay.forward(bottom, top)
    np.testing.assert_array_equal(top[0].data, [[0.5, 0.5]])


def test_errors():
    text = 'name: "l" type: "SoftmaxWithLoss" bottom: "s" bottom: "t" top: "loss"'
    with pytest.raises(CaffeCaeError, match=r"layer 'l' \(SoftmaxWithLoss\): Number of labels must match"):
        build(layer(text), [np.zeros((2, 3, 2)), np.zeros((2, 3))])
    with pytest.raises(CaffeCaeError, match="same first dimension"):
        build(layer(text), [np.zeros((2, 3)), np.zeros((3,))])
    lay, bottom, top = build(layer(text), [np.zeros((2, 3)), np.array([0.0, 3.0])])
    with pytest.raises(CaffeCaeError, match=r"label value 3 out of range \[0, 3\)"):
        lay.forward(bottom, top)
    lay, bottom, top = build(layer(text), [np.zeros((2, 3)), np.array([0.0, 1.0])])
    lay.forward(bottom, top)
    with pytest.raises(CaffeCaeError, match="cannot backpropagate to label"):
        lay.backward(top, [True, True], bottom)
    assert not lay.allow_force_backward(1) and lay.allow_force_backward(0)
