"""caffe_cae.im2col: the two column layouts and the kernel-row-chunked GEMM + col2im agree."""
from __future__ import annotations

import numpy as np
import pytest

from caffe_cae import im2col
from caffe_cae.net import TRAIN, Net
from caffe_cae.proto import caffe_pb2
from caffe_cae.prototxt import parse_text


@pytest.mark.parametrize("image, kernel, pad, stride, dilation", [
    ((9, 8), (4, 3), (0, 0), (1, 1), (1, 1)),
    ((9, 8), (3, 3), (1, 2), (2, 1), (1, 1)),
    ((10, 9), (3, 2), (1, 0), (1, 2), (2, 1)),
])
def test_chunked_matmul_col2im_equals_the_full_column_matrix(monkeypatch, image, kernel, pad,
                                                              stride, dilation):
    g = im2col.ConvGeometry(image, kernel, pad, stride, dilation)
    assert g.batch_inner
    rng = np.random.default_rng(0)
    channels, k, num = 3, 5, 4
    a = rng.standard_normal((1, channels * g.kernel_size, k)).astype(np.float32)
    b = rng.standard_normal((1, k, g.out_size * num)).astype(np.float32)
    results = []
    for threshold in (1 << 40, 0):  # full column matrix, then one kernel row at a time
        monkeypatch.setattr(im2col, "CHUNKED_COL2IM_ABOVE", threshold)
        out = np.full((num, channels) + image, np.nan, np.float32)
        im2col.matmul_col2im(a, b, g, out, im2col.Workspace())
        results.append(out)
    np.testing.assert_allclose(results[1], results[0], rtol=1e-6, atol=1e-6)
    # and both are Caffe's col2im of the product
    reference = np.empty_like(results[0])
    im2col.col2im((a[0] @ b[0]), g, reference, im2col.Workspace())
    np.testing.assert_allclose(results[0], reference, rtol=1e-6, atol=1e-6)


NET = """
layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 3 dim: 4 dim: 9 dim: 9 } } }
layer { name: "target" type: "Input" top: "target" input_param { shape { dim: 3 dim: 2 dim: 8 dim: 8 } } }
layer { name: "conv" type: "Convolution" bottom: "data" top: "conv"
        convolution_param { num_output: 6 kernel_size: 3 pad: 1 stride: 2 group: 2
                            weight_filler { type: "gaussian" std: 0.3 } bias_filler { type: "gaussian" } } }
layer { name: "deconv" type: "Deconvolution" bottom: "conv" top: "deconv"
        convolution_param { num_output: 4 kernel_size: 4 stride: 2 dilation: 1 group: 2
                            weight_filler { type: "gaussian" std: 0.3 } bias_filler { type: "gaussian" } } }
layer { name: "conv2" type: "Convolution" bottom: "deconv" top: "conv2"
        convolution_param { num_output: 2 kernel_size: 3 dilation: 2
                            weight_filler { type: "gaussian" std: 0.3 } } }
layer { name: "loss" type: "EuclideanLoss" bottom: "conv2" bottom: "target" top: "loss" }
"""


def _run(monkeypatch, batch_inner_below: int):
    monkeypatch.setattr(im2col, "BATCH_INNER_BELOW", batch_inner_below)
    net = Net(parse_text(NET, caffe_pb2.NetParameter), phase=TRAIN, seed=7)
    rng = np.random.default_rng(1)
    net.blobs["data"].data[...] = rng.standard_normal(net.blobs["data"].shape)
    net.blobs["target"].data[...] = rng.standard_normal(net.blobs["target"].shape)
    loss = net.forward_backward()
    return loss, {name: (b.data.copy(), b.diff.copy()) for name, b in net.blobs.items()}, \
        [p.diff.copy() for p in net.learnable_params]


def test_per_image_and_batch_inner_layouts_agree(monkeypatch):
    """Groups, padding, stride and dilation, forward and backward, in both column layouts."""
    loss_a, blobs_a, grads_a = _run(monkeypatch, 0)        # every geometry per image
    loss_b, blobs_b, grads_b = _run(monkeypatch, 1 << 30)  # every geometry batch-inner
    assert loss_a == pytest.approx(loss_b, rel=1e-5)
    for name, (data, diff) in blobs_a.items():
        np.testing.assert_allclose(blobs_b[name][0], data, rtol=1e-5, atol=1e-5, err_msg=name)
        np.testing.assert_allclose(blobs_b[name][1], diff, rtol=1e-5, atol=1e-5, err_msg=name)
    for ga, gb in zip(grads_a, grads_b):
        np.testing.assert_allclose(gb, ga, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("batch_inner", [True, False])
@pytest.mark.parametrize("image, kernel, stride, dilation, pad", [
    ((7, 6), (5, 4), (1, 2), (1, 1), (1, 0)),   # overlapping windows, few positions
    ((9, 9), (3, 3), (2, 2), (2, 1), (2, 1)),
    ((6, 6), (6, 6), (1, 1), (1, 1), (0, 0)),   # one position: a deconvolution of a 1x1 map
])
def test_col2im_by_positions_sums_in_caffes_order(monkeypatch, batch_inner, image, kernel, stride, dilation, pad):
    """Looping over output positions (last first) gives every cell its terms in kernel-offset
    order: bitwise the same image as looping over the offsets."""
    g = im2col.ConvGeometry(image, kernel, pad, stride, dilation)
    g.batch_inner = batch_inner
    rng = np.random.default_rng(3)
    shape = (2, 3) + g.kernel + g.out if not batch_inner else (3,) + g.kernel + g.out + (2,)
    col = rng.normal(size=shape).astype(np.float32).reshape(-1, g.out_size * 2 if batch_inner else g.out_size)
    by_offsets, by_positions = (np.empty((2, 3) + image, np.float32) for _ in range(2))
    monkeypatch.setattr(im2col.ConvGeometry, "positions_first", property(lambda self: False))
    im2col.col2im(col, g, by_offsets, im2col.Workspace())
    monkeypatch.setattr(im2col.ConvGeometry, "positions_first", property(lambda self: True))
    im2col.col2im(col, g, by_positions, im2col.Workspace())
    assert np.array_equal(by_offsets, by_positions)


def test_shape_inference_builds_no_kernel_offsets():
    g = im2col.ConvGeometry((1, 1), (65535, 65535), (0, 0), (1, 1), (1, 1))
    assert "offsets" not in g.__dict__ and g.positions_first
