"""Unpooling (Noh's fork) against the fork's own outputs, semantics, gradients, errors."""
from __future__ import annotations

import numpy as np
import pytest

from caffe_cae.errors import CaffeCaeError
from caffe_cae.layers import create_layer
from caffe_cae.proto import caffe_pb2
from caffe_cae.prototxt import parse_text
from caffe_cae.testing import check_gradients
from tests.helpers.layer_golden import build
from tests.helpers.paths import GOLDEN_NOH

NOH = GOLDEN_NOH / "unpool_test"
UNPOOL = "unpooling_param { unpool: MAX kernel_size: 2 stride: 2 unpool_size: 6 }"


def layer_param(text):
    return parse_text(text, caffe_pb2.LayerParameter, "<test>")


@pytest.fixture(scope="module")
def noh():
    return dict(np.load(NOH / "unpool_test_results.npz"))


def _noh_pipeline(noh, dtype=np.float32):
    """pool -> (unpool with switches, unpool without) built from the fork's test net."""
    pool, pb, pt = build(layer_param(
        'name: "pool" type: "Pooling" bottom: "data" top: "pool" top: "pool_mask" '
        "pooling_param { pool: MAX kernel_size: 2 stride: 2 }"), [noh["data"]], dtype=dtype)
    pool.forward(pb, pt)
    with_mask, wb, wt = build(layer_param(
        f'name: "unpool_mask" type: "Unpooling" bottom: "pool" bottom: "pool_mask" '
        f'top: "unpool_mask" {UNPOOL}'), [pt[0].data, pt[1].data], dtype=dtype)
    no_mask, nb, nt = build(layer_param(
        f'name: "unpool_nomask" type: "Unpooling" bottom: "pool" top: "unpool_nomask" '
        f"{UNPOOL}"), [pt[0].data], dtype=dtype)
    with_mask.forward(wb, wt)
    no_mask.forward(nb, nt)
    return (pool, pb, pt), (with_mask, wb, wt), (no_mask, nb, nt)


@pytest.mark.usefixtures("each_engine")
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_noh_fork_forward_and_backward(noh, dtype):
    (pool, pb, pt), (with_mask, wb, wt), (no_mask, nb, nt) = _noh_pipeline(noh, dtype)
    np.testing.assert_array_equal(pt[0].data, noh["pool"])
    np.testing.assert_array_equal(pt[1].data, noh["pool_mask"])
    np.testing.assert_array_equal(wt[0].data, noh["unpool_mask"])
    np.testing.assert_array_equal(nt[0].data, noh["unpool_nomask"])

    wt[0].diff[...] = noh["unpool_mask_diff"]
    nt[0].diff[...] = noh["unpool_nomask_diff"]
    wb[1].diff[...] = 99.0
    with_mask.backward(wt, [True, False], wb)
    no_mask.backward(nt, [True], nb)
    assert (wb[1].diff == 99.0).all()  # no gradient reaches the mask
    pool_diff = wb[0].diff + nb[0].diff  # the automatic Split sums both branches
    np.testing.assert_allclose(pool_diff, noh["pool_diff"], rtol=1e-6, atol=1e-7)
    pt[0].diff[...] = pool_diff
    pool.backward(pt, [True], pb)
    np.testing.assert_allclose(pb[0].diff, noh["data_diff"], rtol=1e-6, atol=1e-7)


def test_switches_restore_positions_and_no_switches_use_top_left(noh):
    _, (_, wb, wt), (_, nb, nt) = _noh_pipeline(noh)
    data = noh["data"]
    windows = data.reshape(2, 3, 3, 2, 3, 2)
    is_max = data == np.repeat(np.repeat(windows.max(axis=(3, 5)), 2, 2), 2, 3)
    np.testing.assert_array_equal(wt[0].data, np.where(is_max, data, 0))  # original positions
    expected = np.zeros_like(data)
    expected[:, :, ::2, ::2] = wb[0].data
    np.testing.assert_array_equal(nt[0].data, expected)  # top-left cell of each window
    # gradients flow back through the same positions
    dy = np.random.default_rng(0).standard_normal(data.shape).astype(np.float32)
    _, (with_mask, wb, wt), (no_mask, nb, nt) = _noh_pipeline(noh)
    wt[0].diff[...] = dy
    with_mask.backward(wt, [True, False], wb)
    planes = dy.reshape(6, 36)
    switches = wb[1].data.reshape(6, 9).astype(int)
    np.testing.assert_array_equal(wb[0].diff.reshape(6, 9),
                                  np.take_along_axis(planes, switches, axis=1))
    nt[0].diff[...] = dy
    no_mask.backward(nt, [True], nb)
    np.testing.assert_array_equal(nb[0].diff, dy[:, :, ::2, ::2])


def test_clamped_placement_when_unpool_size_is_small():
    """ph*stride beyond the map clamps to the last row/col; the last input wins there and
    every clamped input reads that cell's diff back."""
    x = np.arange(1, 1 + 2 * 4 * 4, dtype=np.float32).reshape(1, 2, 4, 4)
    layer, b, t = build(layer_param(
        'name: "u" type: "Unpooling" bottom: "x" top: "y" '
        "unpooling_param { kernel_size: 2 stride: 2 unpool_h: 5 unpool_w: 7 }"), [x])
    layer.forward(b, t)
    rows = np.clip(np.arange(4) * 2, 0, 4)  # 0 2 4 4
    cols = np.clip(np.arange(4) * 2, 0, 6)  # 0 2 4 6
    expected = np.zeros((1, 2, 5, 7), np.float32)
    for ph in range(4):
        for pw in range(4):
            expected[:, :, rows[ph], cols[pw]] = x[:, :, ph, pw]  # sequential: last wins
    np.testing.assert_array_equal(t[0].data, expected)
    dy = np.random.default_rng(1).standard_normal(t[0].shape).astype(np.float32)
    t[0].diff[...] = dy
    layer.backward(t, [True], b)
    np.testing.assert_array_equal(b[0].diff, dy[:, :, rows[:, None], cols])


def _fork_loops(x, k, s, size, method):
    """The fork's AVE/TILE CPU loops (top zeroed first), literally."""
    n, c, h, w = x.shape
    y = np.zeros((n, c) + size)
    for ph in range(h):
        for pw in range(w):
            hs, ws_ = ph * s, pw * s
            he, we = min(hs + k, size[0]), min(ws_ + k, size[1])
            pool = (he - hs) * (we - ws_)
            v = x[:, :, ph, pw] / pool if method == "AVE" else x[:, :, ph, pw]
            y[:, :, hs:he, ws_:we] += v[:, :, None, None]
    return y


@pytest.mark.parametrize("method", ["AVE", "TILE"])
@pytest.mark.parametrize("k, s, size", [(2, 2, (6, 6)), (3, 2, (7, 6)), (3, 2, (6, 5))])
def test_ave_and_tile_match_fork_loops(method, k, s, size):
    rng = np.random.default_rng(2)
    x = rng.standard_normal((2, 3, 3, 3))
    layer, b, t = build(layer_param(
        f'name: "u" type: "Unpooling" bottom: "x" top: "y" unpooling_param {{ unpool: {method} '
        f"kernel_size: {k} stride: {s} unpool_h: {size[0]} unpool_w: {size[1]} }}"), [x],
        dtype=np.float64)
    layer.forward(b, t)
    layer.forward(b, t)  # no accumulation across calls (the fork's CPU AVE bug is not copied)
    np.testing.assert_allclose(t[0].data, _fork_loops(x, k, s, size, method), rtol=1e-12)
    # backward (both): window sum of top_diff divided by the window size
    dy = rng.standard_normal(t[0].shape)
    t[0].diff[...] = dy
    layer.backward(t, [True], b)
    expected = np.zeros(x.shape)
    for ph in range(3):
        for pw in range(3):
            hs, ws_ = ph * s, pw * s
            he, we = min(hs + k, size[0]), min(ws_ + k, size[1])
            expected[:, :, ph, pw] = dy[:, :, hs:he, ws_:we].sum(axis=(2, 3)) / (
                (he - hs) * (we - ws_))
    np.testing.assert_allclose(b[0].diff, expected, rtol=1e-12)


@pytest.mark.parametrize("params, shapes, values, scale", [
    ("unpool: MAX kernel_size: 2 stride: 2 unpool_size: 6", [(2, 3, 3, 3)], None, None),
    ("unpool: MAX kernel_size: 2 stride: 2 unpool_h: 6 unpool_w: 7", [(1, 2, 3, 3)], None, None),
    ("unpool: AVE kernel_size: 3 stride: 2 unpool_h: 7 unpool_w: 6", [(2, 2, 3, 3)], None, None),
    # TILE's backward is the window mean: true gradient / 4 for exactly fitting 2x2 windows
    ("unpool: TILE kernel_size: 2 stride: 2 unpool_size: 6", [(2, 2, 3, 3)], None, {0: 0.25}),
])
def test_numerical_gradients(params, shapes, values, scale):
    text = f'name: "u" type: "Unpooling" bottom: "x" top: "y" unpooling_param {{ {params} }}'
    report = check_gradients(text, shapes, values, grad_scale=scale)
    assert report.blobs[0].checked > 0


def test_numerical_gradient_with_switches():
    rng = np.random.default_rng(3)
    mask = np.stack([rng.permutation(36)[:9] for _ in range(6)]).reshape(2, 3, 3, 3)
    text = (f'name: "u" type: "Unpooling" bottom: "x" bottom: "m" top: "y" {UNPOOL}')
    report = check_gradients(text, [(2, 3, 3, 3), (2, 3, 3, 3)],
                             [None, mask.astype(np.float64)])
    assert [b.name for b in report.blobs] == ["bottom 0"]  # nothing for the mask


@pytest.mark.parametrize("params, shapes, message", [
    ("kernel_size: 2 stride: 2", [(1, 1, 3, 3)], "unpool_size OR unpool_h and unpool_w"),
    ("kernel_size: 2 stride: 2 unpool_size: 6 unpool_h: 6 unpool_w: 6", [(1, 1, 3, 3)],
     "unpool_size OR"),
    ("kernel_size: 2 stride: 2 pad: 1 unpool_size: 6", [(1, 1, 3, 3)], "only zero padding"),
    ("stride: 2 unpool_size: 6", [(1, 1, 3, 3)], "filter size is required"),
    ("kernel_size: 2 stride: 2 unpool_size: 6", [(1, 3, 3)], "must have 4 axes"),
    ("kernel_size: 2 stride: 2 unpool_size: 6", [(1, 1, 3, 3), (1, 1, 3, 2)],
     "mask bottom 'b1' has shape"),
    ("unpool: AVE kernel_size: 2 stride: 2 unpool_size: 3", [(1, 1, 3, 3)], "too small"),
])
def test_errors_name_the_layer(params, shapes, message):
    bottoms = " ".join(f'bottom: "b{i}"' for i in range(len(shapes)))
    layer = create_layer(layer_param(f'name: "bad" type: "Unpooling" {bottoms} top: "y" '
                                     f"unpooling_param {{ {params} }}"))
    with pytest.raises(CaffeCaeError, match="layer 'bad' \\(Unpooling\\)") as err:
        layer.setup(shapes)
        layer.reshape(shapes)
    assert message in str(err.value)


def test_mask_out_of_range_is_an_error():
    layer, b, t = build(layer_param(f'name: "u" type: "Unpooling" bottom: "x" bottom: "m" '
                                    f'top: "y" {UNPOOL}'),
                        [np.ones((1, 1, 3, 3)), np.full((1, 1, 3, 3), 36.0)])
    with pytest.raises(CaffeCaeError, match="mask bottom 'm' holds index 36 outside"):
        layer.forward(b, t)


def test_blob_counts():
    one = create_layer(layer_param(f'name: "u" type: "Unpooling" bottom: "x" top: "y" '
                                   'unpooling_param { unpool: AVE kernel_size: 2 unpool_size: 4 }'))
    with pytest.raises(CaffeCaeError, match="at most 1 bottom"):
        one.check_blob_counts(2, 1)
    two = create_layer(layer_param(f'name: "u" type: "Unpooling" bottom: "x" top: "y" {UNPOOL}'))
    two.check_blob_counts(2, 1)
    assert two.allow_force_backward(0) and not two.allow_force_backward(1)
    assert two.gradient_check == "kink"
