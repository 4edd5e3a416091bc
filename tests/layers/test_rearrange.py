"""Crop, Tile, Im2col and SPP: layouts and Caffe's setup refusals."""
import itertools

import numpy as np
import pytest

import caffe_cae
from caffe_cae.errors import CaffeCaeError
from caffe_cae.layers.spp import level_geometry
from caffe_cae.proto import caffe_pb2
from caffe_cae.prototxt import parse_text


def net_of(text, **kw):
    return caffe_cae.Net(parse_text(text, caffe_pb2.NetParameter), **kw)


def inputs(**shapes):
    return "".join(
        f'layer {{ name: "{name}" type: "Input" top: "{name}" input_param {{ shape {{ '
        + " ".join(f"dim: {d}" for d in shape) + " } } }\n"
        for name, shape in shapes.items())


def error_of(text) -> str:
    with pytest.raises(CaffeCaeError) as info:
        net_of(text)
    message = str(info.value)
    assert "\n" not in message
    return message


CROP = inputs(x=(2, 3, 6, 7), ref=(1, 1, 4, 4)) + \
    'layer { name: "c" type: "Crop" bottom: "x" bottom: "ref" top: "y" crop_param { %s } }'


def test_crop_window_and_reference_without_diff():
    net = net_of("force_backward: true\n" + CROP % "axis: 2 offset: 1 offset: 2")
    x = np.random.default_rng(0).normal(size=(2, 3, 6, 7))
    net.blobs["ref"].diff[...] = 7.0
    out = net.forward(x=x)
    np.testing.assert_array_equal(out["y"], x[:, :, 1:5, 2:6].astype(np.float32))
    dy = np.ones((2, 3, 4, 4))
    net.backward(y=dy)
    expected = np.zeros_like(x)
    expected[:, :, 1:5, 2:6] = 1
    np.testing.assert_array_equal(net.blobs["x"].diff, expected)
    assert (net.blobs["ref"].diff == 7).all()  # Caffe leaves the reference's diff alone


@pytest.mark.parametrize("param, expected", [
    ("axis: 1 offset: 1 offset: 1", "number of offset values specified must be equal to the "
                                    "number of dimensions following axis"),
    ("axis: 2 offset: 3", "the crop for dimension 2 is out-of-bounds with size 4 and offset 3"),
    ("axis: 4", "axis 4 out of range"),
])
def test_crop_refusals(param, expected):
    message = error_of(CROP % param)
    assert message.startswith("layer 'c' (Crop): ") and expected in message


def test_crop_needs_bottoms_with_the_same_number_of_axes():
    text = CROP.replace("dim: 1 dim: 1 dim: 4 dim: 4", "dim: 1 dim: 4 dim: 4") % ""
    assert "Input blobs must have the same number of axes" in error_of(text)


TILE = inputs(x=(2, 3, 2)) + 'layer { name: "t" type: "Tile" bottom: "x" top: "y" tile_param { %s } }'


def test_tile_repeats_the_whole_block():
    x = np.arange(12.0).reshape(2, 3, 2)
    out = net_of(TILE % "axis: 1 tiles: 2").forward(x=x)
    np.testing.assert_array_equal(out["y"], np.tile(x, (1, 2, 1)))


@pytest.mark.parametrize("param, expected", [
    ("axis: 1", "Number of tiles must be specified"),
    ("tiles: 0", "Number of tiles must be positive"),
])
def test_tile_refusals(param, expected):
    assert expected in error_of(TILE % param)


def test_im2col_channel_order_and_col2im():
    text = inputs(x=(2, 2, 5, 6)) + """
        force_backward: true
        layer { name: "i" type: "Im2col" bottom: "x" top: "y"
                convolution_param { kernel_h: 3 kernel_w: 2 pad: 1 stride: 2 dilation: 1 } }"""
    net = net_of(text)
    x = np.random.default_rng(2).normal(size=(2, 2, 5, 6)).astype(np.float32)
    y = net.forward(x=x)["y"]
    assert y.shape == (2, 2 * 3 * 2, 3, 4)
    padded = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
    dx = np.zeros_like(padded)
    dy = np.random.default_rng(3).normal(size=y.shape).astype(np.float32)
    for c, i, j, oy, ox in itertools.product(range(2), range(3), range(2), range(3), range(4)):
        row = c * 6 + i * 2 + j  # c * kh * kw + i * kw + j
        np.testing.assert_array_equal(y[:, row, oy, ox], padded[:, c, oy * 2 + i, ox * 2 + j])
        dx[:, c, oy * 2 + i, ox * 2 + j] += dy[:, row, oy, ox]
    net.backward(y=dy)
    np.testing.assert_allclose(net.blobs["x"].diff, dx[:, :, 1:-1, 1:-1], rtol=1e-6)


def test_im2col_needs_a_spatial_axis():
    text = inputs(x=(2, 3)) + ('layer { name: "i" type: "Im2col" bottom: "x" top: "y" '
                               'convolution_param { kernel_size: 1 } }')
    assert "needs at least one spatial axis" in error_of(text)


SPP = inputs(x=(2, 3, 7, 9)) + 'layer { name: "s" type: "SPP" bottom: "x" top: "y" spp_param { %s } }'


def pooling_net(levels, pool):
    """What Caffe builds inside SPP: Pooling per level, Flatten, Concat."""
    text = inputs(x=(2, 3, 7, 9))
    for level in range(levels):
        (kh, kw), (ph, pw) = level_geometry(level, 7, 9)
        text += (f'layer {{ name: "p{level}" type: "Pooling" bottom: "x" top: "p{level}" '
                 f'pooling_param {{ pool: {pool} kernel_h: {kh} kernel_w: {kw} stride_h: {kh} '
                 f'stride_w: {kw} pad_h: {ph} pad_w: {pw} }} }}\n'
                 f'layer {{ name: "f{level}" type: "Flatten" bottom: "p{level}" top: "f{level}" }}\n')
    bottoms = " ".join(f'bottom: "f{level}"' for level in range(levels))
    return net_of(text + f'layer {{ name: "c" type: "Concat" {bottoms} top: "y" }}')


@pytest.mark.parametrize("pool", ["MAX", "AVE"])
def test_spp_is_pooling_flatten_concat(pool):
    x = np.random.default_rng(4).normal(size=(2, 3, 7, 9))
    out = net_of(SPP % f"pyramid_height: 3 pool: {pool}").forward(x=x)["y"]
    assert out.shape == (2, 3 * (1 + 4 + 16))
    np.testing.assert_array_equal(out, pooling_net(3, pool).forward(x=x)["y"])


def test_spp_with_one_level_keeps_the_pooled_4d_shape():
    net = net_of(SPP % "pyramid_height: 1")
    assert net.blobs["y"].shape == (2, 3, 1, 1)
    x = np.random.default_rng(5).normal(size=(2, 3, 7, 9)).astype(np.float32)
    np.testing.assert_array_equal(net.forward(x=x)["y"][..., 0, 0], x.max(axis=(2, 3)))


@pytest.mark.parametrize("param, expected", [
    ("pyramid_height: 2 pool: STOCHASTIC", "pool: STOCHASTIC is not supported"),
    ("pool: MAX", "pyramid_height must be at least 1"),
])
def test_spp_refusals(param, expected):
    message = error_of(SPP % param)
    assert message.startswith("layer 's' (SPP): ") and expected in message


def test_spp_refuses_a_level_whose_pad_reaches_the_kernel():
    """5x5 with 3 levels: level 2 has kernel 2, pad (2*4 - 5 + 1)/2 = 2 (Caffe: pad_h_ < kernel_h_
    (2 vs. 2))."""
    message = error_of((SPP % "pyramid_height: 3").replace("dim: 7 dim: 9", "dim: 5 dim: 5"))
    assert "Check failed: pad_h_ < kernel_h_ (2 vs. 2)" in message
