"""Audit of the solvers against BVLC Caffe's ``solver.cpp`` / ``sgd_solver.cpp`` / ``*_solver.cpp``
(master 9b89154): behaviours the golden cases do not exercise.

Each test names the Caffe code it pins down.  The arithmetic of every update rule is checked
here against an independent float64 re-statement of Caffe's formulas, on settings the golden
cases do not combine (lr_mult/decay_mult, L1, clipping and iter_size with every solver type).
"""
from __future__ import annotations

import logging
import os

import numpy as np
import pytest

from caffe_cae import prototxt
from caffe_cae.errors import CaffeCaeError
from caffe_cae.proto import caffe_pb2
from caffe_cae.solvers import SOLVER_CLASSES, Solver, config
from tests.helpers.paths import GOLDEN
from tests.solvers.fake_net import TinyAutoencoderNet

CASE = "sgd_fixed_momentum"


def make_solver(prefix, case=CASE, **fields):
    param = prototxt.read_solver_text(str(GOLDEN / case / "solver.prototxt"))
    param.snapshot_prefix = str(prefix)
    for name, value in fields.items():
        setattr(param, name, value)
    return SOLVER_CLASSES[param.type](param, net=TinyAutoencoderNet(GOLDEN / case))


# -- snapshot_prefix: UpgradeSnapshotPrefixProperty uses boost::filesystem on the path as written


def test_default_prefix_keeps_the_solver_path_as_written(tmp_path, monkeypatch):
    # boost: path("./sub/solver.prototxt").replace_extension() == "./sub/solver" (no normalising);
    # the prefix is written into every solverstate's learned_net, so the spelling matters.
    monkeypatch.chdir(tmp_path)
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "solver.prototxt").write_text('net: "n.prototxt"\nlr_policy: "fixed"\n')
    assert config.read_solver("./sub/solver.prototxt").snapshot_prefix == "./sub/solver"
    assert config.read_solver("sub//solver.prototxt").snapshot_prefix == "sub//solver"


def test_directory_prefix_is_joined_like_boost(tmp_path, monkeypatch):
    # path("./") / path("solver") == "./solver"; path("snaps/") / "solver" == "snaps/solver".
    monkeypatch.chdir(tmp_path)
    (tmp_path / "snaps").mkdir()
    for prefix, expected in (("./", "./solver"), ("snaps/", "snaps/solver"), ("snaps", "snaps/solver"),
                             ("./snaps", "./snaps/solver")):
        (tmp_path / "solver.prototxt").write_text(
            f'net: "n.prototxt"\nlr_policy: "fixed"\nsnapshot_prefix: "{prefix}"\n')
        assert config.read_solver("solver.prototxt").snapshot_prefix == expected


# -- Solver::CheckSnapshotWritePermissions (Solver::Init)


def test_unwritable_snapshot_prefix_is_refused_before_training(tmp_path):
    with pytest.raises(CaffeCaeError, match="Cannot write to snapshot prefix"):
        make_solver(tmp_path / "missing" / "snap", snapshot=5)
    solver = make_solver(tmp_path / "snap", snapshot=5)  # the probe file is removed again
    assert os.listdir(tmp_path) == [] and solver.iter == 0
    make_solver(tmp_path / "missing" / "snap", snapshot=0)  # no snapshots: no probe


# -- Solver::Solve: the final snapshot


def test_no_final_snapshot_when_the_interval_divides_the_last_iteration(tmp_path):
    # Caffe: snapshot_after_train && (!snapshot || iter_ % snapshot != 0).  Resuming a run that
    # already reached max_iter (a multiple of snapshot) writes nothing more.
    first = make_solver(tmp_path / "s", snapshot=5, max_iter=10)
    first.solve()
    state = tmp_path / "s_iter_10.solverstate"
    second = make_solver(tmp_path / "s", snapshot=5, max_iter=10)
    second.restore(str(state))
    os.remove(state)
    os.remove(tmp_path / "s_iter_10.caffemodel")
    second.solve()
    assert not state.exists()
    assert second.iter == 10


def test_final_snapshot_when_the_interval_does_not_divide(tmp_path):
    solver = make_solver(tmp_path / "s", snapshot=4, max_iter=6)
    solver.solve()
    assert sorted(os.listdir(tmp_path)) == sorted(
        f"s_iter_{i}.{ext}" for i in (4, 6) for ext in ("caffemodel", "solverstate"))


# -- SGDSolver::Regularize: an unknown regularization_type is fatal only when it is used


def test_unknown_regularization_type_without_weight_decay_trains(tmp_path):
    solver = make_solver(tmp_path / "s", weight_decay=0.0, regularization_type="L3")
    solver.step(1)
    assert solver.iter == 1


def test_unknown_regularization_type_with_weight_decay_is_refused(tmp_path):
    with pytest.raises(CaffeCaeError, match="regularization_type 'L3'"):
        make_solver(tmp_path / "s", weight_decay=0.01, regularization_type="L3")


# -- RMSPropSolver::constructor_sanity_check


@pytest.mark.parametrize("decay", [1.0, 1.5, -0.1])
def test_rms_decay_must_lie_in_0_1(tmp_path, decay):
    with pytest.raises(CaffeCaeError, match="rms_decay"):
        make_solver(tmp_path / "s", case="rmsprop", rms_decay=decay)


def test_rms_decay_zero_is_allowed(tmp_path):
    make_solver(tmp_path / "s", case="rmsprop", rms_decay=0.0).step(1)


# -- LoadNetWeights: each weights entry is a comma-separated list, entries trimmed


def test_weights_lists_are_split_on_commas_and_trimmed(tmp_path, monkeypatch):
    loaded = []
    monkeypatch.setattr(Solver, "copy_weights", lambda self, path: loaded.append(path))
    param = prototxt.read_solver_text(str(GOLDEN / CASE / "solver.prototxt"))
    param.snapshot_prefix = str(tmp_path / "s")
    param.weights.extend(["a.caffemodel, b.caffemodel", "c.caffemodel"])
    SOLVER_CLASSES["SGD"](param, net=TinyAutoencoderNet(GOLDEN / CASE), weights=" d.caffemodel ,e.caffemodel")
    assert loaded == ["a.caffemodel", "b.caffemodel", "c.caffemodel", "d.caffemodel", "e.caffemodel"]


# -- SGDSolver::GetLearningRate: multistep logs its step changes


def test_multistep_logs_its_status(tmp_path, caplog):
    solver = make_solver(tmp_path / "s", case="sgd_multistep")
    with caplog.at_level(logging.INFO, logger="caffe_cae.solvers.solver"):
        solver.step(6)
    lines = [r.getMessage() for r in caplog.records if "MultiStep" in r.getMessage()]
    assert lines == ["MultiStep Status: Iteration 5, step = 1"]


# -- the update of every solver type, on combinations no golden case has


def _reference_update(kind, p, data, grads, hist, it):
    """Caffe's ApplyUpdate for one iteration in float64: clip, then per param normalise,
    regularise, ComputeUpdateValue, W -= step.  ``hist`` is updated in place."""
    n = len(data)
    rate = p["base_lr"]
    grads = [g.astype(np.float64) for g in grads]
    if p["clip"] >= 0:
        norm = np.sqrt(sum(float((g * g).sum()) for g in grads))
        if norm > p["clip"]:
            grads = [g * (p["clip"] / norm) for g in grads]
    out = []
    for i in range(n):
        w, g = data[i].astype(np.float64), grads[i] / p["iter_size"]
        decay = p["weight_decay"] * p["decay_mult"][i]
        if decay:
            g = g + decay * (np.sign(w) if p["l1"] else w)
        lr = rate * p["lr_mult"][i]
        m, m2, delta = p["momentum"], p["momentum2"], p["delta"]
        if kind == "SGD":
            hist[i] = m * hist[i] + lr * g
            step = hist[i]
        elif kind == "Nesterov":
            old = hist[i].copy()
            hist[i] = m * hist[i] + lr * g
            step = (1 + m) * hist[i] - m * old
        elif kind == "AdaGrad":
            hist[i] = hist[i] + g * g
            step = lr * g / (np.sqrt(hist[i]) + delta)
        elif kind == "RMSProp":
            hist[i] = p["rms_decay"] * hist[i] + (1 - p["rms_decay"]) * g * g
            step = lr * g / (np.sqrt(hist[i]) + delta)
        elif kind == "AdaDelta":
            hist[i] = m * hist[i] + (1 - m) * g * g
            upd = g * np.sqrt((hist[n + i] + delta) / (hist[i] + delta))
            hist[n + i] = m * hist[n + i] + (1 - m) * upd * upd
            step = lr * upd
        elif kind == "Adam":
            t = it + 1
            hist[i] = m * hist[i] + (1 - m) * g
            hist[n + i] = m2 * hist[n + i] + (1 - m2) * g * g
            corr = np.sqrt(1 - m2 ** t) / (1 - m ** t)
            step = lr * corr * hist[i] / (np.sqrt(hist[n + i]) + delta)
        out.append(w - step)
    return out


class _FixedGradNet:
    """Two params with fixed gradients per iteration (no forward pass), like a real net's
    learnable_params / params_lr / params_weight_decay surface."""

    name = "fixed"

    def __init__(self, rng, iter_size):
        from caffe_cae.blob import Blob

        self.learnable_params = [Blob((3, 4)), Blob((4,))]
        for b in self.learnable_params:
            b.data[...] = rng.normal(size=b.data.shape).astype(np.float32)
        self.params_lr = [2.0, 0.5]
        self.params_weight_decay = [1.0, 3.0]
        self.outputs, self.blob_loss_weights, self.blobs = [], {}, {}
        self.rng, self.iter_size = rng, iter_size
        self.grads = []  # accumulated raw gradients of the current iteration

    def forward_backward(self):
        for b in self.learnable_params:
            g = self.rng.normal(size=b.diff.shape).astype(np.float32)
            b.diff += g
        return 1.0


@pytest.mark.parametrize("kind", sorted(SOLVER_CLASSES))
@pytest.mark.parametrize("l1, clip, iter_size", [(False, -1.0, 1), (True, 0.5, 2)])
def test_update_rules_compose_like_caffe(kind, l1, clip, iter_size):
    p = dict(base_lr=0.05, momentum=0.0 if kind in ("AdaGrad", "RMSProp") else 0.9, momentum2=0.99,
             delta=1e-6, rms_decay=0.9, weight_decay=0.01, l1=l1, clip=clip, iter_size=iter_size,
             lr_mult=[2.0, 0.5], decay_mult=[1.0, 3.0])
    param = caffe_pb2.SolverParameter(
        type=kind, base_lr=p["base_lr"], lr_policy="fixed", momentum=p["momentum"],
        momentum2=p["momentum2"], delta=p["delta"], rms_decay=p["rms_decay"],
        weight_decay=p["weight_decay"], regularization_type="L1" if l1 else "L2",
        clip_gradients=clip, iter_size=iter_size, max_iter=10, snapshot_prefix="unused")
    net = _FixedGradNet(np.random.default_rng(3), iter_size)
    solver = SOLVER_CLASSES[kind](param, net=net)
    data = [b.data.astype(np.float64) for b in net.learnable_params]
    hist = [np.zeros(d.shape) for d in data] * (2 if kind in ("AdaDelta", "Adam") else 1)
    hist = [h.copy() for h in hist]
    twin = np.random.default_rng(3)  # replays the net's gradient stream
    for b in net.learnable_params:
        twin.normal(size=b.data.shape)
    for it in range(4):
        grads = [np.zeros(d.shape) for d in data]
        for _ in range(iter_size):
            for g in grads:
                g += twin.normal(size=g.shape).astype(np.float32)
        solver.step(1)
        data = _reference_update(kind, p, data, grads, hist, it)
        for got, want in zip(net.learnable_params, data):
            np.testing.assert_allclose(got.data, want, rtol=2e-5, atol=2e-6)
    for got, want in zip(solver.history, hist):
        np.testing.assert_allclose(got, want, rtol=2e-5, atol=2e-6)


# -- SGDSolver::GetLearningRate CHECKs: gamma >= 0 for step, exp, inv, multistep and sigmoid


@pytest.mark.parametrize("policy", ["step", "exp", "inv", "multistep", "sigmoid"])
def test_negative_gamma_is_refused(tmp_path, policy):
    with pytest.raises(CaffeCaeError, match="gamma >= 0"):
        make_solver(tmp_path / "s", lr_policy=policy, gamma=-0.5, stepsize=3)


def test_poly_and_fixed_ignore_gamma(tmp_path):
    for policy in ("poly", "fixed"):
        make_solver(tmp_path / "s", lr_policy=policy, gamma=-0.5, power=1.0).step(1)
