"""Deconvolution of a top-left-unpooled bottom (``bottom_spread``): the compact-grid path gives
the dense path's forward, bottom gradient and (to float rounding) weight gradient; the Net
uses it only where the Unpooling wrote the bottom in the same pass."""
from __future__ import annotations

import math

import numpy as np
import pytest

from caffe_cae import tuning
from caffe_cae.blob import Blob
from caffe_cae.layers import create_layer
from caffe_cae.net import Net
from caffe_cae.netgraph.steps import LayerStep
from caffe_cae.proto import caffe_pb2
from caffe_cae.prototxt import parse_text
from caffe_cae.testing import assert_rounding_close

pytestmark = pytest.mark.usefixtures("fast_engine")  # the sparse path is the fast engine's


def _deconv(text: str, bottom_shape, rng):
    param = parse_text(f'name: "d" type: "Deconvolution" bottom: "u" top: "y" '
                       f'convolution_param {{ {text} }}', caffe_pb2.LayerParameter, "<test>")
    layer = create_layer(param, caffe_pb2.TRAIN)
    shapes = layer.setup([bottom_shape])
    layer.blobs = [Blob(s, np.float32, f"d/{i}") for i, s in enumerate(shapes)]
    for blob in layer.blobs:
        blob.data[...] = rng.standard_normal(blob.shape)
    top_shape = layer.reshape([bottom_shape])[0]
    return layer, top_shape


def _run(layer, x, top_shape, dy, spread):
    layer.bottom_spread = spread
    bottom, top = Blob(x.shape, np.float32, "u"), Blob(top_shape, np.float32, "y")
    bottom.data[...] = x
    layer.forward([bottom], [top])
    used = layer._sparse is not None
    top.diff[...] = dy
    for blob in layer.blobs:
        blob.diff[...] = 0
    layer.backward([top], [True], [bottom])
    return used, top.data.copy(), bottom.diff.copy(), [b.diff.copy() for b in layer.blobs]


# (convolution_param, unpooled (H, W), pooled (h, w), spread)
GEOMETRIES = [
    ("num_output: 5 kernel_size: 5", (8, 8), (4, 4), (2, 2)),             # Model 4's deconv1
    ("num_output: 1 kernel_size: 5", (24, 24), (12, 12), (2, 2)),         # deconv1neur (per image)
    ("num_output: 4 kernel_size: 3 stride: 2 pad: 1", (9, 7), (5, 4), (2, 2)),
    ("num_output: 4 kernel_size: 4 dilation: 2 pad: 2", (9, 9), (3, 3), (3, 3)),
    ("num_output: 6 kernel_size: 3 group: 2", (10, 6), (5, 3), (2, 2)),
    ("num_output: 3 kernel_h: 3 kernel_w: 2", (8, 12), (4, 4), (2, 3)),
    ("num_output: 3 kernel_size: 2 bias_term: false", (9, 9), (4, 4), (2, 2)),  # last grid row empty
]


@pytest.mark.parametrize("text, unpooled, pooled, spread", GEOMETRIES)
def test_sparse_path_equals_dense_path(text, unpooled, pooled, spread):
    rng = np.random.default_rng(0)
    channels = 4
    layer, top_shape = _deconv(text, (3, channels) + unpooled, rng)
    x = np.zeros((3, channels) + unpooled, np.float32)
    x[:, :, 0:pooled[0] * spread[0]:spread[0], 0:pooled[1] * spread[1]:spread[1]] = (
        rng.standard_normal((3, channels) + pooled))
    dy = rng.standard_normal(top_shape).astype(np.float32)
    used, y, dx, dparams = _run(layer, x, top_shape, dy, spread)
    assert used
    dense_used, y0, dx0, dparams0 = _run(layer, x, top_shape, dy, None)
    assert not dense_used
    np.testing.assert_array_equal(dx, dx0)  # the bottom gradient is always the full one
    # the same sums skipping products by zero: equal to rounding, measured on |terms|
    for blob in layer.blobs:
        np.abs(blob.data, out=blob.data)
    _, y_abs, _, dparams_abs = _run(layer, np.abs(x), top_shape, np.abs(dy), None)
    taps = layer.channels // layer.group * math.prod(layer.kernel)
    assert_rounding_close(y, y0, terms=taps + 1, magnitude=y_abs, err_msg="top")
    images_x_positions = layer.num * max(math.prod(layer.in_spatial), math.prod(layer.out_spatial))
    for k, (d, d0, d_abs) in enumerate(zip(dparams, dparams0, dparams_abs)):
        assert_rounding_close(d, d0, terms=images_x_positions, magnitude=d_abs,
                              err_msg=f"param {k} diff")


def test_both_column_layouts_take_the_sparse_path():
    layouts = set()
    for text, unpooled, _, spread in GEOMETRIES[:2]:
        layer, _ = _deconv(text, (2, 4) + unpooled, np.random.default_rng(1))
        layer.bottom_spread = spread
        layouts.add(layer._sparse_geometry(1).out_size < tuning.BATCH_INNER_BELOW)
        layouts.add(layer._geometry.batch_inner)
    assert layouts == {True, False}


def test_the_sparse_path_reads_only_the_grid():
    """Proof that the grid is all it reads: garbage off the grid changes nothing."""
    rng = np.random.default_rng(2)
    layer, top_shape = _deconv("num_output: 3 kernel_size: 5", (2, 4, 8, 8), rng)
    x = rng.standard_normal((2, 4, 8, 8)).astype(np.float32)
    dy = rng.standard_normal(top_shape).astype(np.float32)
    grid_only = np.zeros_like(x)
    grid_only[:, :, ::2, ::2] = x[:, :, ::2, ::2]
    _, y, _, _ = _run(layer, x, top_shape, dy, (2, 2))
    _, y_grid, _, _ = _run(layer, grid_only, top_shape, dy, None)
    assert_rounding_close(y, y_grid, terms=4 * 25 + 1)
    _, y_dense, _, _ = _run(layer, x, top_shape, dy, None)
    assert not np.allclose(y_dense, y_grid)


NET = """
name: "decoder"
layer {{ name: "data" type: "Input" top: "data" input_param {{ shape {{ dim: 2 dim: 3 dim: 4 dim: 4 }} }} }}
layer {{ name: "target" type: "Input" top: "target" input_param {{ shape {{ dim: 2 dim: 2 dim: 12 dim: 12 }} }} }}
layer {{ name: "unpool" type: "Unpooling" bottom: "data" top: "unpooled"
        unpooling_param {{ unpool: MAX kernel_size: 2 stride: 2 unpool_size: 8 }} }}
{extra}
layer {{ name: "deconv" type: "Deconvolution" bottom: "{deconv_bottom}" top: "deconv"
        convolution_param {{ num_output: 2 kernel_size: 5 weight_filler {{ type: "gaussian" std: 0.5 }}
                            bias_filler {{ type: "constant" value: 0.1 }} }} }}
layer {{ name: "loss" type: "EuclideanLoss" bottom: "deconv" bottom: "target" top: "loss" }}
"""


def _net(extra="", deconv_bottom="unpooled"):
    text = NET.format(extra=extra, deconv_bottom=deconv_bottom)
    return Net(parse_text(text, caffe_pb2.NetParameter, "<test>"), phase=caffe_pb2.TRAIN, seed=4)


def _plain_steps(net):
    net._steps = [LayerStep(step.node, net._blobs) for step in net._steps]


def _feed(net, rng):
    net.blobs["data"].data[...] = rng.standard_normal(net.blobs["data"].shape)
    net.blobs["target"].data[...] = rng.standard_normal(net.blobs["target"].shape)


def test_net_uses_the_sparse_path_after_top_left_unpooling_and_matches_dense():
    rng = np.random.default_rng(5)
    sparse_net, dense_net = _net(), _net()
    _plain_steps(dense_net)  # the plain Caffe computation
    _feed(sparse_net, rng)
    for name in ("data", "target"):
        dense_net.blobs[name].data[...] = sparse_net.blobs[name].data
    losses = []
    for net in (sparse_net, dense_net):
        losses.append(net.forward_loss())
        net.backward_from_to(len(net.layers) - 1, 0)
    deconv = sparse_net.layer_dict["deconv"]
    assert deconv._sparse is not None and dense_net.layer_dict["deconv"]._sparse is None
    # sums: the deconvolution (3 channels x 25 taps + bias), the loss (2 x 2 x 12 x 12), the
    # weight gradient (2 images x 64 positions)
    assert_rounding_close(losses[0], losses[1], terms=76 + 576, err_msg="loss")
    np.testing.assert_array_equal(sparse_net.blobs["unpooled"].diff, dense_net.blobs["unpooled"].diff)
    for a, b in zip(sparse_net.params["deconv"], dense_net.params["deconv"]):
        assert_rounding_close(a.diff, b.diff, terms=76 + 128, err_msg=a.name)


def test_forward_from_the_deconvolution_reads_a_hand_written_bottom_densely():
    """pycaffe users may write a blob and run the rest of the net: that bottom is not known
    to be sparse, so every cell counts."""
    rng = np.random.default_rng(6)
    net = _net()
    _feed(net, rng)
    net.forward_loss()
    written = rng.standard_normal(net.blobs["unpooled"].shape).astype(np.float32)
    net.blobs["unpooled"].data[...] = written
    got = net.forward(start="deconv", end="deconv")["deconv"]
    assert net.layer_dict["deconv"]._sparse is None
    reference = _net()
    _plain_steps(reference)
    for (name, a), b in zip(net.params.items(), reference.params.values()):
        for pa, pb in zip(a, b):
            pb.data[...] = pa.data
    reference.blobs["unpooled"].data[...] = written
    expected = reference.forward(start="deconv", end="deconv")["deconv"]
    assert_rounding_close(got, expected, terms=3 * 25 + 1)


@pytest.mark.parametrize("extra, deconv_bottom", [
    # an in-place layer on the unpooled blob (Sigmoid would turn the zeros into 0.5)
    ('layer { name: "sig" type: "Sigmoid" bottom: "unpooled" top: "unpooled" }', "unpooled"),
    # a second reader: Caffe inserts a Split, whose top the deconvolution reads
    ('layer { name: "other" type: "Power" bottom: "unpooled" top: "other" }', "unpooled"),
])
def test_no_sparse_path_when_the_bottom_may_not_be_the_unpooled_map(extra, deconv_bottom):
    net = _net(extra, deconv_bottom)
    _feed(net, np.random.default_rng(7))
    net.forward_loss()
    assert net.dataflow.sparse_pairs == {}
    assert net.layer_dict["deconv"]._sparse is None


def test_caffe_cae_time_measures_the_training_path():
    from caffe_cae.commands.timing import benchmark

    net = _net()
    _feed(net, np.random.default_rng(8))
    benchmark(net, 1)  # one layer at a time, as caffe time
    assert net.layer_dict["deconv"]._sparse is not None
