"""caffe_cae.im2col: the two column layouts, the kernel-row-chunked GEMM + col2im and Caffe's
plain im2col/col2im agree."""
from __future__ import annotations

import numpy as np
import pytest

from caffe_cae import im2col, tuning
from caffe_cae.net import TRAIN, Net
from caffe_cae.proto import caffe_pb2
from caffe_cae.prototxt import parse_text
from caffe_cae.testing import assert_rounding_close

pytestmark = pytest.mark.usefixtures("fast_engine")


@pytest.mark.parametrize("image, kernel, pad, stride, dilation", [
    ((9, 8), (4, 3), (0, 0), (1, 1), (1, 1)),
    ((9, 8), (3, 3), (1, 2), (2, 1), (1, 1)),
    ((10, 9), (3, 2), (1, 0), (1, 2), (2, 1)),
])
def test_chunked_matmul_col2im_equals_the_full_column_matrix(image, kernel, pad, stride,
                                                              dilation):
    g = im2col.ConvGeometry(image, kernel, pad, stride, dilation)
    assert g.batch_inner
    rng = np.random.default_rng(0)
    channels, k, num = 3, 5, 4
    a = rng.standard_normal((1, channels * g.kernel_size, k)).astype(np.float32)
    b = rng.standard_normal((1, k, g.out_size * num)).astype(np.float32)
    results = []
    for threshold in (1 << 40, 0):  # full column matrix, then one kernel row at a time
        with tuning.override(CHUNKED_COL2IM_ABOVE=threshold):
            out = np.full((num, channels) + image, np.nan, np.float32)
            im2col.matmul_col2im(a, b, g, out, im2col.Workspace())
        results.append(out)
    # and both are Caffe's col2im of the product, image by image

    def caffe(a, b):
        images = b[0].reshape(k, -1, num)  # columns ordered (position, image)
        return np.stack([im2col.col2im_reference(a[0] @ images[:, :, n], g, channels)
                         for n in range(num)])

    reference, magnitude = caffe(a, b), caffe(np.abs(a), np.abs(b))
    terms = k * g.kernel_size  # products summed into one image cell
    for result in results:
        assert_rounding_close(result, reference, terms=terms, magnitude=magnitude)


@pytest.mark.parametrize("batch_inner", [False, True])
def test_batched_im2col_is_caffes_per_image_im2col(batch_inner):
    g = im2col.ConvGeometry((7, 6), (3, 2), (1, 0), (2, 1), (1, 2))
    g.batch_inner = batch_inner
    x = np.random.default_rng(2).standard_normal((3, 4, 7, 6)).astype(np.float32)
    col = im2col.im2col(x, g, im2col.Workspace())
    per_image = [im2col.im2col_reference(image, g) for image in x]
    if batch_inner:  # (C*K, positions * num): columns ordered (o, n)
        expected = np.stack(per_image, axis=-1).reshape(col.shape)
    else:
        expected = np.stack(per_image)
    np.testing.assert_array_equal(col, expected)


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


def _run(batch_inner_below: int):
    with tuning.override(BATCH_INNER_BELOW=batch_inner_below):
        net = Net(parse_text(NET, caffe_pb2.NetParameter), phase=TRAIN, seed=7)
    rng = np.random.default_rng(1)
    net.blobs["data"].data[...] = rng.standard_normal(net.blobs["data"].shape)
    net.blobs["target"].data[...] = rng.standard_normal(net.blobs["target"].shape)
    loss = net.forward_backward()
    return loss, {name: (b.data.copy(), b.diff.copy()) for name, b in net.blobs.items()}, \
        [p.diff.copy() for p in net.learnable_params]


def test_per_image_and_batch_inner_layouts_agree():
    """Groups, padding, stride and dilation, forward and backward, in both column layouts."""
    loss_a, blobs_a, grads_a = _run(0)        # every geometry per image
    loss_b, blobs_b, grads_b = _run(1 << 30)  # every geometry batch-inner
    # sums along the longest chain: conv (2 channels x 9), deconv (3 x 16), conv2 (4 x 9)
    # forward, the same backward, then conv2's weight gradient (3 images x 64 positions)
    chain = 18 + 48 + 36
    terms = 2 * chain + 3 * 64
    assert_rounding_close(loss_b, loss_a, terms=chain + 3 * 2 * 64, err_msg="loss")
    for name, (data, diff) in blobs_a.items():
        assert_rounding_close(blobs_b[name][0], data, terms=terms, err_msg=f"{name} data")
        assert_rounding_close(blobs_b[name][1], diff, terms=terms, err_msg=f"{name} diff")
    for ga, gb in zip(grads_a, grads_b):
        assert_rounding_close(gb, ga, terms=terms)


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
