"""Pooling against Caffe's golden data, a direct loop reference, gradients, shape rules."""
from __future__ import annotations

import numpy as np
import pytest

from caffe_cae.blob import Blob
from caffe_cae.errors import CaffeCaeError
from caffe_cae.layers import create_layer
from caffe_cae.proto import caffe_pb2
from caffe_cae.prototxt import parse_text
from caffe_cae.testing import check_gradients
from tests.helpers.layer_golden import Case, assert_close, build


def layer_param(text):
    return parse_text(text, caffe_pb2.LayerParameter, "<test>")


GOLDEN = ["pool_max_k2s2_mask", "pool_max_k3s2_7x8", "pool_max_k2s2_7x7", "pool_max_k3s2p1",
          "pool_max_k3s3p1_clip", "pool_ave_k3s2p1", "pool_global_ave"]


@pytest.mark.usefixtures("each_engine")
@pytest.mark.parametrize("case_name", GOLDEN)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_golden(case_name, dtype):
    case = Case(case_name)
    param = case.layer_param("pool")
    layer, bottom, top = build(param, [case.npz["in/x"]], dtype=dtype)
    layer.forward(bottom, top)
    for blob in top:  # y, and the mask when there is one (exact)
        assert_close(blob.data, case.npz[f"out/{blob.name}"], case.tol["forward"], blob.name)
    if len(top) > 1:
        np.testing.assert_array_equal(top[1].data, case.npz["out/mask"])
    top[0].diff[...] = case.npz["top_diff/y"]
    if len(top) > 1:
        top[1].diff[...] = np.nan  # Caffe ignores the mask's diff
    bottom[0].diff[...] = 7.0  # must be overwritten
    layer.backward(top, [True], bottom)
    assert_close(bottom[0].diff, case.npz["diff/x"], case.tol["backward"], "diff/x")


@pytest.mark.usefixtures("each_engine")
def test_golden_ties_first_maximum_wins():
    """Integer-valued input: ties are resolved as Caffe's strict '>' row-major scan does."""
    case = Case("pool_max_k2s2_mask")
    x = case.npz["in/x"]
    windows = x.reshape(2, 3, 3, 2, 3, 2).transpose(0, 1, 2, 4, 3, 5).reshape(2, 3, 3, 3, 4)
    assert (np.sort(windows, -1)[..., -1] == np.sort(windows, -1)[..., -2]).any()  # ties exist


def reference_pool(x, kernel, stride, pad, pooled, method):
    """Caffe's CPU loops, literally (slow; small inputs only)."""
    n, c, h, w = x.shape
    (kh, kw), (sh, sw), (ph_, pw_) = kernel, stride, pad
    y = np.zeros((n, c) + pooled)
    mask = np.full((n, c) + pooled, -1.0)
    for ph in range(pooled[0]):
        for pw in range(pooled[1]):
            hs, ws_ = ph * sh - ph_, pw * sw - pw_
            if method == "max":
                he, we = min(hs + kh, h), min(ws_ + kw, w)
                hs, ws_ = max(hs, 0), max(ws_, 0)
                best = np.full((n, c), -np.finfo(np.float32).max)
                for hh in range(hs, he):
                    for ww in range(ws_, we):
                        better = x[:, :, hh, ww] > best
                        best = np.where(better, x[:, :, hh, ww], best)
                        mask[:, :, ph, pw] = np.where(better, hh * w + ww, mask[:, :, ph, pw])
                y[:, :, ph, pw] = best
            else:
                he, we = min(hs + kh, h + ph_), min(ws_ + kw, w + pw_)
                size = (he - hs) * (we - ws_)
                hs, ws_, he, we = max(hs, 0), max(ws_, 0), min(he, h), min(we, w)
                y[:, :, ph, pw] = x[:, :, hs:he, ws_:we].sum(axis=(2, 3)) / size
    return y, mask


@pytest.mark.parametrize("method", ["MAX", "AVE"])
@pytest.mark.parametrize("hw, k, s, p, rnd", [
    ((7, 9), (3, 2), (2, 3), (1, 1), "CEIL"),
    ((8, 8), (3, 3), (3, 3), (2, 1), "CEIL"),
    ((6, 7), (2, 2), (2, 2), (0, 0), "FLOOR"),
    ((5, 5), (1, 1), (3, 3), (0, 0), "CEIL"),      # stride > kernel: windows skip cells
    ((24, 24), (2, 2), (2, 2), (0, 0), "CEIL"),    # the CAE models' pooling
    ((4, 5), (5, 6), (2, 2), (0, 0), "CEIL"),      # kernel larger than the image
])
def test_matches_caffe_loops(method, hw, k, s, p, rnd):
    rng = np.random.default_rng(7)
    x = rng.integers(-3, 4, (2, 3) + hw).astype(np.float32)  # many ties
    tops = 'top: "y" top: "m"' if method == "MAX" else 'top: "y"'
    param = layer_param(
        f'name: "p" type: "Pooling" bottom: "x" {tops} pooling_param {{ pool: {method} '
        f"kernel_h: {k[0]} kernel_w: {k[1]} stride_h: {s[0]} stride_w: {s[1]} pad_h: {p[0]} "
        f"pad_w: {p[1]} round_mode: {rnd} }}")
    layer, bottom, top = build(param, [x])
    layer.forward(bottom, top)
    y, mask = reference_pool(x.astype(np.float64), k, s, p, top[0].shape[2:], method.lower())
    np.testing.assert_allclose(top[0].data, y, rtol=1e-6)
    if method == "MAX":
        np.testing.assert_array_equal(top[1].data, mask)
        # backward: each top diff lands on its argmax, accumulating where windows share it
        dy = rng.standard_normal(top[0].shape).astype(np.float32)
        top[0].diff[...] = dy
        layer.backward(top, [True], bottom)
        expected = np.zeros(x.shape)
        flat = expected.reshape(2 * 3, -1)
        for plane, (m, d) in enumerate(zip(mask.reshape(6, -1), dy.reshape(6, -1))):
            valid = m >= 0
            np.add.at(flat[plane], m[valid].astype(int), d[valid])
            if plane:  # empty windows (mask -1): Caffe's bottom_diff[-1] = previous plane's end
                flat[plane - 1, -1] += d[~valid].sum()
        np.testing.assert_allclose(bottom[0].diff, expected, rtol=1e-6, atol=1e-6)


def test_shapes_ceil_clip_and_floor():
    def shape(params, bottom):
        layer = create_layer(layer_param(
            f'name: "p" type: "Pooling" bottom: "x" top: "y" pooling_param {{ {params} }}'))
        layer.setup([bottom])
        return layer.reshape([bottom])[0]

    assert shape("kernel_size: 3 stride: 2", (1, 1, 7, 8)) == (1, 1, 3, 4)  # ceil
    assert shape("kernel_size: 3 stride: 2 round_mode: FLOOR", (1, 1, 7, 8)) == (1, 1, 3, 3)
    assert shape("kernel_size: 3 stride: 3 pad: 1", (1, 1, 8, 8)) == (1, 1, 3, 3)  # clip rule
    assert shape("kernel_size: 2 stride: 2", (1, 1, 1, 1)) == (1, 1, 1, 1)
    assert shape("pool: AVE global_pooling: true", (2, 3, 5, 4)) == (2, 3, 1, 1)


def test_global_max_pooling_mask():
    x = np.arange(2 * 3 * 4 * 5, dtype=np.float32).reshape(2, 3, 4, 5) % 7
    param = layer_param('name: "p" type: "Pooling" bottom: "x" top: "y" top: "m" '
                        'pooling_param { pool: MAX global_pooling: true }')
    layer, bottom, top = build(param, [x])
    layer.forward(bottom, top)
    flat = x.reshape(2, 3, -1)
    np.testing.assert_array_equal(top[0].data[..., 0, 0], flat.max(-1))
    np.testing.assert_array_equal(top[1].data[..., 0, 0], flat.argmax(-1))


def test_reshape_to_new_size():
    param = layer_param('name: "p" type: "Pooling" bottom: "x" top: "y" '
                        'pooling_param { pool: MAX kernel_size: 2 stride: 2 }')
    layer = create_layer(param)
    layer.setup([(1, 1, 4, 4)])
    assert layer.reshape([(1, 1, 4, 4)]) == [(1, 1, 2, 2)]
    assert layer.reshape([(3, 2, 9, 9)]) == [(3, 2, 5, 5)]
    x = np.arange(3 * 2 * 81, dtype=np.float32).reshape(3, 2, 9, 9)
    bottom, top = [Blob(x.shape)], [Blob((3, 2, 5, 5))]
    bottom[0].data[...] = x
    layer.forward(bottom, top)
    assert top[0].data[0, 0, 4, 4] == x[0, 0, 8, 8] and top[0].data[0, 0, 0, 0] == x[0, 0, 1, 1]


GRADIENT_CASES = [
    ('top: "y" top: "m"', "pool: MAX kernel_size: 3 stride: 2 pad: 1", (2, 2, 7, 6), (1,)),
    ('top: "y"', "pool: MAX kernel_size: 2 stride: 2", (2, 3, 6, 6), ()),
    ('top: "y"', "pool: MAX kernel_size: 3 stride: 1", (1, 2, 5, 4), ()),  # overlapping
    ('top: "y"', "pool: AVE kernel_size: 3 stride: 2 pad: 1", (2, 2, 7, 6), ()),
    ('top: "y"', "pool: AVE global_pooling: true", (2, 3, 4, 3), ()),
]


@pytest.mark.parametrize("tops, params, shape, ignored", GRADIENT_CASES)
def test_numerical_gradients(tops, params, shape, ignored):
    text = f'name: "p" type: "Pooling" bottom: "x" {tops} pooling_param {{ {params} }}'
    report = check_gradients(text, [shape], ignored_tops=ignored)
    assert report.blobs[0].checked > 0


@pytest.mark.parametrize("params, shape, message", [
    ("pool: STOCHASTIC kernel_size: 2", (1, 1, 4, 4), "STOCHASTIC is not supported"),
    ("pool: MAX", (1, 1, 4, 4), "filter size is required"),
    ("kernel_size: 2 kernel_h: 2 kernel_w: 2", (1, 1, 4, 4), "not both"),
    ("kernel_size: 2 pad: 2", (1, 1, 4, 4), "must be smaller than kernel"),
    ("kernel_size: 2 pad_h: 1", (1, 1, 4, 4), "pad is pad OR pad_h and pad_w"),
    ("kernel_size: 2 stride_w: 1", (1, 1, 4, 4), "stride is stride OR"),
    ("global_pooling: true kernel_size: 2", (1, 1, 4, 4), "cannot be specified"),
    ("global_pooling: true stride: 2", (1, 1, 4, 4), "only pad = 0 and stride = 1"),
    ("kernel_size: 2", (1, 4, 4), "must have 4 axes"),
    ("kernel_size: 5 round_mode: FLOOR", (1, 1, 4, 4), "not positive"),
])
def test_errors_name_the_layer(params, shape, message):
    layer = create_layer(layer_param(f'name: "bad" type: "Pooling" bottom: "x" top: "y" '
                                     f"pooling_param {{ {params} }}"))
    with pytest.raises(CaffeCaeError, match="layer 'bad' \\(Pooling\\)") as err:
        layer.setup([shape])
        layer.reshape([shape])
    assert message in str(err.value)


def test_ave_has_one_top_max_two():
    for method, ok in (("MAX", True), ("AVE", False)):
        layer = create_layer(layer_param(f'name: "p" type: "Pooling" bottom: "x" top: "y" '
                                         f'top: "m" pooling_param {{ pool: {method} '
                                         f"kernel_size: 2 }}"))
        if ok:
            layer.check_blob_counts(1, 2)
        else:
            with pytest.raises(CaffeCaeError, match="at most 1 top"):
                layer.check_blob_counts(1, 2)
