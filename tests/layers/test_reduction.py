"""ArgMax (ties, top shapes, refusals, no backward) and Reduction (0-d top, MEAN's float
coefficient)."""
import numpy as np
import pytest

import caffe_cae
from caffe_cae.blob import Blob
from caffe_cae.errors import CaffeCaeError
from caffe_cae.layers import create_layer
from caffe_cae.proto import caffe_pb2
from caffe_cae.prototxt import parse_text


def make(text, shape):
    layer = create_layer(parse_text(f'name: "l" bottom: "x" top: "y" {text}',
                                    caffe_pb2.LayerParameter, "<test>"))
    layer.check_blob_counts(1, 1)
    layer.setup([shape])
    return layer, layer.reshape([shape])[0]


def run(text, x):
    x = np.asarray(x, np.float32)
    layer, top_shape = make(text, x.shape)
    bottom, top = Blob(x.shape), Blob(top_shape)
    bottom.data[...] = x
    layer.forward([bottom], [top])
    return top.data


def test_argmax_ties_go_to_the_higher_index():
    y = run('type: "ArgMax" argmax_param { top_k: 3 }', [[1, 5, 5, 0, 5], [2, 2, 2, 2, 2]])
    assert y.shape == (2, 1, 3)
    assert y.tolist() == [[[4, 2, 1]], [[4, 3, 2]]]


def test_argmax_out_max_val_without_axis_gives_indices_then_values():
    y = run('type: "ArgMax" argmax_param { top_k: 2 out_max_val: true }',
            np.arange(24, dtype=np.float32).reshape(2, 3, 2, 2) % 7)
    assert y.shape == (2, 2, 2, 1)  # padded to the bottom's 4 axes
    assert y[:, 0, :, 0].tolist() == [[6, 5], [8, 1]]  # item 1: two 6s, the later one first
    assert y[:, 1, :, 0].tolist() == [[6, 5], [6, 6]]


def test_argmax_along_an_axis():
    x = np.random.default_rng(0).normal(size=(2, 4, 3)).astype(np.float32)
    idx = run('type: "ArgMax" argmax_param { axis: 1 top_k: 2 }', x)
    assert idx.shape == (2, 2, 3)
    np.testing.assert_array_equal(idx, np.argsort(-x, axis=1)[:, :2])
    val = run('type: "ArgMax" argmax_param { axis: -1 out_max_val: true }', x)
    assert val.shape == (2, 4, 1)
    np.testing.assert_array_equal(val[..., 0], x.max(axis=-1))


@pytest.mark.parametrize("text, shape, expected", [
    ('argmax_param { top_k: 0 }', (2, 3), "top k must not be less than 1."),
    ('argmax_param { top_k: 7 }', (2, 3, 2), "top_k must be less than or equal to the number of classes"),
    ('argmax_param { top_k: 4 axis: 1 }', (2, 3, 5), "top_k must be less than or equal to the dimension of the axis"),
    ('argmax_param { axis: 3 }', (2, 3, 5), "axis 3 out of range"),
])
def test_argmax_refusals(text, shape, expected):
    with pytest.raises(CaffeCaeError) as info:
        make(f'type: "ArgMax" {text}', shape)
    assert expected in str(info.value) and str(info.value).startswith("layer 'l' (ArgMax)")


def test_argmax_backward_is_refused_with_force_backward():
    net = caffe_cae.Net(parse_text("""
        force_backward: true
        layer { name: "x" type: "Input" top: "x" input_param { shape { dim: 2 dim: 5 } } }
        layer { name: "am" type: "ArgMax" bottom: "x" top: "y" }
    """, caffe_pb2.NetParameter))
    net.forward(x=np.arange(10.0).reshape(2, 5))
    assert net.blobs["y"].data.ravel().tolist() == [4, 4]
    with pytest.raises(CaffeCaeError, match=r"layer 'am' \(ArgMax\): ArgMax has no backward"):
        net.backward()


def test_reduction_axis0_gives_a_0d_top():
    layer, shape = make('type: "Reduction"', (2, 3, 4))
    assert shape == ()
    assert run('type: "Reduction" reduction_param { operation: ASUM }', [[-1, 2], [3, -4]]) == 10


def test_reduction_mean_uses_the_float_coefficient():
    """Caffe divides the float coeff by the count once (coeff_ /= dim_) and scales the sum."""
    x = np.random.default_rng(1).normal(size=(3, 7)).astype(np.float32)
    y = run('type: "Reduction" reduction_param { operation: MEAN axis: 1 coeff: 0.3 }', x)
    coeff = np.float32(0.3) / np.float32(7)
    np.testing.assert_array_equal(y, x.sum(axis=1, dtype=np.float64).astype(np.float32) * coeff)
