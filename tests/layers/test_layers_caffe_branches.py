"""Audit of the layers against BVLC Caffe's C++ (master 9b89154): the cases where we differed.

Each expectation is computed independently here (a literal NumPy transcription of Caffe's CPU
loop or formula, including its float/double evaluation order), never with the code under test.
"""
from __future__ import annotations

import math

import numpy as np
import pytest

from caffe_cae.blob import Blob
from caffe_cae.errors import CaffeCaeError
from caffe_cae.layers import create_layer
from caffe_cae.proto import caffe_pb2
from caffe_cae.prototxt import parse_text
from tests.helpers.golden import GoldenCase

F32 = np.float32


def make(text, bottoms, in_place=False):
    """Layer + blobs from a LayerParameter text; ``in_place``: top 0 *is* bottom 0."""
    param = parse_text(text, caffe_pb2.LayerParameter, "<audit>")
    layer = create_layer(param, caffe_pb2.TEST)
    layer.check_blob_counts(len(bottoms), len(param.top) or 1)
    shapes = [np.shape(b) for b in bottoms]
    layer.setup(shapes)
    bottom = []
    for i, array in enumerate(bottoms):
        blob = Blob(np.shape(array), np.float32, f"b{i}")
        blob.data[...] = array
        bottom.append(blob)
    tops = [Blob(s, np.float32, f"t{i}") for i, s in enumerate(layer.reshape(shapes))]
    if in_place:
        tops[0] = bottom[0]
    return layer, bottom, tops


# -- Pooling ---------------------------------------------------------------------------------

def caffe_pooled_size(size, kernel, stride, pad_this, any_pad):
    pooled = int(math.ceil(float(F32(size + 2 * pad_this - kernel) / F32(stride)))) + 1
    if any_pad and (pooled - 1) * stride >= size + pad_this:
        pooled -= 1
    return pooled


def caffe_max_pool(x, kernel, stride, pad, pooled):
    """pooling_layer.cpp Forward_cpu, MAX, literally."""
    n, c, h, w = x.shape
    y = np.full((n, c) + pooled, -np.finfo(np.float32).max, np.float32)
    for ph in range(pooled[0]):
        for pw in range(pooled[1]):
            hs, ws = ph * stride[0] - pad[0], pw * stride[1] - pad[1]
            he, we = min(hs + kernel[0], h), min(ws + kernel[1], w)
            hs, ws = max(hs, 0), max(ws, 0)
            y[:, :, ph, pw] = x[:, :, hs:he, ws:we].reshape(n, c, -1).max(axis=2)
    return y


def test_pooling_clips_last_window_on_every_axis_when_any_pad_is_set():
    # Caffe: `if (pad_h_ || pad_w_)` clips BOTH axes.  Width: pad 0, kernel 1, stride 3 over 5
    # columns gives ceil(4/3)+1 = 3 windows, the last starting at column 6 >= 5 + 0 -> 2.
    x = np.random.default_rng(0).standard_normal((1, 2, 5, 5)).astype(F32)
    layer, bottom, top = make(
        'name: "p" type: "Pooling" bottom: "x" top: "y" pooling_param { pool: MAX kernel_h: 3 '
        'kernel_w: 1 stride_h: 2 stride_w: 3 pad_h: 1 pad_w: 0 }', [x])
    want_shape = (1, 2, caffe_pooled_size(5, 3, 2, 1, True), caffe_pooled_size(5, 1, 3, 0, True))
    assert want_shape == (1, 2, 3, 2)
    assert top[0].shape == want_shape
    layer.forward(bottom, top)
    np.testing.assert_array_equal(top[0].data, caffe_max_pool(x, (3, 1), (2, 3), (1, 0), want_shape[2:]))


def test_pooling_without_any_pad_keeps_the_window_that_starts_outside():
    # No pad at all: no clipping, the last window starts at column 6 of 5 -> Caffe keeps it and
    # its clipped range is empty (hstart > hend): the output stays -FLT_MAX.
    x = np.zeros((1, 1, 1, 5), F32)
    _, _, top = make('name: "p" type: "Pooling" bottom: "x" top: "y" pooling_param { pool: MAX '
                     'kernel_h: 1 kernel_w: 1 stride_h: 1 stride_w: 3 }', [x])
    assert top[0].shape == (1, 1, 1, caffe_pooled_size(5, 1, 3, 0, False)) == (1, 1, 1, 3)


# -- Softmax: Caffe's Backward_cpu ignores propagate_down ------------------------------------

def test_softmax_backward_writes_bottom_diff_even_without_propagate_down():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 3, 2)).astype(F32)
    layer, bottom, top = make('name: "s" type: "Softmax" bottom: "x" top: "y"', [x])
    layer.forward(bottom, top)
    dy = rng.standard_normal(x.shape).astype(F32)
    top[0].diff[...] = dy
    bottom[0].diff[...] = 7
    layer.backward(top, [False], bottom)
    y = top[0].data
    want = (dy - (dy * y).sum(axis=1, keepdims=True)) * y
    np.testing.assert_allclose(bottom[0].diff, want, rtol=1e-6, atol=1e-7)


# -- ContrastiveLoss: propagate_down[2] is never looked at -----------------------------------

def test_contrastive_loss_ignores_a_similarity_bottom_that_needs_backward():
    rng = np.random.default_rng(2)
    a, b = rng.standard_normal((3, 2)).astype(F32), rng.standard_normal((3, 2)).astype(F32)
    sim = np.array([1, 0, 1], F32)
    layer, bottom, top = make('name: "c" type: "ContrastiveLoss" bottom: "a" bottom: "b" '
                              'bottom: "s" top: "l" contrastive_loss_param { margin: 10 }',
                              [a, b, sim])
    layer.forward(bottom, top)
    top[0].diff[...] = 1
    bottom[2].diff[...] = 5
    layer.backward(top, [True, True, True], bottom)  # Caffe: no error, sim untouched
    np.testing.assert_array_equal(bottom[2].diff, 5)
    d = a - b
    dist = np.sqrt((d * d).sum(1))
    mdist = F32(10) - dist
    alpha = F32(1) / F32(3)
    scale = np.where(sim != 0, alpha, np.where(mdist > 0, -alpha * mdist / (dist + F32(1e-4)), 0))
    np.testing.assert_allclose(bottom[0].diff, scale[:, None] * d, rtol=1e-6)
    np.testing.assert_allclose(bottom[1].diff, -scale[:, None] * d, rtol=1e-6)


# -- Flatten / EuclideanLoss refusals --------------------------------------------------------

def test_flatten_refuses_end_axis_before_axis_like_blob_count():
    x = np.zeros((2, 3, 4, 5), F32)
    with pytest.raises(CaffeCaeError, match=r"layer 'f' \(Flatten\): end_axis"):
        make('name: "f" type: "Flatten" bottom: "x" top: "y" flatten_param { axis: 2 end_axis: 0 }', [x])


def test_flatten_empty_range_inserts_a_unit_axis():
    # count(2, 2) == 1 is legal in Caffe: axis 2, end_axis 1 inserts an axis of 1.
    x = np.zeros((2, 3, 4, 5), F32)
    _, _, top = make('name: "f" type: "Flatten" bottom: "x" top: "y" flatten_param { axis: 2 end_axis: 1 }', [x])
    assert top[0].shape == (2, 3, 1, 4, 5)


def test_euclidean_loss_refuses_more_than_four_axes():
    # Caffe divides by Blob::num(), a legacy accessor that CHECKs num_axes() <= 4.
    x = np.zeros((2, 1, 1, 1, 3), F32)
    with pytest.raises(CaffeCaeError, match=r"layer 'e' \(EuclideanLoss\).*> 4 axes"):
        make('name: "e" type: "EuclideanLoss" bottom: "a" bottom: "b" top: "l"', [x, x])


# -- Eltwise SUM in place --------------------------------------------------------------------

def test_eltwise_sum_in_place_drops_bottom_zero_like_caffe():
    # Eltwise Forward_cpu SUM: caffe_set(top, 0) then axpy over the bottoms; with top == bottom 0
    # the first bottom is zeroed before it is read.
    rng = np.random.default_rng(3)
    a, b = rng.standard_normal((2, 3)).astype(F32), rng.standard_normal((2, 3)).astype(F32)
    layer, bottom, top = make('name: "e" type: "Eltwise" bottom: "a" bottom: "b" top: "a" '
                              'eltwise_param { operation: SUM coeff: 2 coeff: 3 }', [a, b],
                              in_place=True)
    layer.forward(bottom, top)
    np.testing.assert_array_equal(top[0].data, F32(3) * b)


def test_eltwise_sum_not_in_place_is_the_weighted_sum():
    rng = np.random.default_rng(3)
    a, b = rng.standard_normal((2, 3)).astype(F32), rng.standard_normal((2, 3)).astype(F32)
    layer, bottom, top = make('name: "e" type: "Eltwise" bottom: "a" bottom: "b" top: "c" '
                              'eltwise_param { operation: SUM coeff: 2 coeff: 3 }', [a, b])
    layer.forward(bottom, top)
    np.testing.assert_allclose(top[0].data, 2 * a + 3 * b, rtol=1e-6)


# -- float rounding as Caffe's C++ evaluates it ----------------------------------------------

def test_sigmoid_is_double_precision_rounded_once():
    x = np.array([-40, -12.25, -7.5, -3, 0, 2.5, 15], F32)
    layer, bottom, top = make('name: "s" type: "Sigmoid" bottom: "x" top: "y"', [x])
    layer.forward(bottom, top)
    want = np.array([0.5 * math.tanh(0.5 * float(v)) + 0.5 for v in x]).astype(F32)
    assert want[0] == 0  # the tanh form cancels to 0 in double far out, as in Caffe
    assert want[1] != F32(0.5) * np.tanh(F32(0.5) * x[1]) + F32(0.5)  # float32 tanh differs
    np.testing.assert_array_equal(top[0].data, want)
    dy = np.linspace(-1, 1, x.size).astype(F32)
    top[0].diff[...] = dy
    layer.backward(top, [True], bottom)
    y = top[0].data
    # top_diff * sigmoid_x (float) * (1. - sigmoid_x) (double), rounded once
    want_dx = ((dy * y).astype(np.float64) * (1.0 - y.astype(np.float64))).astype(F32)
    np.testing.assert_array_equal(bottom[0].diff, want_dx)


def test_sigmoid_reproduces_the_golden_case_bit_for_bit():
    case = GoldenCase("sigmoid")
    x = case.data["in/x"]
    layer, bottom, top = make('name: "s" type: "Sigmoid" bottom: "x" top: "y"', [x])
    layer.forward(bottom, top)
    np.testing.assert_array_equal(top[0].data, case.data["out/y"])
    top[0].diff[...] = case.data["top_diff/y"]
    layer.backward(top, [True], bottom)
    np.testing.assert_array_equal(bottom[0].diff, case.data["diff/x"])


def test_power_two_gradient_multiplies_float_members():
    # Caffe: axpby(diff_scale_ * scale_, x) + diff_scale_ * shift_, every product in float.
    x = np.linspace(-3, 3, 13).astype(F32)
    layer, bottom, top = make('name: "p" type: "Power" bottom: "x" top: "y" power_param '
                              '{ power: 2 scale: 0.1 shift: 0.3 }', [x])
    layer.forward(bottom, top)
    top[0].diff[...] = 1
    layer.backward(top, [True], bottom)
    diff_scale = F32(2) * F32(0.1)
    want = (diff_scale * F32(0.1)) * x + diff_scale * F32(0.3)
    np.testing.assert_array_equal(bottom[0].diff, want)


def test_sigmoid_cross_entropy_gradient_uses_caffes_sigmoid():
    x = np.array([[-25.0, -3.0, 0.5, 8.0]], F32)
    t = np.array([[0.0, 1.0, 1.0, 0.0]], F32)
    layer, bottom, top = make('name: "l" type: "SigmoidCrossEntropyLoss" bottom: "x" bottom: "t" '
                              'top: "l"', [x, t])
    layer.forward(bottom, top)
    top[0].diff[...] = 1
    layer.backward(top, [True, False], bottom)
    sig = (0.5 * np.tanh(0.5 * x.astype(np.float64)) + 0.5).astype(F32)
    np.testing.assert_array_equal(bottom[0].diff, (sig - t) * F32(1))


# -- Dropout ---------------------------------------------------------------------------------

def test_dropout_ratio_is_not_checked_in_test_phase():
    # Caffe's DCHECKs on dropout_ratio vanish in release builds; in TEST the layer copies.
    x = np.arange(6, dtype=F32).reshape(2, 3)
    layer, bottom, top = make('name: "d" type: "Dropout" bottom: "x" top: "y" '
                              'dropout_param { dropout_ratio: 1 }', [x])
    layer.forward(bottom, top)
    np.testing.assert_array_equal(top[0].data, x)
    param = parse_text('name: "d" type: "Dropout" bottom: "x" top: "y" dropout_param '
                       '{ dropout_ratio: 1 }', caffe_pb2.LayerParameter, "<audit>")
    with pytest.raises(CaffeCaeError, match=r"layer 'd' \(Dropout\): dropout_ratio"):
        create_layer(param, caffe_pb2.TRAIN).setup([(2, 3)])


# -- loss accumulation: double-precision terms, float running sum (Caffe's loops) ------------

def test_sigmoid_cross_entropy_loss_is_a_sequential_float_sum_of_double_terms():
    rng = np.random.default_rng(4)
    x = (rng.standard_normal((3, 1000)) * 4).astype(F32)
    t = rng.random((3, 1000)).astype(F32)
    layer, bottom, top = make('name: "l" type: "SigmoidCrossEntropyLoss" bottom: "x" bottom: "t" '
                              'top: "l"', [x, t])
    layer.forward(bottom, top)
    loss = F32(0)
    for xi, ti in zip(x.ravel().tolist(), t.ravel().tolist()):  # the C++ loop, literally
        xi, ti = F32(xi), F32(ti)
        pos = F32(xi >= 0)
        term = float(xi * (ti - pos)) - math.log(1 + math.exp(float(xi - F32(2) * xi * pos)))
        loss = F32(float(loss) - term)
    assert top[0].data == loss / F32(3)


def test_softmax_loss_is_a_sequential_float_sum_of_double_logs():
    rng = np.random.default_rng(5)
    s = rng.standard_normal((700, 5)).astype(F32)
    label = rng.integers(0, 5, 700).astype(F32)
    layer, bottom, top = make('name: "l" type: "SoftmaxWithLoss" bottom: "s" bottom: "y" top: "l"',
                              [s, label])
    layer.forward(bottom, top)
    prob = layer.prob
    loss = F32(0)
    for i in range(700):
        p = max(prob[i, int(label[i])], np.finfo(np.float32).tiny)
        loss = F32(float(loss) - math.log(float(p)))
    assert top[0].data == loss / F32(700)


@pytest.mark.parametrize("case_name", ["sce_loss_w2", "softmax_loss", "softmax_loss_spatial",
                                       "contrastive", "contrastive_legacy", "euclidean_loss"])
def test_loss_layer_golden_values_bit_for_bit(case_name):
    import caffe_cae

    case = GoldenCase(case_name)
    net = caffe_cae.Net(str(case.path("net.prototxt")), str(case.path("init.caffemodel")), caffe_cae.TEST)
    for name in case.keys("in"):
        net.blobs[name].data[...] = case.data[f"in/{name}"]
    net.forward_loss()
    for name in case.keys("loss"):
        assert net.blobs[name].data == case.data[f"loss/{name}"], name


@pytest.mark.parametrize("case_name", ["model1", "model4_bvlc_equiv", "deep_ae"])
def test_paper_model_sce_loss_bit_for_bit_from_caffes_own_inputs(case_name):
    """Fed Caffe's own bottoms, the SigmoidCrossEntropyLoss of the paper-sized models gives
    Caffe's float exactly (a pairwise sum is off in the 6th digit on 6272 terms)."""
    case = GoldenCase(case_name)
    layers = case.info["layers"]
    loss_layer = next(layer for layer in layers if layer["type"] == "SigmoidCrossEntropyLoss")

    def value_before(blob):
        producers = [layer for layer in layers if layer["index"] < loss_layer["index"]
                     and blob in layer["tops"]]
        last = producers[-1]
        return case.data[last["top_keys"][last["tops"].index(blob)]]

    x, t = (value_before(b) for b in loss_layer["bottoms"])
    text = ('name: "l" type: "SigmoidCrossEntropyLoss" bottom: "x" bottom: "t" top: "l"')
    layer, bottom, top = make(text, [x, t])
    layer.forward(bottom, top)
    assert top[0].data == case.data[loss_layer["top_keys"][0]]


def test_max_pooling_empty_window_diff_lands_in_previous_plane_like_caffe():
    """stride > kernel without pad: ceil gives a last window that starts beyond the image.
    Caffe keeps -FLT_MAX and argmax -1 there, and its backward adds the window's top diff at
    bottom_diff[-1] relative to the current plane = the last cell of the previous plane."""
    x = np.arange(2 * 3 * 4, dtype=F32).reshape(2 * 3, 4)[:, None, None, :].reshape(2, 3, 1, 4)
    layer, bottom, top = make('name: "p" type: "Pooling" bottom: "x" top: "y" top: "m" '
                              'pooling_param { pool: MAX kernel_h: 1 kernel_w: 1 stride_h: 1 '
                              'stride_w: 2 }', [x])
    assert top[0].shape == (2, 3, 1, 3)  # ceil(3/2)+1 = 3; window 2 starts at column 4 of 4
    layer.forward(bottom, top)
    flt_max = np.finfo(np.float32).max
    np.testing.assert_array_equal(top[0].data[..., 2], -flt_max)
    np.testing.assert_array_equal(top[1].data[..., 2], -1)
    dy = np.arange(1, 19, dtype=F32).reshape(2, 3, 1, 3)
    top[0].diff[...] = dy
    layer.backward(top, [True], bottom)
    # Caffe's loop, literally (plane by plane, the -1 index wrapping into the previous plane)
    want = np.zeros(2 * 3 * 4, F32)
    for plane in range(6):
        for pw in range(3):
            index = int(top[1].data.reshape(6, 3)[plane, pw])
            target = plane * 4 + index
            if target >= 0:
                want[target] += dy.reshape(6, 3)[plane, pw]
    np.testing.assert_array_equal(bottom[0].diff.reshape(-1), want)


# -- Reshape: the examples documented in caffe.proto's ReshapeParameter ---------------------

@pytest.mark.parametrize("spec, want", [
    ("shape { dim: 2 dim: 2 dim: 4 }", (2, 2, 4)),
    ("shape { dim: 0 dim: 2 dim: 4 }", (2, 2, 4)),
    ("shape { dim: 0 dim: 2 dim: -1 }", (2, 2, 4)),
    ("shape { dim: 0 dim: -1 dim: 4 }", (2, 2, 4)),
    ("shape { dim: 2 dim: 4 } axis: 1", (2, 2, 4)),
    ("shape { dim: 1 dim: 2 dim: 8 }", (1, 2, 8)),
    ("shape { dim: 1 dim: 2 } num_axes: 1", (1, 2, 8)),
    ("shape { dim: 1 } num_axes: 0", (1, 2, 8)),
    ("shape { dim: 1 } axis: 1 num_axes: 0", (2, 1, 8)),
    ("shape { dim: 1 } axis: -1", (2, 8, 1)),       # -1: after the last axis, nothing replaced
    ("shape { dim: -1 } axis: -2", (2, 8)),         # -2: only the last axis is replaced
    ("shape { dim: 0 dim: -1 }", (2, 8)),           # = Flatten
])
def test_reshape_documented_examples(spec, want):
    x = np.arange(16, dtype=F32).reshape(2, 8)
    layer, bottom, top = make(f'name: "r" type: "Reshape" bottom: "x" top: "y" reshape_param {{ {spec} }}', [x])
    assert top[0].shape == want
    layer.forward(bottom, top)
    np.testing.assert_array_equal(top[0].data.reshape(-1), x.reshape(-1))


@pytest.mark.parametrize("spec, message", [
    ("shape { dim: -1 dim: -1 }", "multiple -1"),
    ("shape { dim: 0 dim: 0 dim: 0 }", "no corresponding bottom axis"),
    ("shape { dim: 3 dim: -1 }", "divisible"),
    ("shape { dim: 2 } axis: 1 num_axes: 2", "out of range"),
    ("shape { dim: 2 } axis: -4", "out of range"),
    ("shape { dim: 5 dim: 3 }", "count must match"),
])
def test_reshape_refusals(spec, message):
    x = np.zeros((2, 8), F32)
    with pytest.raises(CaffeCaeError, match=message):
        make(f'name: "r" type: "Reshape" bottom: "x" top: "y" reshape_param {{ {spec} }}', [x])
