"""Scale, Bias and PReLU: shapes and refusals of Caffe's setup, 0-d parameter blobs in
caffemodels, and the buffers of Caffe's Scale backward (assigned gradients, scratch diffs)."""
from __future__ import annotations

import numpy as np
import pytest

import caffe_cae
from caffe_cae.blob import Blob
from caffe_cae.errors import CaffeCaeError
from caffe_cae.layers import create_layer
from caffe_cae.proto import caffe_pb2
from caffe_cae.prototxt import parse_text
from caffe_cae.weights import blob_shape, read_net_binary
from tests.helpers.paths import GOLDEN_BVLC


def make(text, shapes):
    """A layer set up on ``shapes`` with float64 blobs, params filled (seeded)."""
    layer = create_layer(parse_text(text, caffe_pb2.LayerParameter, "<test>"))
    layer.blobs = [Blob(s, np.float64) for s in layer.setup(shapes)]
    top_shapes = layer.reshape(shapes)
    layer.fill_params(np.random.default_rng(0))
    return layer, top_shapes


def blobs(shapes, seed=1):
    rng = np.random.default_rng(seed)
    out = []
    for shape in shapes:
        blob = Blob(shape, np.float64)
        blob.data[...] = rng.normal(size=shape)
        out.append(blob)
    return out


SCALE = 'name: "s" type: "Scale" bottom: "x" top: "y" '
BIAS = 'name: "b" type: "Bias" bottom: "x" top: "y" '


@pytest.mark.parametrize("text, shapes, params", [
    (SCALE, [(2, 3, 4)], [(3,)]),
    (SCALE + "scale_param { num_axes: 0 bias_term: true }", [(2, 3, 4)], [(), ()]),
    (SCALE + "scale_param { axis: -2 num_axes: -1 }", [(2, 3, 4, 5)], [(4, 5)]),
    (SCALE.replace('top:', 'bottom: "s" top:') + "scale_param { bias_term: true }",
     [(2, 3, 4), (3, 4)], [(3, 4)]),
    (SCALE.replace('top:', 'bottom: "s" top:') + "scale_param { axis: 0 }", [(2, 3), (2,)], []),
    (BIAS + "bias_param { axis: 2 num_axes: -1 }", [(2, 3, 4, 5)], [(4, 5)]),
    (BIAS.replace('top:', 'bottom: "c" top:'), [(2, 3, 4), (3,)], []),
])
def test_parameter_shapes(text, shapes, params):
    layer = create_layer(parse_text(text, caffe_pb2.LayerParameter, "<test>"))
    assert layer.setup(shapes) == params
    assert layer.reshape(shapes) == [shapes[0]]


@pytest.mark.parametrize("text, shapes, message", [
    (SCALE + "scale_param { num_axes: -2 }", [(2, 3)], "num_axes must be non-negative"),
    (SCALE + "scale_param { axis: 1 num_axes: 3 }", [(2, 3, 4)], "extends past bottom"),
    (SCALE + "scale_param { axis: 3 }", [(2, 3, 4)], "axis 3 out of range"),
    (SCALE.replace('top:', 'bottom: "s" top:'), [(2, 3, 4), (4,)], "dimension mismatch"),
    (SCALE.replace('top:', 'bottom: "s" top:') + "scale_param { axis: 2 }", [(2, 3, 4), (4, 2)],
     "extends past bottom"),
    (BIAS + "bias_param { num_axes: 5 }", [(2, 3)], "extends past bottom"),
    (BIAS.replace('top:', 'bottom: "c" top:'), [(2, 3, 4), (3, 5)], "dimension mismatch"),
])
def test_refusals(text, shapes, message):
    layer = create_layer(parse_text(text, caffe_pb2.LayerParameter, "<test>"))
    with pytest.raises(CaffeCaeError, match=message):
        layer.setup(shapes)
        layer.reshape(shapes)


def test_default_fillers_make_the_identity():
    layer, _ = make(SCALE + "scale_param { bias_term: true }", [(2, 3)])
    assert layer.blobs[0].data.tolist() == [1, 1, 1] and layer.blobs[1].data.tolist() == [0] * 3
    prelu, _ = make('name: "p" type: "PReLU" bottom: "x" top: "y"', [(2, 3)])
    assert prelu.blobs[0].data.tolist() == [0.25] * 3


def scale_backward(text, shapes, param_diff=5.0, propagate=True):
    layer, tops = make(text, shapes)
    bottom = blobs(shapes)
    top = [Blob(tops[0], np.float64)]
    layer.forward(bottom, top)
    top[0].diff[...] = np.random.default_rng(2).normal(size=tops[0])
    for blob in layer.blobs:
        blob.diff[...] = param_diff
    layer.backward(top, [propagate], bottom)
    return layer, bottom, top


def test_scale_gradient_is_added_where_caffe_adds_it():
    layer, bottom, top = scale_backward(SCALE + 'scale_param { filler { type: "gaussian" } }',
                                        [(2, 3, 4)])
    expected = (top[0].diff * bottom[0].data).sum(axis=(0, 2))
    np.testing.assert_allclose(layer.blobs[0].diff, 5 + expected)


@pytest.mark.parametrize("text, shape", [
    (SCALE + 'scale_param { filler { type: "gaussian" } }', (1, 3, 4)),  # outer = 1
    (SCALE + 'scale_param { axis: 0 num_axes: -1 filler { type: "gaussian" } }', (2, 3)),  # eltwise
])
def test_scale_gradient_is_assigned_where_caffe_assigns_it(text, shape):
    """Caffe's Scale backward writes the scale diff with beta 0 (gemv into it, or the product
    formed in it) when outer == 1 or the scale has as many elements as the bottom."""
    layer, bottom, top = scale_backward(text, [shape])
    expected = (top[0].diff * bottom[0].data).reshape(layer.geometry).sum(axis=(0, 2))
    np.testing.assert_allclose(layer.blobs[0].diff.reshape(-1), expected)


def test_scale_leaves_scratch_in_a_bottom_diff_it_does_not_propagate_to():
    layer, bottom, top = scale_backward(SCALE + 'scale_param { filler { type: "gaussian" } }',
                                        [(2, 3, 4)], propagate=False)
    np.testing.assert_allclose(bottom[0].diff, top[0].diff * bottom[0].data)


def test_in_place_scale_backward_consumes_its_saved_bottom():
    """Caffe forms dy*x in the in-place layer's copy of x: a second backward without a forward
    multiplies by dy once more (visible in Caffe's golden parameter diffs)."""
    layer, _ = make(SCALE + 'scale_param { filler { type: "gaussian" } }', [(2, 3, 4)])
    blob = blobs([(2, 3, 4)])[0]
    x = blob.data.copy()
    layer.forward([blob], [blob])
    dy = np.random.default_rng(3).normal(size=(2, 3, 4))
    sums = []
    for _ in range(2):
        blob.diff[...] = dy
        layer.blobs[0].diff[...] = 0
        layer.backward([blob], [True], [blob])
        sums.append(layer.blobs[0].diff.copy())
    np.testing.assert_allclose(sums[0], (dy * x).sum(axis=(0, 2)))
    np.testing.assert_allclose(sums[1], (dy * dy * x).sum(axis=(0, 2)))


def test_prelu_refuses_one_axis_and_shares_a_0d_slope():
    with pytest.raises(CaffeCaeError, match="Number of axes of bottom blob must be >=2"):
        make('name: "p" type: "PReLU" bottom: "x" top: "y"', [(5,)])
    layer, _ = make('name: "p" type: "PReLU" bottom: "x" top: "y" prelu_param { channel_shared: true }',
                    [(2, 3)])
    assert layer.blobs[0].shape == ()


def test_prelu_gradient_at_zero_takes_the_slope():
    layer, tops = make('name: "p" type: "PReLU" bottom: "x" top: "y"', [(1, 2, 3)])
    bottom, top = Blob((1, 2, 3), np.float64), Blob(tops[0], np.float64)
    layer.forward([bottom], [top])  # x = 0 everywhere
    top.diff[...] = 1
    layer.backward([top], [True], [bottom])
    np.testing.assert_array_equal(bottom.diff, 0.25)


@pytest.mark.parametrize("case", ["scale_scalar", "prelu_shared"])
def test_0d_blobs_round_trip_through_caffemodels(case, tmp_path):
    """Caffe writes 0-d blobs with neither shape nor num/channels/height/width."""
    source = read_net_binary(GOLDEN_BVLC / case / "init.caffemodel")
    stored = [b for layer in source.layer for b in layer.blobs]
    assert stored and all(blob_shape(b) == () and not b.HasField("shape") for b in stored)
    net = caffe_cae.Net(str(GOLDEN_BVLC / case / "net.prototxt"),
                        str(GOLDEN_BVLC / case / "init.caffemodel"), caffe_cae.TEST)
    assert [float(b.data) for blobs_ in net.params.values() for b in blobs_] == \
        [b.data[0] for b in stored]
    net.save(tmp_path / "again.caffemodel")
    assert (tmp_path / "again.caffemodel").read_bytes() == \
        (GOLDEN_BVLC / case / "init.caffemodel").read_bytes()
