"""Snapshots: Caffe's file names and formats, readable with the generated bindings alone;
bitwise-exact resume; snapshot_prefix rules; Ctrl-C and snapshot_after_train."""
from __future__ import annotations

import os
import signal

import h5py
import numpy as np
import pytest

from caffe_cae import prototxt
from caffe_cae.errors import CaffeCaeError
from caffe_cae.proto import caffe_pb2
from caffe_cae.solvers import SOLVER_CLASSES, config
from tests.helpers.paths import GOLDEN
from tests.solvers.fake_net import TinyAutoencoderNet

CASE = GOLDEN / "sgd_fixed_momentum"


def make_solver(case, prefix, **fields):
    param = prototxt.read_solver_text(str(GOLDEN / case / "solver.prototxt"))
    param.snapshot_prefix = str(prefix)
    for name, value in fields.items():
        setattr(param, name, value)
    return SOLVER_CLASSES[param.type](param, net=TinyAutoencoderNet(GOLDEN / case))


def state_of(solver):
    params = [b.data.copy() for b in solver.net.learnable_params]
    return params, [h.copy() for h in solver.history], solver.iter, solver.current_step


@pytest.mark.parametrize("case", ["sgd_fixed_momentum", "nesterov", "adagrad", "rmsprop", "adadelta",
                                  "adam", "sgd_multistep", "sgd_iter_size2", "sgd_clip"])
@pytest.mark.parametrize("fmt", ["BINARYPROTO", "HDF5"])
def test_resume_is_bitwise_exact(case, fmt, tmp_path):
    # 8 iterations in one run == 4, snapshot, restore in a fresh solver, 4 more.  Batches of 16
    # rows of 64 (32 with iter_size 2) restart at row 0 after 4 iterations, like a fresh net.
    fmt_value = caffe_pb2.SolverParameter.SnapshotFormat.Value(fmt)
    whole = make_solver(case, tmp_path / "whole")
    whole.step(8)
    first = make_solver(case, tmp_path / "half", snapshot_format=fmt_value)
    first.step(4)
    model, state = first.snapshot()
    second = make_solver(case, tmp_path / "other")
    second.restore(state)
    second.step(4)
    (p1, h1, i1, c1), (p2, h2, i2, c2) = state_of(whole), state_of(second)
    assert (i1, c1) == (i2, c2) == (8, whole.current_step)
    for a, b in zip(p1 + h1, p2 + h2):
        np.testing.assert_array_equal(a, b)


def test_binary_snapshot_is_plain_caffe(tmp_path):
    solver = make_solver("adam", tmp_path / "snap")
    solver.step(3)
    model, state_path = solver.snapshot()
    assert model == f"{tmp_path}/snap_iter_3.caffemodel"
    assert state_path == f"{tmp_path}/snap_iter_3.solverstate"
    # Only the generated bindings: what a program knowing Caffe's schema does.
    state = caffe_pb2.SolverState()
    state.ParseFromString(open(state_path, "rb").read())
    assert state.iter == 3 and state.learned_net == model and state.current_step == 0
    assert len(state.history) == 8  # Adam: m and v per learnable param
    for blob, param in zip(state.history, solver.net.learnable_params * 2):
        assert list(blob.shape.dim) == list(param.data.shape) and len(blob.data) == param.data.size
    net = caffe_pb2.NetParameter()
    net.ParseFromString(open(model, "rb").read())
    blobs = {layer.name: layer.blobs for layer in net.layer if layer.blobs}
    np.testing.assert_array_equal(np.float32(blobs["ip1"][0].data), solver.net.params["ip1"][0].data.ravel())
    assert not any(os.path.basename(p).startswith(".") for p in os.listdir(tmp_path))  # no temp files left


def test_hdf5_snapshot_layout(tmp_path):
    solver = make_solver("sgd_fixed_momentum", tmp_path / "snap",
                         snapshot_format=caffe_pb2.SolverParameter.HDF5)
    solver.step(2)
    model, state_path = solver.snapshot()
    assert model.endswith("snap_iter_2.caffemodel.h5") and state_path.endswith("snap_iter_2.solverstate.h5")
    with h5py.File(state_path, "r") as handle:
        assert handle["iter"].shape == (1,) and int(handle["iter"][0]) == 2  # hdf5_save_int: rank 1
        assert np.asarray(handle["learned_net"]).item().decode() == model
        assert len(handle["history"]) == 4
    with h5py.File(model, "r") as handle:
        np.testing.assert_array_equal(handle["data/ip2/1"], solver.net.params["ip2"][1].data)


def test_solve_snapshots_every_interval_and_after_training(tmp_path):
    solver = make_solver("sgd_fixed_momentum", tmp_path / "s", snapshot=4, max_iter=10)
    solver.solve()
    names = sorted(os.listdir(tmp_path))
    assert names == sorted(f"s_iter_{i}.{ext}" for i in (4, 8, 10) for ext in ("caffemodel", "solverstate"))
    solver = make_solver("sgd_fixed_momentum", tmp_path / "t", snapshot=5, max_iter=10,
                         snapshot_after_train=False)
    solver.solve()
    assert {p for p in os.listdir(tmp_path) if p.startswith("t_")} == {
        f"t_iter_{i}.{ext}" for i in (5, 10) for ext in ("caffemodel", "solverstate")}


def test_ctrl_c_snapshots_and_stops(tmp_path):
    # The solver takes Ctrl-C over only from Python's default handler; say so if the process
    # started without it (an ignored SIGINT is inherited) or an earlier test left another.
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler, signal.getsignal(signal.SIGINT)
    solver = make_solver("sgd_fixed_momentum", tmp_path / "s", max_iter=100, snapshot_after_train=False)
    solver.add_callback(lambda s, loss: s.iter == 3 and os.kill(os.getpid(), signal.SIGINT))
    solver.solve()  # the handler turns SIGINT into "snapshot and stop after this iteration"
    assert solver.iter == 3
    assert sorted(os.listdir(tmp_path)) == ["s_iter_3.caffemodel", "s_iter_3.solverstate"]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_restore_checks_history_count(tmp_path):
    adam = make_solver("adam", tmp_path / "a")
    adam.step(1)
    _, state = adam.snapshot()
    sgd = make_solver("sgd_fixed_momentum", tmp_path / "b")
    with pytest.raises(CaffeCaeError, match="incorrect length of history blobs: the file has 8, this solver needs 4"):
        sgd.restore(state)


def test_snapshot_prefix_rules(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    text = 'net: "n.prototxt"\nbase_lr: 0.1\nlr_policy: "fixed"\n'
    (tmp_path / "solver.prototxt").write_text(text)
    assert config.read_solver("solver.prototxt").snapshot_prefix == "solver"
    (tmp_path / "snaps").mkdir()
    (tmp_path / "solver.prototxt").write_text(text + 'snapshot_prefix: "snaps"\n')
    assert config.read_solver("solver.prototxt").snapshot_prefix == "snaps/solver"
    (tmp_path / "solver.prototxt").write_text(text + 'snapshot_prefix: "snaps/m4"\n')
    assert config.read_solver("solver.prototxt").snapshot_prefix == "snaps/m4"


@pytest.mark.parametrize("fmt", ["BINARYPROTO", "HDF5"])
def test_real_net_resume_is_bitwise_exact(fmt, tmp_path, monkeypatch):
    # The real Net with HDF5Data (64 rows, batch 16: a fresh data layer after 4 iterations
    # reads the same rows as the continuing one).
    import shutil

    from caffe_cae import get_solver

    for name in ("net.prototxt", "solver.prototxt", "data.h5", "train_list.txt", "init.caffemodel"):
        shutil.copy(GOLDEN / "adam" / name, tmp_path / name)
    monkeypatch.chdir(tmp_path)
    text = (tmp_path / "solver.prototxt").read_text() + f"snapshot_format: {fmt}\n"
    (tmp_path / "solver.prototxt").write_text(text.replace("max_iter: 40", "max_iter: 8"))
    whole = get_solver("solver.prototxt", weights="init.caffemodel")
    whole.step(8)
    half = get_solver("solver.prototxt", weights="init.caffemodel")
    half.step(4)
    _, state = half.snapshot()
    assert state == ("snapshot_iter_4.solverstate.h5" if fmt == "HDF5" else "snapshot_iter_4.solverstate")
    resumed = get_solver("solver.prototxt")
    resumed.solve(resume_file=state)  # to max_iter 8, then the final snapshot
    assert resumed.iter == 8
    for a, b in zip(whole.net.learnable_params, resumed.net.learnable_params):
        np.testing.assert_array_equal(a.data, b.data)
    for a, b in zip(whole.history, resumed.history):
        np.testing.assert_array_equal(a, b)
    assert os.path.exists("snapshot_iter_8.caffemodel" + (".h5" if fmt == "HDF5" else ""))


def test_interrupted_snapshot_leaves_no_torn_file(tmp_path, monkeypatch):
    solver = make_solver("sgd_fixed_momentum", tmp_path / "s")
    solver.step(1)
    solver.snapshot()
    solver.step(1)
    import caffe_cae.fileio as fileio

    def killed(src, dst):
        raise KeyboardInterrupt  # the process dies after writing the temp file, before the rename

    monkeypatch.setattr(fileio.os, "replace", killed)
    with pytest.raises(KeyboardInterrupt):
        solver.snapshot()
    monkeypatch.undo()
    assert sorted(os.listdir(tmp_path)) == ["s_iter_1.caffemodel", "s_iter_1.solverstate"]
    fresh = make_solver("sgd_fixed_momentum", tmp_path / "t")
    fresh.restore(str(tmp_path / "s_iter_1.solverstate"))
    assert fresh.iter == 1
