"""Convolution / Deconvolution against Caffe's golden data, numerical gradients, shape rules."""
from __future__ import annotations

import numpy as np
import pytest

from caffe_cae.blob import Blob
from caffe_cae.errors import CaffeCaeError
from caffe_cae import tuning
from caffe_cae.layers import create_layer
from caffe_cae.proto import caffe_pb2
from caffe_cae.prototxt import parse_text
from caffe_cae.testing import check_gradients
from caffe_cae.weights import read_weights
from tests.helpers.layer_golden import Case, assert_close, build
from tests.helpers.paths import GOLDEN


def layer_param(text):
    return parse_text(text, caffe_pb2.LayerParameter, "<test>")


def run_golden_layer(case_name, layer_name, dtype=np.float32):
    """One layer of a golden case, params from init.caffemodel: compare tops, bottom diffs and
    param diffs with what Caffe recorded.  Returns (layer, bottom, top)."""
    case = Case(case_name)
    param = case.layer_param(layer_name)
    info = case.layer_info(layer_name)
    inputs = [case.value_before(layer_name, b) for b in param.bottom]
    layer, bottom, top = build(param, inputs, dtype=dtype)
    saved = read_weights(GOLDEN / case_name / "init.caffemodel").get(layer_name, [])
    expected = [tuple(s) for s in info["param_shapes"]]
    assert [w.shape for w in saved] == expected
    assert layer.setup([b.shape for b in bottom]) == expected  # fresh setup, same shapes
    layer.reshape([b.shape for b in bottom])
    layer.blobs = []
    for i, w in enumerate(saved):
        blob = Blob(w.shape, dtype, f"{layer_name}/{i}")
        blob.data[...] = w
        layer.blobs.append(blob)
    layer.forward(bottom, top)
    ignored = set()
    for blob, key in zip(top, info["top_keys"]):
        assert_close(blob.data, case.npz[key], case.tol["forward"], f"{case_name} top {blob.name}")
    for blob in top:
        key = f"top_diff/{blob.name}"
        if key in case.npz:
            blob.diff[...] = case.npz[key]
        else:
            ignored.add(blob.name)  # e.g. the MAX Pooling mask: Caffe ignores its diff
            blob.diff[...] = np.nan  # must not be read
    written = set(case.info.get("diff_written", []))
    down = [b.name in written for b in bottom]
    for b in bottom:
        b.diff[...] = 12345.0  # bottom diffs must be assigned, not accumulated
    for p in layer.blobs:
        p.diff[...] = 0
    layer.backward(top, down, bottom)
    for blob, d in zip(bottom, down):
        if d:
            assert_close(blob.diff, case.npz[f"diff/{blob.name}"], case.tol["backward"],
                         f"{case_name} diff {blob.name}")
    for i, p in enumerate(layer.blobs):
        key = f"pdiff/{layer_name}/{i}"
        assert key in case.npz
        assert_close(p.diff, case.npz[key], case.tol["backward"], f"{case_name} {key}")
    assert any(down)
    return layer, bottom, top


@pytest.mark.usefixtures("each_engine")
@pytest.mark.parametrize("case", ["conv_k3s1p0", "conv_k5s2p2_g2", "conv_dil2", "conv_nobias"])
def test_golden_convolution(case):
    run_golden_layer(case, "conv")


@pytest.mark.usefixtures("each_engine")
@pytest.mark.parametrize("case", ["deconv_k4s1", "deconv_k3s2p1", "deconv_g2"])
def test_golden_deconvolution(case):
    run_golden_layer(case, "deconv")


@pytest.mark.usefixtures("each_engine")
def test_golden_deconv_as_unpooling_without_switches():
    """Model 4's BVLC-equivalent unpooling: group=C deconv, weights [[1,0],[0,0]], lr_mult 0;
    force_backward still computes the weight diff."""
    layer, bottom, top = run_golden_layer("deconv_unpool_fixed_force", "unpool")
    y = top[0].data
    np.testing.assert_array_equal(y[:, :, ::2, ::2], bottom[0].data)
    y[:, :, ::2, ::2] = 0
    assert not y.any()


@pytest.mark.usefixtures("each_engine")
@pytest.mark.parametrize("case, name", [("conv_k5s2p2_g2", "conv"), ("deconv_g2", "deconv")])
def test_golden_float64(case, name):
    """The same layers in float64 (as the gradient checker runs them)."""
    run_golden_layer(case, name, dtype=np.float64)


def _reference_conv(x, w, b, stride, pad, dilation, group):
    """Direct 2-D convolution (loops over output pixels) as an independent reference."""
    n, c, h, wd = x.shape
    o, cg, kh, kw = w.shape
    xp = np.pad(x, ((0, 0), (0, 0), (pad[0], pad[0]), (pad[1], pad[1])))
    oh = (h + 2 * pad[0] - (dilation[0] * (kh - 1) + 1)) // stride[0] + 1
    ow = (wd + 2 * pad[1] - (dilation[1] * (kw - 1) + 1)) // stride[1] + 1
    y = np.zeros((n, o, oh, ow))
    og = o // group
    for i in range(oh):
        for j in range(ow):
            patch = xp[:, :, i * stride[0]:i * stride[0] + dilation[0] * (kh - 1) + 1:dilation[0],
                       j * stride[1]:j * stride[1] + dilation[1] * (kw - 1) + 1:dilation[1]]
            for gi in range(group):
                pg = patch[:, gi * cg:(gi + 1) * cg]
                wg = w[gi * og:(gi + 1) * og]
                y[:, gi * og:(gi + 1) * og, i, j] = np.einsum("nchw,ochw->no", pg, wg)
    if b is not None:
        y += b[None, :, None, None]
    return y


def _run(text, x, weights, dtype=np.float64):
    param = layer_param(text)
    layer = create_layer(param)
    shapes = layer.setup([x.shape])
    layer.blobs = [Blob(s, dtype) for s in shapes]
    for blob, w in zip(layer.blobs, weights):
        blob.data[...] = w
    (top_shape,) = layer.reshape([x.shape])
    bottom, top = Blob(x.shape, dtype), Blob(top_shape, dtype)
    bottom.data[...] = x
    layer.forward([bottom], [top])
    return layer, bottom, top


@pytest.mark.parametrize("hw, k, s, p, d, g, n", [
    ((7, 9), (3, 2), (2, 1), (1, 0), (1, 2), 1, 3),    # rectangular everything
    ((24, 24), (5, 5), (1, 1), (0, 0), (1, 1), 2, 2),   # column order with batch outermost
    ((5, 6), (1, 1), (1, 1), (0, 0), (1, 1), 1, 2),     # 1x1
    ((9, 9), (3, 3), (3, 3), (2, 2), (1, 1), 3, 2),     # stride = kernel, pad
])
def test_convolution_matches_direct_reference(hw, k, s, p, d, g, n):
    rng = np.random.default_rng(3)
    c, o = 3 * g, 2 * g
    x = rng.standard_normal((n, c) + hw)
    w = rng.standard_normal((o, c // g) + k)
    b = rng.standard_normal(o)
    text = (f'name: "c" type: "Convolution" bottom: "x" top: "y" convolution_param {{ '
            f"num_output: {o} group: {g} kernel_h: {k[0]} kernel_w: {k[1]} stride_h: {s[0]} "
            f"stride_w: {s[1]} pad_h: {p[0]} pad_w: {p[1]} dilation: {d[0]} dilation: {d[1]} }}")
    _, _, top = _run(text, x, [w, b])
    np.testing.assert_allclose(top.data, _reference_conv(x, w, b, s, p, d, g), rtol=1e-10,
                               atol=1e-10)


def test_deconvolution_is_the_adjoint_of_convolution():
    """<conv(x), y> == <x, deconv(y)> with the same weight blob (bias off)."""
    rng = np.random.default_rng(4)
    common = "num_output: 4 kernel_size: 3 stride: 2 pad: 1 group: 2 bias_term: false"
    x = rng.standard_normal((2, 6, 9, 7))
    w = rng.standard_normal((4, 3, 3, 3))
    _, _, conv_top = _run(f'name: "c" type: "Convolution" bottom: "x" top: "y" '
                          f"convolution_param {{ {common} }}", x, [w])
    y = rng.standard_normal(conv_top.shape)
    # Deconvolution with C_in=4, num_output=6: weight (4, 6/2, 3, 3) -- the same blob.
    common_d = common.replace("num_output: 4", "num_output: 6")
    _, _, deconv_top = _run(f'name: "d" type: "Deconvolution" bottom: "y" top: "x" '
                            f"convolution_param {{ {common_d} }}", y, [w])
    assert deconv_top.shape[2:] == (2 * (5 - 1) + 3 - 2, 2 * (4 - 1) + 3 - 2)  # 9x7
    lhs = (conv_top.data * y).sum()
    rhs = (x * deconv_top.data).sum()
    np.testing.assert_allclose(lhs, rhs, rtol=1e-10)


@pytest.mark.parametrize("shape", [(3, 5), (2, 3, 1, 1)])
def test_zero_spatial_axes_is_a_matrix_product(shape):
    """(N, C) input: BVLC's convolution degenerates to a per-sample matrix product."""
    rng = np.random.default_rng(5)
    x = rng.standard_normal(shape)
    for kind in ("Convolution", "Deconvolution"):
        kernel = "" if len(shape) == 2 else "kernel_size: 1"
        w_shape = (4, 5) if kind == "Convolution" else (5, 4)
        if len(shape) == 4:
            w_shape = (4, 3, 1, 1) if kind == "Convolution" else (3, 4, 1, 1)
        w = rng.standard_normal(w_shape)
        b = rng.standard_normal(4)
        layer, _, top = _run(f'name: "c" type: "{kind}" bottom: "x" top: "y" '
                             f"convolution_param {{ num_output: 4 {kernel} }}", x, [w, b])
        assert [tuple(s) for s in layer.setup([x.shape])] == [w_shape, (4,)]
        w2 = w.reshape(w_shape[:2])
        expected = x.reshape(shape[:2]) @ (w2.T if kind == "Convolution" else w2) + b
        assert top.shape == (shape[0], 4) + shape[2:]
        np.testing.assert_allclose(top.data.reshape(shape[0], 4), expected, rtol=1e-12)


def test_axis_and_several_bottoms():
    """axis 2 on a 4-D blob: one spatial axis (num = product of the leading axes); two bottoms share weights."""
    rng = np.random.default_rng(6)
    x1, x2 = rng.standard_normal((2, 2, 3, 4, 6))
    param = layer_param('name: "c" type: "Convolution" bottom: "a" bottom: "b" top: "ya" '
                        'top: "yb" convolution_param { num_output: 2 kernel_size: 3 axis: 2 '
                        'weight_filler { type: "gaussian" } bias_filler { type: "gaussian" } }')
    layer = create_layer(param)
    layer.check_blob_counts(2, 2)
    shapes = layer.setup([x1.shape, x2.shape])
    assert shapes == [(2, 4, 3), (2,)]  # 1 spatial axis
    layer.blobs = [Blob(s, np.float64) for s in shapes]
    layer.fill_params(np.random.default_rng(0))
    tops_shapes = layer.reshape([x1.shape, x2.shape])
    assert tops_shapes == [(2, 3, 2, 4)] * 2
    bottoms = [Blob(x1.shape, np.float64), Blob(x2.shape, np.float64)]
    bottoms[0].data[...], bottoms[1].data[...] = x1, x2
    tops = [Blob(s, np.float64) for s in tops_shapes]
    layer.forward(bottoms, tops)
    w, b = layer.blobs[0].data, layer.blobs[1].data
    for x, t in zip((x1, x2), tops):
        expected = np.stack([sum(np.einsum("...c,oc->...o", x[:, :, :, j + i], w[:, :, i])
                                 for i in range(3)) for j in range(4)], axis=-1)
        np.testing.assert_allclose(t.data, expected + b[:, None], rtol=1e-10)


GRADIENT_CASES = [
    ("Convolution", "num_output: 4 kernel_size: 3 stride: 2 pad: 1", (2, 3, 7, 6)),
    ("Convolution", "num_output: 4 kernel_h: 2 kernel_w: 3 group: 2 dilation: 2 pad_h: 1 pad_w: 2",
     (2, 4, 6, 7)),
    ("Convolution", "num_output: 3 kernel_size: 5", (3, 2, 24, 24)),  # batch-outer column order
    ("Convolution", "num_output: 3 kernel_size: 2 bias_term: false", (2, 3, 2, 2, 3)),  # 3-D
    ("Convolution", "num_output: 3", (4, 5)),
    ("Deconvolution", "num_output: 4 kernel_size: 3 stride: 2 pad: 1", (2, 3, 4, 3)),
    ("Deconvolution", "num_output: 4 kernel_size: 4 stride: 2 group: 2 dilation: 2", (2, 2, 3, 3)),
    ("Deconvolution", "num_output: 2 kernel_size: 5", (2, 3, 17, 16)),  # batch-outer order
    ("Convolution", "num_output: 2 kernel_size: 3 pad: 1", (2, 2, 17, 16)),  # ... with pad
    ("Deconvolution", "num_output: 2 kernel_size: 3 pad: 1 stride: 2", (2, 2, 17, 16)),
]


@pytest.mark.parametrize("kind, params, shape", GRADIENT_CASES)
def test_numerical_gradients(kind, params, shape):
    text = (f'name: "l" type: "{kind}" bottom: "x" top: "y" convolution_param {{ {params} '
            f'weight_filler {{ type: "gaussian" std: 0.5 }} '
            f'bias_filler {{ type: "gaussian" std: 0.5 }} }}')
    report = check_gradients(text, [shape], max_coords=150)
    assert all(b.checked for b in report.blobs)


def test_both_column_orders_are_exercised():
    from caffe_cae.im2col import ConvGeometry
    assert ConvGeometry((24, 24), (5, 5), (0, 0), (1, 1), (1, 1)).batch_inner is False
    assert ConvGeometry((12, 12), (5, 5), (0, 0), (1, 1), (1, 1)).batch_inner is True
    assert tuning.BATCH_INNER_BELOW > 64


def test_filler_fills_weights_and_bias():
    param = layer_param('name: "c" type: "Deconvolution" bottom: "x" top: "y" '
                        'convolution_param { num_output: 6 kernel_size: 3 group: 2 '
                        'weight_filler { type: "constant" value: 2 } '
                        'bias_filler { type: "constant" value: -1 } }')
    layer = create_layer(param)
    shapes = layer.setup([(1, 4, 3, 3)])
    assert shapes == [(4, 3, 3, 3), (6,)]
    layer.blobs = [Blob(s) for s in shapes]
    layer.fill_params(np.random.default_rng(0))
    assert (layer.blobs[0].data == 2).all() and (layer.blobs[1].data == -1).all()


@pytest.mark.parametrize("params, shape, message", [
    ("num_output: 4 kernel_size: 3 group: 2", (1, 3, 5, 5), "multiple of group"),
    ("num_output: 3 kernel_size: 3 group: 2", (1, 4, 5, 5), "num_output (3) must be a multiple"),
    ("num_output: 4 kernel_size: 3 kernel_size: 3 kernel_size: 3", (1, 3, 5, 5),
     "kernel_size must be specified once"),
    ("num_output: 4 kernel_size: 3 kernel_h: 3 kernel_w: 3", (1, 3, 5, 5), "not both"),
    ("num_output: 4 kernel_h: 3 kernel_w: 3", (1, 3, 5), "only be used for 2D"),
    ("num_output: 4", (1, 3, 5, 5), "kernel_size must be specified"),
    ("num_output: 4 kernel_size: 0", (1, 3, 5, 5), "nonzero"),
    ("num_output: 4 kernel_size: 7", (1, 3, 5, 5), "not positive"),
    ("num_output: 4 kernel_size: 3 axis: 4", (1, 3, 5, 5), "out of range"),
    ("kernel_size: 3", (1, 3, 5, 5), "num_output must be positive"),
])
def test_errors_name_the_layer(params, shape, message):
    layer = create_layer(layer_param(f'name: "bad" type: "Convolution" bottom: "x" top: "y" '
                                     f"convolution_param {{ {params} }}"))
    with pytest.raises(CaffeCaeError, match="layer 'bad' \\(Convolution\\)") as err:
        layer.setup([shape])
        layer.reshape([shape])
    assert message in str(err.value)


def test_reshape_checks_channels_and_axes():
    layer = create_layer(layer_param('name: "c" type: "Convolution" bottom: "x" top: "y" '
                                     'convolution_param { num_output: 2 kernel_size: 3 }'))
    layer.setup([(1, 3, 5, 5)])
    assert layer.reshape([(4, 3, 9, 7)]) == [(4, 2, 7, 5)]  # N and H, W may change
    with pytest.raises(CaffeCaeError, match="Input size incompatible.*'x' has 4 channels"):
        layer.reshape([(1, 4, 5, 5)])
    with pytest.raises(CaffeCaeError, match="num_axes may not change"):
        layer.reshape([(1, 3, 5, 5, 5)])
    with pytest.raises(CaffeCaeError, match="as many tops as bottoms"):
        layer.check_blob_counts(1, 2)


def test_kernel_wider_than_input_by_less_than_stride():
    """C++ integer division truncates toward zero: (4 - 5) / 2 + 1 = 1 output, whose window
    hangs over the image edge and reads zeros there (Caffe's im2col bounds check)."""
    rng = np.random.default_rng(8)
    x = rng.standard_normal((2, 3, 4, 4))
    w = rng.standard_normal((2, 3, 5, 5))
    layer, bottom, top = _run('name: "c" type: "Convolution" bottom: "x" top: "y" '
                              "convolution_param { num_output: 2 kernel_size: 5 stride: 2 "
                              "bias_term: false }", x, [w])
    assert top.shape == (2, 2, 1, 1)
    expected = np.einsum("nchw,ochw->no", x, w[:, :, :4, :4])
    np.testing.assert_allclose(top.data[:, :, 0, 0], expected, rtol=1e-12)
    top.diff[...] = 1.0
    layer.backward([top], [True], [bottom])
    np.testing.assert_allclose(bottom.diff, np.broadcast_to(w[:, :, :4, :4].sum(0), x.shape),
                               rtol=1e-12)
