"""Learning-rate policies: bit-identical to Caffe's float32 rates (golden ``iter_lr``), close to
the float64 formula (``lr_formula``), and C semantics at the edges."""
from __future__ import annotations

import math

import numpy as np
import pytest

from caffe_cae import prototxt
from caffe_cae.errors import CaffeCaeError
from caffe_cae.proto import caffe_pb2
from caffe_cae.solvers.lr_policy import check_policy, learning_rate
from tests.solvers.golden_cases import SMALL_CASES, load


@pytest.mark.parametrize("case", SMALL_CASES)
def test_rates_match_caffe_bitwise(case):
    folder, _, info, data = load(case)
    param = prototxt.read_solver_text(str(folder / "solver.prototxt"))
    rates, step = [], 0
    for it in range(info["iters"]):
        rate, step = learning_rate(param, it, step)
        rates.append(rate)
    np.testing.assert_array_equal(np.float32(rates), data["iter_lr"])
    np.testing.assert_allclose(rates, info["lr_formula"], rtol=1e-6)


def test_multistep_advances_at_most_one_step_per_call():
    param = caffe_pb2.SolverParameter(lr_policy="multistep", base_lr=1, gamma=0.5, stepvalue=[2, 3])
    # Restored at iteration 10 with current_step 0: one step per iteration, as in Caffe.
    assert [learning_rate(param, 10, s) for s in (0, 1, 2)] == [(0.5, 1), (0.25, 2), (0.25, 2)]


def test_edges_follow_c():
    poly = caffe_pb2.SolverParameter(lr_policy="poly", base_lr=0.1, power=0.5, max_iter=10)
    assert learning_rate(poly, 10)[0] == 0 and math.isnan(learning_rate(poly, 11)[0])
    sigmoid = caffe_pb2.SolverParameter(lr_policy="sigmoid", base_lr=0.1, gamma=100, stepsize=10)
    assert learning_rate(sigmoid, 0)[0] == 0 and learning_rate(sigmoid, 20)[0] == np.float32(0.1)


@pytest.mark.parametrize("fields, message", [
    ({"lr_policy": "cosine"}, "s: unknown lr_policy 'cosine'; known: fixed, step, exp, inv, multistep, poly, sigmoid"),
    ({}, "s: unknown lr_policy (none given); known: "),
    ({"lr_policy": "exp", "gamma": -0.5}, "s: lr_policy 'exp' needs gamma >= 0 (got -0.5)"),
])
def test_bad_policies(fields, message):
    with pytest.raises(CaffeCaeError) as err:
        check_policy(caffe_pb2.SolverParameter(**fields), "s")
    assert str(err.value).startswith(message)
