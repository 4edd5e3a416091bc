"""ELU, BNLL, Exp, Log, Threshold, Clip, Swish: Caffe's formulas where they differ from the
textbook one, setup refusals, and Threshold's missing backward."""
import numpy as np
import pytest

import caffe_cae
from caffe_cae.blob import Blob
from caffe_cae.errors import CaffeCaeError
from caffe_cae.layers import create_layer
from caffe_cae.proto import caffe_pb2
from caffe_cae.prototxt import parse_text


def run(text, x):
    """Forward of one layer on ``x`` (float32); returns the top."""
    layer = create_layer(parse_text(f'name: "l" bottom: "x" top: "y" {text}',
                                    caffe_pb2.LayerParameter, "<test>"))
    x = np.asarray(x, np.float32)
    layer.check_blob_counts(1, 1)
    layer.setup([x.shape])
    bottom, top = Blob(x.shape), Blob(layer.reshape([x.shape])[0])
    bottom.data[...] = x
    layer.forward([bottom], [top])
    return top.data


def setup_error(text, shape=(2, 3)) -> str:
    layer = create_layer(parse_text(f'name: "l" bottom: "x" top: "y" {text}',
                                    caffe_pb2.LayerParameter, "<test>"))
    with pytest.raises(CaffeCaeError) as info:
        layer.setup([shape])
    return str(info.value)


def test_bnll_is_zero_where_one_plus_exp_rounds_to_one():
    """Caffe computes log(1. + exp(x)) for x <= 0: 0 below x = -37 (log1p would not be)."""
    y = run('type: "BNLL"', [-40.0, -30.0, 0.0, 30.0, 100.0])
    assert y[0] == 0 and 0 < y[1] < 1e-12
    np.testing.assert_allclose(y[2:], [np.log(2.0), 30.0, 100.0], rtol=1e-7)


def test_elu_and_swish_formulas():
    x = np.array([-2.0, -0.5, 0.0, 1.5], np.float32)
    np.testing.assert_allclose(run('type: "ELU" elu_param { alpha: 0.5 }', x),
                               np.where(x > 0, x, 0.5 * np.expm1(x)), rtol=1e-6)
    np.testing.assert_allclose(run('type: "Swish" swish_param { beta: 1.5 }', x),
                               x / (1 + np.exp(-1.5 * x)), rtol=1e-6)


def test_exp_with_base_e_and_a_shift_scales_by_e_to_the_shift():
    """BVLC master's fix: outer scale exp(shift) for base -1 (older Caffe took pow(-1, shift))."""
    x = np.array([0.0, 1.0, -2.0], np.float32)
    np.testing.assert_allclose(run('type: "Exp" exp_param { shift: 0.5 }', x),
                               np.exp(x + 0.5), rtol=1e-6)
    np.testing.assert_allclose(run('type: "Exp" exp_param { base: 2 scale: 0.5 shift: -1 }', x),
                               2.0 ** (0.5 * x - 1), rtol=1e-6)


def test_log_base10_scale_shift():
    x = np.array([0.25, 1.0, 3.0], np.float32)
    np.testing.assert_allclose(run('type: "Log" log_param { base: 10 scale: 2 shift: 0.5 }', x),
                               np.log10(2 * x + 0.5), rtol=1e-6)


@pytest.mark.parametrize("text, expected", [
    ('type: "Exp" exp_param { base: -2 }', "base must be strictly positive"),
    ('type: "Exp" exp_param { base: 0 }', "base must be strictly positive"),
    ('type: "Log" log_param { base: -0.5 }', "base must be strictly positive"),
    ('type: "Log" log_param { base: 1 }', "1/log(base) = 1/log(1) = inf"),
])
def test_bad_bases_are_refused(text, expected):
    message = setup_error(text)
    assert message.startswith("layer 'l' (") and expected in message and "\n" not in message


def test_threshold_is_strict():
    assert run('type: "Threshold" threshold_param { threshold: 0.3 }',
               [0.2, np.float32(0.3), 0.31]).tolist() == [0.0, 0.0, 1.0]


def test_clip_bounds_are_inclusive_for_the_diff_and_nan_gives_min():
    layer = create_layer(parse_text('name: "c" type: "Clip" bottom: "x" top: "y" '
                                    'clip_param { min: -0.5 max: 0.8 }',
                                    caffe_pb2.LayerParameter, "<test>"))
    layer.setup([(5,)])
    bottom, top = Blob((5,)), Blob((5,))
    bottom.data[...] = [-0.5, np.float32(0.8), -1.0, 2.0, np.nan]
    layer.forward([bottom], [top])
    np.testing.assert_array_equal(top.data, np.float32([-0.5, 0.8, -0.5, 0.8, -0.5]))
    top.diff[...] = 3.0
    layer.backward([top], [True], [bottom])
    assert bottom.diff.tolist() == [3.0, 3.0, 0.0, 0.0, 0.0]


NET = """
force_backward: true
layer { name: "x" type: "Input" top: "x" input_param { shape { dim: 2 dim: 3 } } }
layer { name: "t" type: "Threshold" bottom: "x" top: "y" }
"""


def test_threshold_forward_runs_but_its_backward_is_refused():
    """Caffe builds and runs the net forward; its Backward aborts (Not Implemented Yet)."""
    net = caffe_cae.Net(parse_text(NET, caffe_pb2.NetParameter))
    net.forward(x=np.ones((2, 3)))
    with pytest.raises(CaffeCaeError, match=r"^layer 't' \(Threshold\): Threshold has no backward"):
        net.backward()


def test_threshold_without_a_gradient_path_is_skipped_by_backward():
    net = caffe_cae.Net(parse_text(NET.replace("force_backward: true", ""),
                                   caffe_pb2.NetParameter))
    net.forward(x=np.ones((2, 3)))
    net.backward()
