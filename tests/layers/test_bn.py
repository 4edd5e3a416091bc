"""``BN`` of Noh's fork and SegNet's (bn_layer.cpp) against values worked out by hand."""
from __future__ import annotations

import math

import numpy as np
import pytest

from caffe_cae.net import Net
from caffe_cae.proto import caffe_pb2
from caffe_cae.prototxt import parse_text
from tests.helpers.run_layer import LayerRun, layer_text

FILLERS = 'scale_filler { type: "constant" value: 2 } shift_filler { type: "constant" value: 0.5 }'
# (2, 1, 1, 2): mean 4, E[x^2] = (1 + 9 + 25 + 49) / 4 = 21, var = 21 - 16 = 5
X = np.array([[[[1.0, 3.0]]], [[[5.0, 7.0]]]])


def test_learn_mode_normalizes_with_the_batch_statistics():
    run = LayerRun(layer_text("BN", f"bn_param {{ {FILLERS} }}", tops=3), [X])
    assert [p.shape for p in run.params] == [(1, 1, 1, 1)] * 2 and [t.shape for t in run.top[1:]] == [(1, 1, 1, 1)] * 2
    y, mean, var = run.forward()
    std = math.sqrt(5 + 1e-9)
    np.testing.assert_allclose(y, 2 * (X - 4) / std + 0.5, rtol=1e-6)
    assert mean.item() == 4.0 and var.item() == 5.0


def test_inference_mode_is_scale_and_shift():
    run = LayerRun(layer_text("BN", f"bn_param {{ bn_mode: INFERENCE {FILLERS} }}"), [X])
    (y,) = run.forward()
    np.testing.assert_array_equal(y, 2 * X + 0.5)
    (dx,) = run.backward([np.ones_like(X)])
    np.testing.assert_array_equal(dx, np.full_like(X, 2.0))
    assert run.layer.blobs[0].diff.item() == X.sum() and run.layer.blobs[1].diff.item() == 4.0


def test_unset_fillers_are_caffes_constant_zero():
    run = LayerRun(layer_text("BN", "bn_param { bn_mode: INFERENCE }"), [X])
    assert run.forward()[0].max() == 0.0


def test_learn_backward_is_the_batch_norm_gradient():
    run = LayerRun(layer_text("BN", f"bn_param {{ {FILLERS} }}"), [X], dtype=np.float64)
    run.forward()
    dy = np.array([[[[1.0, -2.0]]], [[[0.5, 3.0]]]])
    (dx,) = run.backward([dy])
    std = math.sqrt(5 + 1e-9)
    x_norm = (X - 4) / std
    g = 2 * dy
    expected = (g - (x_norm * (g * x_norm).sum() + g.sum()) / 4) / std
    np.testing.assert_allclose(dx, expected, rtol=1e-12)
    np.testing.assert_allclose(run.layer.blobs[0].diff.item(), (x_norm * dy).sum(), rtol=1e-12)


def test_parameter_gradients_are_assigned_as_in_the_forks():
    run = LayerRun(layer_text("BN", f"bn_param {{ {FILLERS} }}"), [X])
    run.forward()
    run.backward([np.ones_like(X)])
    first = run.layer.blobs[1].diff.copy()
    run.backward([np.ones_like(X)])
    np.testing.assert_array_equal(run.layer.blobs[1].diff, first)  # not doubled
    assert run.layer.overwrites_param_gradients


def test_in_place_inference_scale_gradient_reads_the_output_as_the_fork_does():
    """DeconvNet runs BN in place: the fork's backward reads bottom data, which then holds y."""
    net = Net(parse_text(f'''force_backward: true
        layer {{ name: "in" type: "Input" top: "x" input_param {{ shape {{ dim: 2 dim: 1 dim: 1 dim: 2 }} }} }}
        layer {{ name: "bn" type: "BN" bottom: "x" top: "x" bn_param {{ bn_mode: INFERENCE {FILLERS} }} }}
    ''', caffe_pb2.NetParameter))
    net.forward(x=X)
    net.backward(x=np.ones_like(X))
    y = 2 * X + 0.5
    assert net.params["bn"][0].diff.item() == pytest.approx(y.sum())
