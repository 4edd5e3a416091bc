"""Sigmoid rounds like Caffe's ``0.5 * tanh(0.5 * x) + 0.5`` with glibc's double ``tanh``
(Python's ``math.tanh`` is the same libm call), bit for bit, including the saturated tail
where that formula quantises the result to multiples of 2^-54 (and 0 below about -37)."""
import math

import numpy as np
import pytest

from caffe_cae.layers.neuron import sigmoid

# the fast engine's sigmoid; the reference engine's uses NumPy's tanh (see sigmoid_reference)
pytestmark = pytest.mark.usefixtures("fast_engine")


def caffe_sigmoid(x: np.ndarray) -> np.ndarray:
    tanh = np.frompyfunc(math.tanh, 1, 1)
    return (0.5 * tanh(0.5 * x.astype(np.float64)).astype(np.float64) + 0.5).astype(np.float32)


@pytest.mark.parametrize("low, high", [(-40.0, -15.0), (-15.0, 15.0), (15.0, 40.0), (-800.0, 800.0)])
def test_sigmoid_equals_caffes_formula_bit_for_bit(low, high):
    x = np.random.default_rng(int(abs(low))).uniform(low, high, 200_000).astype(np.float32)
    np.testing.assert_array_equal(sigmoid(x), caffe_sigmoid(x))


def test_numpys_double_tanh_would_not():
    """What the test above guards against: NumPy's own double tanh rounds differently from
    glibc's in the saturated tail (about 1 input in 600 there)."""
    x = np.random.default_rng(1).uniform(-40.0, -15.0, 200_000).astype(np.float32)
    numpy_tanh = (0.5 * np.tanh(0.5 * x.astype(np.float64)) + 0.5).astype(np.float32)
    assert (numpy_tanh != caffe_sigmoid(x)).sum() > 10


def test_special_values():
    x = np.array([np.inf, -np.inf, np.nan, 0.0, -0.0, -1e30, 1e30, -800.0], np.float32)
    with np.errstate(over="raise", divide="raise", invalid="raise"):  # no warnings
        y = sigmoid(x)
    np.testing.assert_array_equal(y, [1, 0, np.nan, 0.5, 0.5, 0, 1, 0])
