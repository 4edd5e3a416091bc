"""Dropout in TRAIN phase against real Caffe (golden_bvlc ``dropout_train``).

Caffe's mask comes from its own RNG and cannot be reproduced, so this checks what the draw
leaves determined: kept values are x / (1 - ratio) and dropped ones 0 (mask = out != 0), the
backward applies that same mask and scale, and the kept fraction is within sampling error of
1 - ratio -- for Caffe's recorded run and for ours on the same input.
"""
from __future__ import annotations

import numpy as np
import pytest

import caffe_cae
from tests.helpers.golden import assert_close, open_case


@pytest.fixture(scope="module")
def case():
    return open_case("bvlc/dropout_train")


def run(case, seed):
    net = caffe_cae.Net(str(case.path("net.prototxt")), str(case.path("init.caffemodel")),
                        caffe_cae.TRAIN, seed=seed)
    x = case.data["in/x"]
    y = net.forward(x=x)["y"]
    dx = net.backward(y=case.data["top_diff/y"])["x"]
    return x, y, dx


def stats(case):
    return case.info["dropout_stats"]["drop"]


def within_sampling_error(kept: np.ndarray, ratio: float) -> bool:
    """The kept fraction is within 4 binomial standard deviations of 1 - ratio."""
    p = 1.0 - ratio
    return abs(kept.mean() - p) <= 4 * np.sqrt(p * (1 - p) / kept.size)


def test_caffe_run_obeys_the_rule_we_implement(case):
    x, y, dx, dy = (case.data[k] for k in ("in/x", "out/y", "diff/x", "top_diff/y"))
    ratio, scale = stats(case)["ratio"], np.float32(stats(case)["scale"])
    kept = y != 0
    assert scale == np.float32(1.0 / (1.0 - ratio))
    assert (x != 0).all()  # so out == 0 only where the mask dropped the value
    np.testing.assert_array_equal(y[kept], x[kept] * scale)
    np.testing.assert_array_equal(dx, np.where(kept, dy * scale, 0))
    assert kept.mean() == pytest.approx(stats(case)["kept_fraction"])
    assert within_sampling_error(kept, ratio)


def test_forward_scales_kept_values_and_zeroes_the_rest(case):
    x, y, _ = run(case, seed=3)
    kept = y != 0
    scale = np.float32(stats(case)["scale"])
    assert_close(y[kept], x[kept] * scale, case.tolerance("forward"), "kept values")
    assert within_sampling_error(kept, stats(case)["ratio"])


def test_backward_uses_the_forward_mask(case):
    _, y, dx = run(case, seed=4)
    kept = y != 0
    dy = case.data["top_diff/y"]
    scale = np.float32(stats(case)["scale"])
    np.testing.assert_array_equal(dx, np.where(kept, dy * scale, 0))


def test_each_forward_draws_a_new_mask(case):
    net = caffe_cae.Net(str(case.path("net.prototxt")), phase=caffe_cae.TRAIN, seed=5)
    x = case.data["in/x"]
    first = net.forward(x=x)["y"] != 0
    second = net.forward(x=x)["y"] != 0
    assert (first != second).any()
    assert within_sampling_error(first, stats(case)["ratio"])
    assert within_sampling_error(second, stats(case)["ratio"])


def test_test_phase_is_the_identity(case):
    net = caffe_cae.Net(str(case.path("net.prototxt")), phase=caffe_cae.TEST)
    x = case.data["in/x"]
    np.testing.assert_array_equal(net.forward(x=x)["y"], x)
