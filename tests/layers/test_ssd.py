"""SSD's layers (weiliu89/caffe, ssd branch) against values worked out by hand from the fork's
code on small inputs: normalize_layer.cpp, permute_layer.cpp, prior_box_layer.cpp,
detection_output_layer.cpp and bbox_util.cpp (DecodeBBox, ApplyNMSFast, keep_top_k)."""
from __future__ import annotations

import math

import numpy as np
import pytest

from caffe_cae.errors import CaffeCaeError
from tests.helpers.run_layer import LayerRun, layer_text

f32 = np.float32


# -- Normalize -------------------------------------------------------------------------------

def test_normalize_across_spatial_divides_each_sample_by_its_l2_norm():
    x = np.array([[[[3.0]], [[4.0]]], [[[0.0]], [[-2.0]]]])  # (2, 2, 1, 1): norms 5 and 2
    run = LayerRun(layer_text("Normalize", 'norm_param { scale_filler { type: "constant" value: 2 } }'), [x])
    assert run.params[0].shape == ()  # channel_shared: a 0-axis blob, as the fork's Blob(vector<int>(0))
    (y,) = run.forward()
    np.testing.assert_allclose(y.reshape(2, 2), [[1.2, 1.6], [0.0, -2.0]], rtol=1e-6)


def test_normalize_per_position_and_per_channel_scale():
    x = np.array([[[[3.0, 1.0]], [[4.0, 0.0]]]])  # (1, 2, 1, 2): norms 5 and 1 per position
    run = LayerRun(layer_text("Normalize", "norm_param { across_spatial: false channel_shared: false }"), [x])
    np.testing.assert_array_equal(run.params[0], [1.0, 1.0])  # no scale_filler: constant 1
    run.layer.blobs[0].data[...] = [10.0, 20.0]
    (y,) = run.forward()
    np.testing.assert_allclose(y, [[[[6.0, 10.0]], [[16.0, 0.0]]]], rtol=1e-6)


def test_normalize_eps_keeps_zero_vectors_finite():
    run = LayerRun(layer_text("Normalize", "norm_param { across_spatial: false eps: 1e-10 }"), [np.zeros((1, 3, 2, 2))])
    (y,) = run.forward()
    assert np.all(y == 0)


def test_normalize_backward_is_the_forks_formula_with_unequal_channel_scales():
    """The fork's bottom diff is scale_c * (dy - x * sum(x dy) / n^2) / n: per-channel scales
    are not mixed across channels (the exact gradient would be)."""
    rng = np.random.default_rng(3)
    x, dy = rng.standard_normal((1, 3, 1, 2)), rng.standard_normal((1, 3, 1, 2))
    run = LayerRun(layer_text("Normalize", "norm_param { across_spatial: false channel_shared: false }"), [x],
                   dtype=np.float64)
    run.layer.blobs[0].data[...] = [1.0, 2.0, 3.0]
    run.forward()
    (dx,) = run.backward([dy])
    norm = np.sqrt((x ** 2).sum(axis=1, keepdims=True) + 1e-10)
    fork = (dy - x * (x * dy).sum(axis=1, keepdims=True) / norm ** 2) / norm * np.array([1.0, 2.0, 3.0]).reshape(1, 3, 1, 1)
    np.testing.assert_allclose(dx, fork, rtol=1e-12)
    y = x / norm * np.array([1.0, 2.0, 3.0]).reshape(1, 3, 1, 1)
    np.testing.assert_allclose(run.layer.blobs[0].diff, (y * dy).sum(axis=(0, 2, 3)) / [1.0, 2.0, 3.0], rtol=1e-12)


def test_normalize_needs_two_axes():
    with pytest.raises(CaffeCaeError, match=r"layer 'l' \(Normalize\): Number of axes of bottom blob must be >=2"):
        LayerRun(layer_text("Normalize"), [np.zeros(3)])


# -- Permute ---------------------------------------------------------------------------------

def test_permute_orders_the_named_axes_first_then_the_rest():
    x = np.arange(2 * 3 * 4 * 5, dtype=float).reshape(2, 3, 4, 5)
    run = LayerRun(layer_text("Permute", "permute_param { order: 0 order: 2 order: 3 order: 1 }"), [x])
    (y,) = run.forward()
    np.testing.assert_array_equal(y, x.transpose(0, 2, 3, 1))
    partial = LayerRun(layer_text("Permute", "permute_param { order: 3 order: 1 }"), [x])
    np.testing.assert_array_equal(partial.forward()[0], x.transpose(3, 1, 0, 2))
    (dx,) = run.backward([y * 2])
    np.testing.assert_array_equal(dx, x * 2)


def test_permute_identity_shares_the_bottom():
    run = LayerRun(layer_text("Permute", "permute_param { order: 0 order: 1 }"), [np.ones((2, 3, 2))])
    run.forward()
    assert np.shares_memory(run.top[0].data, run.bottom[0].data)


@pytest.mark.parametrize("orders, message", [
    ("order: 0 order: 0", "there are duplicate orders"),
    ("order: 4", "order should be less than the input dimension"),
])
def test_permute_refuses_bad_orders(orders, message):
    with pytest.raises(CaffeCaeError, match=message):
        LayerRun(layer_text("Permute", f"permute_param {{ {orders} }}"), [np.zeros((1, 2, 3, 4))])


# -- PriorBox --------------------------------------------------------------------------------

def _prior_run(body, feature=(1, 4, 2, 2), image=(1, 3, 8, 8)):
    run = LayerRun(layer_text("PriorBox", f"prior_box_param {{ {body} }}", bottoms=2),
                   [np.zeros(feature), np.zeros(image)])
    (top,) = run.forward()
    return top


def test_prior_box_order_and_values_of_one_cell():
    """Cell (0, 0) of a 2x2 map on an 8x8 image: step 4, centre (2, 2); min_size 4, max_size 9,
    aspect ratio 2 flipped: the 4x4 box, the sqrt(4*9) = 6 box, then 4*sqrt(2) x 4/sqrt(2) and
    its transpose, each (xmin, ymin, xmax, ymax) / 8."""
    top = _prior_run("min_size: 4 max_size: 9 aspect_ratio: 2 flip: true variance: 0.1 variance: 0.1 "
                     "variance: 0.2 variance: 0.2")
    assert top.shape == (1, 2, 2 * 2 * 4 * 4)
    w, h = 4 * math.sqrt(2), 4 / math.sqrt(2)
    expected = np.array([[0, 0, 4, 4], [-1, -1, 5, 5],
                         [2 - w / 2, 2 - h / 2, 2 + w / 2, 2 + h / 2],
                         [2 - h / 2, 2 - w / 2, 2 + h / 2, 2 + w / 2]]) / 8
    np.testing.assert_allclose(top[0, 0, :16].reshape(4, 4), expected, rtol=1e-6)
    # the next cell (w = 1) moves the centre by one step in x only
    np.testing.assert_allclose(top[0, 0, 16:20], np.array([4, 0, 8, 4]) / 8, rtol=1e-6)
    np.testing.assert_allclose(top[0, 1].reshape(-1, 4), np.tile([0.1, 0.1, 0.2, 0.2], (16, 1)), rtol=1e-7)


def test_prior_box_truncates_min_size_clips_and_fills_one_variance():
    top = _prior_run("min_size: 4.9 clip: true variance: 0.3", feature=(1, 1, 1, 1), image=(1, 1, 2, 2))
    # one cell, centre (1, 1) of a 2x2 image; int(4.9) = 4 -> (-1, -1, 3, 3) / 2, clipped
    np.testing.assert_allclose(top[0, 0], [0.0, 0.0, 1.0, 1.0])
    np.testing.assert_allclose(top[0, 1], [0.3] * 4, rtol=1e-7)


def test_prior_box_step_offset_and_image_size_given():
    top = _prior_run("min_size: 2 img_size: 10 step: 5 offset: 0", feature=(1, 1, 1, 2))
    np.testing.assert_allclose(top[0, 0].reshape(-1, 4), [[-1, -1, 1, 1], [4, -1, 6, 1]] / np.float32(10), rtol=1e-6)
    np.testing.assert_allclose(top[0, 1], [0.1] * 8, rtol=1e-7)  # no variance: 0.1


def test_prior_box_deduplicates_aspect_ratios():
    top = _prior_run("min_size: 4 aspect_ratio: 2 aspect_ratio: 0.5 aspect_ratio: 2.0000001 flip: true",
                     feature=(1, 1, 1, 1))
    assert top.shape == (1, 2, 3 * 4)  # ratios 1, 2, 1/2


@pytest.mark.parametrize("body, message", [
    ("max_size: 4", "must provide min_size"),
    ("min_size: 4 max_size: 3", "max_size must be greater than min_size"),
    ("min_size: 4 variance: 0.1 variance: 0.2", "Must and only provide 4 variance"),
    ("min_size: 4 img_size: 8 img_h: 8 img_w: 8", "Either img_size or img_h/img_w"),
    ("min_size: 4 step: 2 step_h: 2 step_w: 2", "Either step or step_h/step_w"),
])
def test_prior_box_refusals(body, message):
    with pytest.raises(CaffeCaeError, match=message):
        _prior_run(body)


# -- DetectionOutput -------------------------------------------------------------------------

PRIORS = np.array([[0.1, 0.1, 0.3, 0.5], [0.12, 0.1, 0.32, 0.5], [0.6, 0.6, 0.9, 0.9]])
VARIANCES = [0.1, 0.1, 0.2, 0.2]


def _detect(loc, conf, body, priors=PRIORS, num_classes=3):
    prior_blob = np.concatenate([priors.reshape(-1), np.tile(VARIANCES, len(priors))]).reshape(1, 2, -1)
    run = LayerRun(layer_text("DetectionOutput", f"detection_output_param {{ num_classes: {num_classes} {body} }}",
                              bottoms=3), [np.asarray(loc, float), np.asarray(conf, float), prior_blob])
    (top,) = run.forward()
    return top


def _center_size(prior, var, loc):
    """DecodeBBox, CENTER_SIZE, variance in the bbox, in the fork's float arithmetic."""
    prior, var, loc = (np.asarray(a, dtype=np.float32) for a in (prior, var, loc))
    pw, ph = prior[2] - prior[0], prior[3] - prior[1]
    pcx = f32((prior[0] + prior[2]) / 2.0)
    pcy = f32((prior[1] + prior[3]) / 2.0)
    cx, cy = var[0] * loc[0] * pw + pcx, var[1] * loc[1] * ph + pcy
    w = f32(math.exp(float(var[2] * loc[2])) * float(pw))
    h = f32(math.exp(float(var[3] * loc[3])) * float(ph))
    return np.array([cx - w / 2.0, cy - h / 2.0, cx + w / 2.0, cy + h / 2.0], dtype=np.float32)


def test_detection_output_decodes_center_size_boxes():
    loc = [[1.0, -1.0, 0.5, 0.0] + [0.0] * 4 + [0.0] * 4]
    conf = [[0.1, 0.9, 0.0, 0.1, 0.85, 0.05, 0.1, 0.0, 0.9]]
    top = _detect(loc, conf, "code_type: CENTER_SIZE nms_param { nms_threshold: 0.45 } confidence_threshold: 0.5")
    rows = top.reshape(-1, 7)
    # class 1: prior 0 (0.9) suppresses prior 1 (IoU 0.818 > 0.45); class 2: prior 2 (0.9)
    np.testing.assert_array_equal(rows[:, :3], [[0, 1, f32(0.9)], [0, 2, f32(0.9)]])
    np.testing.assert_array_equal(rows[0, 3:], _center_size(PRIORS[0], VARIANCES, [1.0, -1.0, 0.5, 0.0]))
    np.testing.assert_array_equal(rows[1, 3:], _center_size(PRIORS[2], VARIANCES, [0.0] * 4))


def test_detection_output_nms_keeps_what_overlaps_at_most_the_threshold():
    conf = [[0.1, 0.9, 0.0, 0.2, 0.8, 0.0, 0.9, 0.05, 0.05]]
    loc = [[0.0] * 12]
    # priors 0 and 1 overlap by IoU 0.8182: kept together only above that threshold
    body = "code_type: CENTER_SIZE confidence_threshold: 0.5 nms_param { nms_threshold: %s }"
    low = _detect(loc, conf, body % 0.8).reshape(-1, 7)
    high = _detect(loc, conf, body % 0.82).reshape(-1, 7)
    assert [tuple(r[1:3]) for r in low] == [(1, f32(0.9))]
    assert [tuple(r[1:3]) for r in high] == [(1, f32(0.9)), (1, f32(0.8))]


def test_detection_output_thresholds_top_k_and_keep_top_k():
    conf = [[0.1, 0.6, 0.3, 0.2, 0.7, 0.1, 0.05, 0.5, 0.45]]
    loc = [[0.0] * 12]
    corner = "code_type: CORNER nms_param { nms_threshold: 1.0 }"
    rows = _detect(loc, conf, corner).reshape(-1, 7)
    # per label, by descending score; label 1: priors 1 (0.7), 0 (0.6), 2 (0.5); label 2: 2, 0, 1
    assert [(int(r[1]), float(r[2])) for r in rows] == [
        (1, f32(0.7)), (1, f32(0.6)), (1, f32(0.5)), (2, f32(0.45)), (2, f32(0.3)), (2, f32(0.1))]
    np.testing.assert_array_equal(rows[0, 3:], PRIORS[1].astype(np.float32))  # CORNER: prior + var * 0
    kept = _detect(loc, conf, corner + " keep_top_k: 3 confidence_threshold: 0.15").reshape(-1, 7)
    assert [(int(r[1]), float(r[2])) for r in kept] == [(1, f32(0.7)), (1, f32(0.6)), (1, f32(0.5))]
    top1 = _detect(loc, conf, "code_type: CORNER nms_param { nms_threshold: 1.0 top_k: 1 }").reshape(-1, 7)
    assert [(int(r[1]), float(r[2])) for r in top1] == [(1, f32(0.7)), (2, f32(0.45))]


def test_detection_output_with_nothing_found_gives_one_row_per_image():
    conf = np.tile([[0.99, 0.005, 0.005] * 3], (2, 1))
    top = _detect(np.zeros((2, 12)), conf, "confidence_threshold: 0.5")
    np.testing.assert_array_equal(top, [[[[0, -1, -1, -1, -1, -1, -1], [1, -1, -1, -1, -1, -1, -1]]]])


def test_detection_output_separate_locations_per_class():
    loc = np.zeros((1, 3 * 3 * 4))
    loc[0, 1 * 12 + 2 * 4:1 * 12 + 2 * 4 + 4] = [0.5, 0.5, 0.5, 0.5]  # prior 1, class 2 (CORNER)
    conf = [[0.0, 0.0, 0.0, 0.0, 0.0, 0.9, 0.0, 0.0, 0.0]]
    rows = _detect(loc, conf, "share_location: false code_type: CORNER confidence_threshold: 0.5").reshape(-1, 7)
    np.testing.assert_allclose(rows, [[0, 2, 0.9, 0.12 + 0.05, 0.1 + 0.05, 0.32 + 0.1, 0.5 + 0.1]], rtol=1e-6)


@pytest.mark.parametrize("body, message", [
    ("", "Must specify num_classes"),
    ("num_classes: 3 nms_param { eta: 1.5 }", "eta must be in"),
    ("num_classes: 3 background_label_id: -1", "Could not find location predictions for label -1"),
])
def test_detection_output_refusals(body, message):
    prior_blob = np.zeros((1, 2, 12))
    with pytest.raises(CaffeCaeError, match=message):
        LayerRun(layer_text("DetectionOutput", f"detection_output_param {{ {body} }}", bottoms=3),
                 [np.zeros((1, 12)), np.zeros((1, 9)), prior_blob])


def test_detection_output_checks_the_prediction_counts():
    with pytest.raises(CaffeCaeError, match="Number of priors must match number of confidence predictions"):
        LayerRun(layer_text("DetectionOutput", "detection_output_param { num_classes: 4 }", bottoms=3),
                 [np.zeros((1, 12)), np.zeros((1, 9)), np.zeros((1, 2, 12))])
