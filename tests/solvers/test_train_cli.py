"""``caffe-cae train | test | time`` end to end: the generator's Model 4 on a tiny HDF5 set
(train, log, snapshot, resume, score, time) and bad solver files failing with one line."""
from __future__ import annotations

import logging
import subprocess
import sys

import h5py
import numpy as np
import pytest

from caffe_cae import cli
from tests.helpers.logs import strip_glog


def caffe_cae(*args, cwd):
    """The real command in a child process (exit code, stdout, stderr)."""
    return subprocess.run([sys.executable, "-m", "caffe_cae", *map(str, args)],
                          capture_output=True, text=True, cwd=cwd)


def in_process(*args, cwd, monkeypatch, capsys, caplog):
    """``cli.main`` in this process (faster): ``(exit code, stdout, stderr + log)``."""
    monkeypatch.chdir(cwd)
    caplog.set_level(logging.INFO)
    caplog.clear()
    code = cli.main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err + caplog.text


def write_hdf5_set(folder, name, rows, seed):
    data = np.random.default_rng(seed).random((rows, 1, 28, 28), dtype=np.float32)
    with h5py.File(folder / f"{name}.h5", "w") as handle:
        handle.create_dataset("data", data=data)
    (folder / f"{name}.txt").write_text(f"{name}.h5\n")


@pytest.fixture(scope="module")
def model4(tmp_path_factory):
    folder = tmp_path_factory.mktemp("model4")
    write_hdf5_set(folder, "train", 8, 0)
    write_hdf5_set(folder, "test", 4, 1)
    assert cli.main(["gen", "model4", "--batch", "4", "--train-source", "train.txt",
                     "--test-source", "test.txt", "-o", str(folder / "model4.prototxt")]) == 0
    assert cli.main(["gen", "model4", "--solver", "--net", "model4.prototxt", "--seed", "1",
                     "-o", str(folder / "solver.prototxt")]) == 0
    # Keep the run short: 2 test batches, display every iteration.
    text = (folder / "solver.prototxt").read_text()
    text = text.replace("test_iter: 100", "test_iter: 2").replace("display: 1000", "display: 1")
    (folder / "solver.prototxt").write_text(text)
    return folder


def test_train_logs_snapshots_and_resumes(model4, monkeypatch, capsys, caplog):
    first = caffe_cae("train", "--solver", "solver.prototxt", "--iterations", 3, cwd=model4)
    assert first.returncode == 0, first.stderr
    log = first.stderr
    assert "Iteration 0, Testing net (#0)" in log
    assert "Test loss: " in log and "    Test net output #0: " in log
    assert "Iteration 2 (" in log and "    Train net output #0: cross_entropy_loss = " in log
    assert "Iteration 2, lr = 0.006" in log
    assert "Snapshotting to binary proto file model4_iter_3.caffemodel" in log
    assert "Optimization Done." in log
    assert (model4 / "model4_iter_3.caffemodel").exists() and (model4 / "model4_iter_3.solverstate").exists()

    run = dict(cwd=model4, monkeypatch=monkeypatch, capsys=capsys, caplog=caplog)
    code, out, err = in_process("train", "solver.prototxt", "--snapshot", "model4_iter_3.solverstate",
                                "--iterations", 5, **run)
    assert code == 0, err
    assert "Restoring previous solver status from model4_iter_3.solverstate" in err
    assert "Iteration 3 (" in err and "Iteration 0 (" not in err
    assert (model4 / "model4_iter_5.solverstate").exists()

    code, out, err = in_process("test", "--model", "model4.prototxt", "--weights", "model4_iter_5.caffemodel",
                                "--iterations", 2, **run)
    assert code == 0, err
    assert out.startswith("Loss: ")
    assert "cross_entropy_loss = " in out and "(* 1 = " in out
    assert "Batch 1, cross_entropy_loss = " in err

    code, out, err = in_process("time", "model4.prototxt", "--iterations", 2, **run)
    assert code == 0, err
    assert "     conv1\tforward: " in out and "     conv1\tbackward: " in out
    assert "Average Forward-Backward: " in out


BAD_SOLVERS = {
    "missing net": ('net: "nowhere.prototxt"\nbase_lr: 0.1\nlr_policy: "fixed"\n',
                    "bad_solver.prototxt: net 'nowhere.prototxt': no such net file"),
    "no net": ('base_lr: 0.1\nlr_policy: "fixed"\n',
               "bad_solver.prototxt: no train net: give one of net, net_param, train_net, train_net_param"),
    "unknown policy": ('net: "model4.prototxt"\nbase_lr: 0.1\nlr_policy: "cosine"\n',
                       "unknown lr_policy 'cosine'; known: fixed, step, exp, inv, multistep, poly, sigmoid"),
    "no policy": ('net: "model4.prototxt"\nbase_lr: 0.1\n', "unknown lr_policy (none given)"),
    "unknown type": ('net: "model4.prototxt"\nbase_lr: 0.1\nlr_policy: "fixed"\ntype: "LBFGS"\n',
                     "unknown solver type 'LBFGS'; known: SGD, Nesterov, AdaGrad, RMSProp, AdaDelta, Adam"),
    "net given as solver": (None, "model4.prototxt: this is a net definition, not a solver"),
    "missing hdf5 source": ('net: "broken.prototxt"\nbase_lr: 0.1\nlr_policy: "fixed"\nmax_iter: 1\n', "missing.txt"),
}


@pytest.mark.parametrize("case", BAD_SOLVERS)
def test_bad_solver_is_one_line(case, model4, monkeypatch, capsys, caplog):
    text, expected = BAD_SOLVERS[case]
    (model4 / "broken.prototxt").write_text((model4 / "model4.prototxt").read_text().replace("train.txt", "missing.txt"))
    (model4 / "bad_solver.prototxt").write_text(text or "")
    solver = "bad_solver.prototxt" if text else "model4.prototxt"
    code, out, err = in_process("train", "--solver", solver, cwd=model4,
                                monkeypatch=monkeypatch, capsys=capsys, caplog=caplog)
    assert code == 1
    errors = [line for line in strip_glog(err).splitlines() if line.startswith("caffe-cae train: error: ")]
    assert len(errors) == 1 and expected in errors[0], err


def test_weights_and_snapshot_are_exclusive(capsys):
    with pytest.raises(SystemExit):
        cli.main(["train", "--solver", "s.prototxt", "--weights", "w", "--snapshot", "s"])
    assert "not allowed with argument" in capsys.readouterr().err


def test_progress_bar_on_a_terminal(monkeypatch, tmp_path):
    import io

    from caffe_cae.commands.train import progress_bar
    from tests.solvers.test_snapshot import make_solver

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    solver = make_solver("sgd_fixed_momentum", tmp_path / "p", max_iter=60, snapshot_after_train=False)
    with progress_bar(solver, enabled=True):
        solver.solve()
    assert solver.iter == 60 and "0/60" in terminal.getvalue()
    quiet = make_solver("sgd_fixed_momentum", tmp_path / "q", max_iter=10, snapshot_after_train=False)
    terminal.truncate(0)
    with progress_bar(quiet, enabled=True):  # short runs get no bar
        quiet.solve()
    assert "/10" not in terminal.getvalue()
