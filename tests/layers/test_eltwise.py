"""Eltwise PROD / SUM / MAX against golden data, Caffe's MAX tie rule, gradients, errors."""
import numpy as np
import pytest

from caffe_cae.errors import CaffeCaeError
from caffe_cae.prototxt import parse_text
from caffe_cae.proto import caffe_pb2
from tests.helpers.layer_golden import build, check_golden_layer, numeric_gradient_check


def layer(text):
    return parse_text(text, caffe_pb2.LayerParameter, "<test>")


@pytest.mark.parametrize("case, name, n_diffs", [
    ("eltwise_sum_coeff", "sum", 3), ("eltwise_prod", "prod", 2), ("eltwise_max", "max", 3),
])
def test_golden(case, name, n_diffs):
    *_, checked = check_golden_layer(case, name)
    assert checked == n_diffs


def test_max_ties_follow_caffe_loop():
    """Bottoms 0 and 1 compare with a > b (tie -> 1); later bottoms need to be strictly greater."""
    param = layer('name: "m" type: "Eltwise" bottom: "a" bottom: "b" bottom: "c" top: "y" eltwise_param { operation: MAX }')
    a = np.array([1.0, 2.0, 3.0, 5.0], np.float32)
    b = np.array([1.0, 1.0, 3.0, 5.0], np.float32)
    c = np.array([0.0, 2.0, 3.0, 6.0], np.float32)
    lay, bottom, top = build(param, [a, b, c])
    lay.forward(bottom, top)
    np.testing.assert_array_equal(top[0].data, [1, 2, 3, 6])
    np.testing.assert_array_equal(lay.max_idx, [1, 0, 1, 2])
    top[0].diff[...] = [10, 20, 30, 40]
    lay.backward(top, [True] * 3, bottom)
    np.testing.assert_array_equal(bottom[0].diff, [0, 20, 0, 0])
    np.testing.assert_array_equal(bottom[1].diff, [10, 0, 30, 0])
    np.testing.assert_array_equal(bottom[2].diff, [0, 0, 0, 40])
    assert lay.gradient_check == "kink"


@pytest.mark.parametrize("params", [
    "operation: PROD", "operation: PROD stable_prod_grad: false",
    "operation: SUM coeff: 0.5 coeff: -2 coeff: 1", "operation: SUM", "operation: MAX",
])
def test_gradients(params):
    rng = np.random.default_rng(1)
    xs = [rng.standard_normal((2, 3, 2)) for _ in range(3)]
    text = f'type: "Eltwise" bottom: "a" bottom: "b" bottom: "c" top: "y" eltwise_param {{ {params} }}'
    numeric_gradient_check(layer(text), xs)


def test_default_is_sum():
    lay, bottom, top = build(layer('type: "Eltwise" bottom: "a" bottom: "b" top: "y"'),
                             [np.ones(3, np.float32), np.full(3, 2, np.float32)])
    lay.forward(bottom, top)
    np.testing.assert_array_equal(top[0].data, 3)


@pytest.mark.parametrize("text, shapes, message", [
    ('eltwise_param { coeff: 1 }', [(2,), (2,)], "one coefficient per bottom"),
    ('eltwise_param { operation: PROD coeff: 1 coeff: 2 }', [(2,), (2,)], "only takes coefficients for summation"),
    ('', [(2, 3), (3, 2)], r"bottom 1 has shape \[3, 2\] but bottom 0 has shape \[2, 3\]"),
])
def test_errors(text, shapes, message):
    param = layer(f'name: "e" type: "Eltwise" bottom: "a" bottom: "b" top: "y" {text}')
    with pytest.raises(CaffeCaeError, match=rf"layer 'e' \(Eltwise\): .*{message}"):
        build(param, [np.zeros(s) for s in shapes])
