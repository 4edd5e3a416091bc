"""InnerProduct against Caffe's golden data, gradients, the K check."""
from __future__ import annotations

import numpy as np
import pytest

from caffe_cae.blob import Blob
from caffe_cae.errors import CaffeCaeError
from caffe_cae.layers import create_layer
from caffe_cae.proto import caffe_pb2
from caffe_cae.prototxt import parse_text
from caffe_cae.testing import check_gradients
from tests.layers.test_conv import run_golden_layer


def layer_param(text):
    return parse_text(text, caffe_pb2.LayerParameter, "<test>")


@pytest.mark.usefixtures("each_engine")
@pytest.mark.parametrize("case", ["ip_4d", "ip_axis2", "ip_transpose"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_golden(case, dtype):
    layer, bottom, top = run_golden_layer(case, "ip", dtype=dtype)
    if case == "ip_transpose":
        assert layer.blobs[0].shape == (6, 4)
    if case == "ip_4d":
        assert top[0].shape == (2, 5)  # BVLC: 2-D top for a 4-D bottom


@pytest.mark.parametrize("params, shape", [
    ("num_output: 3", (2, 3, 2, 2)),
    ("num_output: 4 axis: 2", (2, 3, 5)),
    ("num_output: 4 axis: -1 transpose: true", (3, 2, 5)),
    ("num_output: 2 bias_term: false", (4, 3)),
])
def test_numerical_gradients(params, shape):
    text = (f'name: "ip" type: "InnerProduct" bottom: "x" top: "y" inner_product_param {{ '
            f'{params} weight_filler {{ type: "gaussian" }} bias_filler {{ type: "gaussian" }} }}')
    report = check_gradients(text, [shape])
    assert all(b.checked for b in report.blobs)


def test_input_size_incompatible():
    layer = create_layer(layer_param('name: "fc" type: "InnerProduct" bottom: "feat" top: "y" '
                                     'inner_product_param { num_output: 3 }'))
    assert layer.setup([(2, 3, 4, 4)]) == [(3, 48), (3,)]
    assert layer.reshape([(7, 3, 4, 4)]) == [(7, 3)]  # batch may change
    assert layer.reshape([(7, 48)]) == [(7, 3)]  # same K, other layout
    with pytest.raises(CaffeCaeError, match=r"layer 'fc' \(InnerProduct\): Input size "
                                            r"incompatible.*'feat' shape \[2, 3, 5, 4\] gives "
                                            r"K=60.*K=48"):
        layer.reshape([(2, 3, 5, 4)])


def test_forward_formula_and_fillers():
    layer = create_layer(layer_param(
        'name: "ip" type: "InnerProduct" bottom: "x" top: "y" inner_product_param { '
        'num_output: 2 weight_filler { type: "constant" value: 0.5 } '
        'bias_filler { type: "constant" value: 1 } }'))
    shapes = layer.setup([(2, 3)])
    layer.blobs = [Blob(s) for s in shapes]
    layer.fill_params(np.random.default_rng(0))
    layer.reshape([(2, 3)])
    x, y = Blob((2, 3)), Blob((2, 2))
    x.data[...] = [[1, 2, 3], [4, 5, 6]]
    layer.forward([x], [y])
    np.testing.assert_array_equal(y.data, [[4, 4], [8.5, 8.5]])


@pytest.mark.parametrize("params, message", [
    ("num_output: 0", "num_output must be positive"),
    ("num_output: 2 axis: 3", "axis 3 out of range"),
])
def test_errors(params, message):
    layer = create_layer(layer_param(f'name: "ip" type: "InnerProduct" bottom: "x" top: "y" '
                                     f"inner_product_param {{ {params} }}"))
    with pytest.raises(CaffeCaeError, match=message):
        layer.setup([(2, 3, 4)])
