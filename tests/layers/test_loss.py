"""EuclideanLoss, SigmoidCrossEntropyLoss, ContrastiveLoss: golden data, normalization, errors."""
import numpy as np
import pytest

from caffe_cae.errors import CaffeCaeError
from caffe_cae.prototxt import parse_text
from caffe_cae.proto import caffe_pb2
from tests.helpers.layer_golden import build, check_golden_layer, numeric_gradient_check


def layer(text):
    return parse_text(text, caffe_pb2.LayerParameter, "<test>")


@pytest.mark.usefixtures("each_engine")
@pytest.mark.parametrize("case, n_diffs", [
    ("euclidean_loss", 2), ("sce_loss_w2", 1), ("contrastive", 2), ("contrastive_legacy", 2),
])
def test_golden(case, n_diffs):
    lay, bottom, top, checked = check_golden_layer(case, "loss")
    assert checked == n_diffs
    assert lay.is_loss and top[0].shape == ()


def test_euclidean_count_mismatch_names_both_blobs():
    param = layer('name: "loss" type: "EuclideanLoss" bottom: "pred" bottom: "target" top: "l"')
    with pytest.raises(CaffeCaeError, match=r"layer 'loss' \(EuclideanLoss\): .*'pred' \[2, 3\].*'target' \[2, 4\]"):
        build(param, [np.zeros((2, 3)), np.zeros((2, 4))])


def test_euclidean_accepts_equal_counts_in_other_shapes():
    param = layer('type: "EuclideanLoss" bottom: "a" bottom: "b" top: "l"')
    a, b = np.arange(12.0).reshape(2, 6), np.zeros((2, 2, 3))
    lay, bottom, top = build(param, [a, b], dtype=np.float64)
    lay.forward(bottom, top)
    assert top[0].data == pytest.approx((a ** 2).sum() / 4)
    numeric_gradient_check(param, [a, b + 0.5])
    assert lay.allow_force_backward(1)


@pytest.mark.parametrize("loss_param, divisor", [
    ("", 2), ("normalization: BATCH_SIZE", 2), ("normalization: FULL", 12), ("normalization: VALID", "valid"),
    ("normalization: NONE", 1), ("normalize: true", "valid"), ("normalize: false", 2),
])
def test_sce_normalization_and_ignore(loss_param, divisor):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 6)) * 3
    t = rng.integers(0, 2, (2, 6)).astype(np.float64)
    t[0, 1] = t[1, 4] = -1
    text = f'type: "SigmoidCrossEntropyLoss" bottom: "x" bottom: "t" top: "l" loss_param {{ ignore_label: -1 {loss_param} }}'
    lay, bottom, top = build(layer(text), [x, t], dtype=np.float64)
    lay.forward(bottom, top)
    valid = t != -1
    norm = int(valid.sum()) if divisor == "valid" else divisor
    p = 1 / (1 + np.exp(-x))
    bce = -(t * np.log(p) + (1 - t) * np.log(1 - p))
    assert top[0].data == pytest.approx(bce[valid].sum() / norm)
    top[0].diff[...] = 3.0
    lay.backward(top, [True, False], bottom)
    np.testing.assert_allclose(bottom[0].diff, 3.0 * (p - t) * valid / norm, atol=1e-12)


def test_sce_stable_for_large_logits_and_gradient():
    param = layer('type: "SigmoidCrossEntropyLoss" bottom: "x" bottom: "t" top: "l"')
    lay, bottom, top = build(param, [np.array([[-200.0, 200.0]], np.float32), np.array([[1.0, 0.0]], np.float32)])
    lay.forward(bottom, top)
    assert top[0].data == pytest.approx(400.0)
    rng = np.random.default_rng(8)
    numeric_gradient_check(param, [rng.standard_normal((3, 4)), rng.random((3, 4))])
    assert not lay.allow_force_backward(1)
    with pytest.raises(CaffeCaeError, match="cannot backpropagate to label"):
        lay.backward(top, [True, True], bottom)
    with pytest.raises(CaffeCaeError, match="same count"):
        build(param, [np.zeros((2, 3)), np.zeros((2, 4))])


@pytest.mark.parametrize("legacy", ["true", "false"])
def test_contrastive_gradients(legacy):
    rng = np.random.default_rng(9)
    a, b = rng.standard_normal((8, 3)) * 0.4, rng.standard_normal((8, 3)) * 0.4
    sim = np.array([1, 0, 0, 1, 0, 0, 1, 0], np.float64)
    text = f'type: "ContrastiveLoss" bottom: "a" bottom: "b" bottom: "s" top: "l" contrastive_loss_param {{ margin: 1.2 legacy_version: {legacy} }}'
    lay, bottom, top = build(layer(text), [a, b, sim], dtype=np.float64)
    lay.forward(bottom, top)
    d2 = ((a - b) ** 2).sum(1)
    if legacy == "true":
        dis = np.maximum(1.2 - d2, 0)
    else:
        dis = np.maximum(1.2 - np.sqrt(d2), 0) ** 2
    assert top[0].data == pytest.approx(np.where(sim != 0, d2, dis).sum() / 16)
    assert not lay.allow_force_backward(2)
    if legacy == "true":  # the non-legacy gradient uses Caffe's +1e-4 in the denominator
        numeric_gradient_check(layer(text), [a, b, sim])


def test_contrastive_shape_checks():
    text = 'name: "c" type: "ContrastiveLoss" bottom: "a" bottom: "b" bottom: "s" top: "l"'
    with pytest.raises(CaffeCaeError, match="same channels"):
        build(layer(text), [np.zeros((2, 3)), np.zeros((2, 4)), np.zeros(2)])
    with pytest.raises(CaffeCaeError, match=r"\(N, C, 1, 1\)"):
        build(layer(text), [np.zeros((2, 3, 2)), np.zeros((2, 3, 2)), np.zeros(2)])
    with pytest.raises(CaffeCaeError, match="similarity bottom"):
        build(layer(text), [np.zeros((2, 3)), np.zeros((2, 3)), np.zeros((2, 2))])
    build(layer(text), [np.zeros((2, 3, 1, 1)), np.zeros((2, 3, 1, 1)), np.zeros((2, 1, 1, 1))])
