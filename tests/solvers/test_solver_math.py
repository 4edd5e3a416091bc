"""The solver's arithmetic against real Caffe on every small golden solver case, with a NumPy
stand-in for the tiny net (tests/solvers/fake_net.py): lr per iteration (bitwise), losses,
params after updates 1, 2 and 30, the history blobs, and resuming from Caffe's own snapshot."""
from __future__ import annotations

import numpy as np
import pytest

from caffe_cae import prototxt
from caffe_cae.solvers import SOLVER_CLASSES
from tests.solvers.fake_net import TinyAutoencoderNet
from tests.solvers.golden_cases import (TINY_NET_CASES, assert_close, load, loss_tolerance,
                                      params_with_prefix, tolerance)


def make_solver(folder):
    param = prototxt.read_solver_text(str(folder / "solver.prototxt"))
    cls = SOLVER_CLASSES[param.type]
    return cls(param, net=TinyAutoencoderNet(folder))


def net_params(net):
    return {(name, i): b.data.copy() for name, blobs in net.params.items() for i, b in enumerate(blobs)}


@pytest.mark.parametrize("case", TINY_NET_CASES)
def test_fake_net_reproduces_caffe_gradients(case):
    folder, case_json, info, data = load(case)
    net = TinyAutoencoderNet(folder)
    for _ in range(info["iter_size"]):
        net.forward_backward()
    for (layer, i), golden in params_with_prefix(data, "grad_iter0").items():
        assert_close(net.params[layer][i].diff, golden, (1e-4, 1e-6, 1e-5), f"grad_iter0/{layer}/{i}")


@pytest.mark.parametrize("case", TINY_NET_CASES)
def test_training_matches_caffe(case):
    folder, case_json, info, data = load(case)
    solver = make_solver(folder)
    lrs, losses, means = [], [], []
    solver.add_callback(lambda s, loss: means.append(loss))
    final_tol = tolerance(case_json, "final", 1e-3, 1e-6)
    for k in range(info["iters"]):
        lrs.append(solver.lr)
        solver.step(1)
        losses.append(float(solver.net.blobs["loss"].data))
        if k in (0, 1):
            for key, golden in params_with_prefix(data, f"param_iter{k + 1}").items():
                assert_close(net_params(solver.net)[key], golden, final_tol, f"param_iter{k + 1}/{key}")
    assert solver.iter == info["iters"]
    np.testing.assert_array_equal(np.float32(lrs), data["iter_lr"])
    loss_tol = loss_tolerance(case_json)
    assert_close(losses, data["iter_loss/loss"], loss_tol, "iter_loss")
    assert_close(means, data["iter_loss_mean/loss"], loss_tol, "iter_loss_mean")
    for key, golden in params_with_prefix(data, "final").items():
        assert_close(net_params(solver.net)[key], golden, final_tol, f"final/{key}")
    history = [data[f"state/history/{i}"] for i in range(info["solverstate"]["n_history"])]
    assert len(solver.history) == len(history)
    for i, (mine, golden) in enumerate(zip(solver.history, history)):
        assert_close(mine, golden, final_tol, f"state/history/{i}")


@pytest.mark.parametrize("case", TINY_NET_CASES)
def test_resume_from_caffe_snapshot(case, monkeypatch):
    folder, case_json, info, data = load(case)
    monkeypatch.chdir(folder)  # learned_net is relative, as Caffe wrote it
    solver = make_solver(folder)
    solver.restore(str(folder / f"snapshot_iter_{info['iters']}.solverstate"))
    assert solver.iter == info["iters"]
    lrs, losses = [], []
    for _ in range(info["resume_iters"]):
        lrs.append(solver.lr)
        solver.step(1)
        losses.append(float(solver.net.blobs["loss"].data))
    np.testing.assert_array_equal(np.float32(lrs), data["resume/iter_lr"])
    assert_close(losses, data["resume/iter_loss/loss"], loss_tolerance(case_json), "resume loss")
    final_tol = tolerance(case_json, "final", 1e-3, 1e-6)
    for key, golden in params_with_prefix(data, "resume/final").items():
        assert_close(net_params(solver.net)[key], golden, final_tol, f"resume/final/{key}")
