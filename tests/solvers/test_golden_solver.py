"""The solvers on the real Net against every golden solver case of real Caffe: per-iteration
losses and lrs, final weights, history, and resuming from Caffe's own snapshot files.

Each case runs in a temporary copy of its folder (``train_list.txt`` is relative to the CWD,
as in Caffe)."""
from __future__ import annotations

import math
import shutil

import numpy as np
import pytest

from caffe_cae import get_solver, prototxt, weights
from tests.solvers.golden_cases import (ALL_CASES, ROUNDING_NOISE_PARAMS, assert_close, load,
                                      loss_tolerance, params_with_prefix, tolerance)


@pytest.fixture
def case_dir(request, tmp_path, monkeypatch):
    """The case name, after chdir into a private copy of its folder."""
    folder = load(request.param)[0]
    target = tmp_path / folder.name
    shutil.copytree(folder, target)
    monkeypatch.chdir(target)
    return request.param


def golden_final(folder, data, info, prefix="final"):
    """``{(layer, i): array}`` after training: from the npz, or Caffe's snapshot (large cases)."""
    if info["params_in_npz"] or prefix != "final":
        return params_with_prefix(data, prefix)
    snapshot = weights.read_weights(folder / f"snapshot_iter_{info['iters']}.caffemodel")
    return {(layer, i): a for layer, arrays in snapshot.items() for i, a in enumerate(arrays)}


def net_params(net):
    return {(name, i): b.data for name, blobs in net.params.items() for i, b in enumerate(blobs)}


def check_params(net, golden, tol, what, case, start=None, steps=0):
    """Every param against Caffe's; a rounding-noise param (ROUNDING_NOISE_PARAMS) only has to
    stay within ``steps`` Adam steps of its value in ``start``, in both runs."""
    mine = net_params(net)
    noise = ROUNDING_NOISE_PARAMS.get(case, {})
    assert golden
    for key, array in golden.items():
        if key in noise:
            reach = steps * adam_step_bound()
            for values in (mine[key], array):
                assert np.abs(values - start[key]).max() <= reach, f"{what}/{key[0]}/{key[1]}"
            continue
        assert_close(mine[key], array, tol, f"{what}/{key[0]}/{key[1]}")


def adam_step_bound():
    """Kingma & Ba's bound on one Adam step, lr * max(1, (1 - beta1) / sqrt(1 - beta2)), for
    the case's solver (in the current folder, the case's copy)."""
    param = prototxt.read_solver_text("solver.prototxt")
    assert param.type == "Adam", "rounding-noise params are only bounded for Adam"
    return param.base_lr * max(1.0, (1 - param.momentum) / math.sqrt(1 - param.momentum2))


def run_steps(solver, n, loss_blobs):
    lrs, losses = [], {b: [] for b in loss_blobs}
    for _ in range(n):
        lrs.append(solver.lr)
        solver.step(1)
        for blob in loss_blobs:
            losses[blob].append(float(solver.net.blobs[blob].data))
    return np.float32(lrs), losses


@pytest.mark.usefixtures("each_engine")
@pytest.mark.parametrize("case_dir", ALL_CASES, indirect=True)
def test_training_matches_caffe(case_dir):
    folder, case_json, info, data = load(case_dir)
    solver = get_solver("solver.prototxt")
    solver.net.copy_from("init.caffemodel")
    start = {key: array.copy() for key, array in net_params(solver.net).items()}
    lrs, losses = run_steps(solver, info["iters"], info["loss_blobs"])
    np.testing.assert_array_equal(lrs, data["iter_lr"])
    for blob in info["loss_blobs"]:
        assert_close(losses[blob], data[f"iter_loss/{blob}"], loss_tolerance(case_json),
                     f"iter_loss/{blob}")
    final_tol = tolerance(case_json, "final", 1e-3, 1e-6)
    check_params(solver.net, golden_final(folder, data, info), final_tol, "final", case_dir,
                 start, info["iters"])
    if "state/history/0" in data.files:
        for i, mine in enumerate(solver.history):
            assert_close(mine, data[f"state/history/{i}"], final_tol, f"state/history/{i}")
    assert len(solver.history) == info["solverstate"]["n_history"]


@pytest.mark.usefixtures("each_engine")
@pytest.mark.parametrize("case_dir", ALL_CASES, indirect=True)
def test_resume_from_caffe_snapshot(case_dir):
    folder, case_json, info, data = load(case_dir)
    solver = get_solver("solver.prototxt")
    solver.restore(f"snapshot_iter_{info['iters']}.solverstate")
    assert solver.iter == info["iters"]
    start = {key: array.copy() for key, array in net_params(solver.net).items()}
    lrs, losses = run_steps(solver, info["resume_iters"], info["loss_blobs"])
    np.testing.assert_array_equal(lrs, data["resume/iter_lr"])
    for blob in info["loss_blobs"]:
        assert_close(losses[blob], data[f"resume/iter_loss/{blob}"],
                     loss_tolerance(case_json), f"resume/iter_loss/{blob}")
    if info["params_in_npz"]:
        check_params(solver.net, params_with_prefix(data, "resume/final"),
                     tolerance(case_json, "final", 1e-3, 1e-6), "resume/final", case_dir,
                     start, info["resume_iters"])


NOISE_CASES = sorted(set(ALL_CASES) & set(ROUNDING_NOISE_PARAMS))


@pytest.mark.parametrize("case_dir", NOISE_CASES, indirect=True)
def test_rounding_noise_params_have_no_gradient(case_dir):
    """The premise of ROUNDING_NOISE_PARAMS: in Caffe's first gradient and in ours, those
    params' gradients are rounding noise next to the other gradients of their layer."""
    folder, case_json, info, data = load(case_dir)
    solver = get_solver("solver.prototxt")
    solver.net.copy_from("init.caffemodel")
    solver.net.forward_backward()
    for layer, index in ROUNDING_NOISE_PARAMS[case_dir]:
        blobs = solver.net.params[layer]
        for grads in ([b.diff for b in blobs], [data[f"grad_iter0/{layer}/{i}"] for i in range(len(blobs))]):
            largest = max(float(np.abs(g).max()) for g in grads)
            assert np.abs(grads[index]).max() < 1e-5 * largest, f"{layer}/{index}"
