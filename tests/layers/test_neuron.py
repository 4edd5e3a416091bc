"""Neuron layers against Caffe's golden data, gradient checks, Caffe's special cases."""
import math

import numpy as np
import pytest

from caffe_cae.errors import CaffeCaeError
from caffe_cae.prototxt import parse_text
from caffe_cae.proto import caffe_pb2
from tests.helpers.layer_golden import Case, assert_close, build, check_golden_layer, numeric_gradient_check


def layer(text):
    return parse_text(text, caffe_pb2.LayerParameter, "<test>")


@pytest.mark.usefixtures("each_engine")
@pytest.mark.parametrize("case, name", [
    ("sigmoid", "sig"), ("tanh", "tanh"), ("relu", "relu"), ("relu_leaky", "relu"),
    ("dropout_test", "drop"), ("power", "power"), ("absval", "abs"),
])
def test_golden(case, name):
    param = Case(case).net.layer[-1]
    assert param.name == name
    *_, checked = check_golden_layer(case, name)
    assert checked == 1


def test_inplace_chain_relu_then_sigmoid():
    """ReLU(0.1) and Sigmoid in place on one blob: values after each layer and the diff after
    backward through both (the conv before them is the vision engineer's)."""
    case = Case("inplace_chain")
    relu, sig = case.layer_param("relu"), case.layer_param("sig")
    lay_relu, bottom, top = build(relu, [case.npz["layer_out/conv/0"]])
    assert top[0] is bottom[0]
    blob = bottom[0]
    lay_sig, *_ = build(sig, [blob.data])
    lay_relu.forward([blob], [blob])
    assert_close(blob.data, case.npz["layer_out/relu/0"], case.tol["forward"], "relu")
    lay_sig.forward([blob], [blob])
    assert_close(blob.data, case.npz["out/y"], case.tol["forward"], "sig")
    blob.diff[...] = case.npz["top_diff/y"]
    lay_sig.backward([blob], [True], [blob])
    lay_relu.backward([blob], [True], [blob])
    assert_close(blob.diff, case.npz["diff/y"], case.tol["backward"], "diff/y")


@pytest.mark.parametrize("text", [
    'type: "Sigmoid" bottom: "x" top: "y"',
    'type: "TanH" bottom: "x" top: "y"',
    'type: "ReLU" bottom: "x" top: "y"',
    'type: "ReLU" bottom: "x" top: "y" relu_param { negative_slope: 0.2 }',
    'type: "Power" bottom: "x" top: "y" power_param { power: 3 scale: 0.7 shift: 2 }',
    'type: "Power" bottom: "x" top: "y" power_param { power: 2 scale: -1.5 shift: 0.5 }',
    'type: "Power" bottom: "x" top: "y" power_param { power: 3 scale: 1.3 }',
    'type: "Power" bottom: "x" top: "y" power_param { power: 1 scale: 2 shift: 1 }',
    'type: "AbsVal" bottom: "x" top: "y"',
    'type: "Dropout" bottom: "x" top: "y" dropout_param { dropout_ratio: 0.3 }',
])
def test_gradients(text):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 3, 3)) + 0.1
    x[np.abs(x) < 0.05] = 0.3  # away from kinks
    numeric_gradient_check(layer(text), [x])


def test_dropout_train_mask_and_scale():
    param = layer('name: "d" type: "Dropout" bottom: "x" top: "y" dropout_param { dropout_ratio: 0.25 }')
    x = np.ones((200, 50), np.float32)
    lay, bottom, top = build(param, [x], phase=caffe_pb2.TRAIN)
    lay.fill_params(np.random.default_rng(7))
    lay.forward(bottom, top)
    y = top[0].data
    assert set(np.unique(y)) <= {0.0, np.float32(1 / 0.75)}
    assert abs((y == 0).mean() - 0.25) < 0.02
    top[0].diff[...] = 2.0
    lay.backward(top, [True], bottom)
    np.testing.assert_array_equal(bottom[0].diff, 2.0 * y)
    first = y.copy()
    lay.forward(bottom, top)
    assert not np.array_equal(first, top[0].data)  # a new mask every forward
    # seeded: a second layer with the same rng seed draws the same masks
    lay2, bottom2, top2 = build(param, [x], phase=caffe_pb2.TRAIN)
    lay2.fill_params(np.random.default_rng(7))
    lay2.forward(bottom2, top2)
    np.testing.assert_array_equal(top2[0].data, first)


def test_dropout_in_place_train():
    param = layer('name: "d" type: "Dropout" bottom: "x" top: "x"')
    x = np.arange(1, 41, dtype=np.float32).reshape(4, 10)
    lay, bottom, top = build(param, [x], phase=caffe_pb2.TRAIN)
    assert top[0] is bottom[0]
    lay.forward(bottom, top)
    np.testing.assert_array_equal(bottom[0].data, x * lay.mask * 2)


def test_power_constant_cases():
    x = np.array([[-1.0, 0.0, 2.0]], np.float32)
    for text, want in [("power: 0 scale: 3 shift: 2", 1.0), ("power: 2 scale: 0 shift: 3", 9.0)]:
        lay, bottom, top = build(layer(f'type: "Power" bottom: "x" top: "y" power_param {{ {text} }}'), [x])
        lay.forward(bottom, top)
        np.testing.assert_array_equal(top[0].data, want)
        top[0].diff[...] = 5
        lay.backward(top, [True], bottom)
        np.testing.assert_array_equal(bottom[0].diff, 0)


def test_relu_kink_gradient_is_slope():
    param = layer('type: "ReLU" bottom: "x" top: "y" relu_param { negative_slope: 0.25 }')
    lay, bottom, top = build(param, [np.array([-1.0, 0.0, 1.0], np.float32)])
    lay.forward(bottom, top)
    np.testing.assert_array_equal(top[0].data, [-0.25, 0, 1])
    top[0].diff[...] = 1
    lay.backward(top, [True], bottom)
    np.testing.assert_array_equal(bottom[0].diff, [0.25, 0.25, 1])


@pytest.mark.usefixtures("fast_engine")  # the reference's NumPy tanh is within 1 ulp
def test_sigmoid_uses_tanh_form_in_double_rounded_to_float32():
    # Caffe's `0.5 * tanh(0.5 * x) + 0.5` has double literals: evaluated in double, rounded
    # once (this reproduces the golden `sigmoid` case bit for bit; float32 tanh does not).
    x = np.linspace(-30, 30, 101, dtype=np.float32)
    lay, bottom, top = build(layer('type: "Sigmoid" bottom: "x" top: "y"'), [x])
    lay.forward(bottom, top)
    glibc_tanh = np.frompyfunc(math.tanh, 1, 1)  # the libm call C++ makes (NumPy's own differs)
    want = (0.5 * glibc_tanh(0.5 * x.astype(np.float64)).astype(np.float64) + 0.5).astype(np.float32)
    np.testing.assert_array_equal(top[0].data, want)
    assert top[0].data.dtype == np.float32


def test_absval_refuses_in_place():
    with pytest.raises(CaffeCaeError, match=r"layer 'a' \(AbsVal\): .*in-place"):
        build(layer('name: "a" type: "AbsVal" bottom: "x" top: "x"'), [np.zeros(3)])


def test_blob_counts():
    lay, *_ = build(layer('name: "s" type: "Sigmoid" bottom: "x" top: "y"'), [np.zeros(3)])
    with pytest.raises(CaffeCaeError, match="exactly 1 bottom"):
        lay.check_blob_counts(2, 1)
