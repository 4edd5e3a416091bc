"""Caffe's command-line habits, and the exit statuses that tell a user error from a bug."""
from __future__ import annotations

import pytest

from caffe_cae import cli
from caffe_cae.commands import show
from tests.helpers.cli import run_cli as run_process
from tests.robustness.conftest import one_error

MODEL = "snap_iter_2.caffemodel"


@pytest.mark.parametrize("argv, expected", [
    (["train", "-solver", "s.prototxt", "-weights", "w.caffemodel", "-iterations", "3"],
     ["train", "--solver", "s.prototxt", "--weights", "w.caffemodel", "--iterations", "3"]),
    (["test", "-model=m.prototxt", "-weights=w", "-iterations", "2"],
     ["test", "--model=m.prototxt", "--weights=w", "--iterations", "2"]),
    (["train", "-snapshot", "x.solverstate", "-solver", "s"], ["train", "--snapshot", "x.solverstate", "--solver", "s"]),
    (["show", "f", "--debug", "-q"], ["--debug", "-q", "show", "f"]),
    (["show", "f", "--log-format", "glog"], ["--log-format", "glog", "show", "f"]),
    (["show", "-o", "f"], ["show", "-o", "f"]),   # short options stay
    (["params", "n", "--input-shape", "data=-1"], ["params", "n", "--input-shape", "data=-1"]),
])
def test_caffe_spellings_become_ours(argv, expected):
    assert cli.normalize_argv(argv, cli.build_parser()) == (expected, [])


@pytest.mark.parametrize("argv", [["-gpu", "0", "train", "s"], ["train", "s", "-gpu", "all"],
                                  ["train", "s", "--gpu=0,1"], ["train", "--gpu", "0", "s"]])
def test_gpu_is_dropped_with_a_notice(argv):
    out, notices = cli.normalize_argv(argv, cli.build_parser())
    assert out == ["train", "s"] and len(notices) == 1 and "the interpreter runs on the CPU" in notices[0]


def test_single_dash_flags_train_and_test(seeded, run_cli):
    assert run_cli("train", "-solver", "solver.prototxt", "-iterations", "1", "-gpu", "0")[0] == 0
    assert run_cli("test", "-model", "train.prototxt", "-weights", MODEL, "-iterations", "1", "--debug")[0] == 0


def test_cheap_checks_come_before_any_net(seeded, run_cli, caplog):
    for argv, message in [
        (("train", "solver.prototxt", "--weights", "nosuch.caffemodel"), "nosuch.caffemodel: no such file"),
        (("test", "train.prototxt", "--weights", "model.onnx"), "model.onnx: is an ONNX model"),
        (("export", "nosuch.prototxt", MODEL, "-o", "x.onnx"), "nosuch.prototxt: no such file"),
        (("export", "deploy.prototxt", "nosuch.caffemodel", "-o", "x.onnx"), "nosuch.caffemodel: no such file"),
        (("train", "solver.prototxt", "--snapshot", MODEL), f"{MODEL}: not a solverstate but a caffemodel"),
        (("test", "train.prototxt", "--weights", "renamed.caffemodel"), "renamed.caffemodel: is an ONNX model"),
    ]:
        if "renamed" in argv[-1]:
            (seeded / "renamed.caffemodel").write_bytes((seeded / "model.onnx").read_bytes())
        caplog.clear()
        assert message in one_error(run_cli, *argv)
        assert "Creating Layer" not in caplog.text and "Setting up" not in caplog.text, argv


def test_internal_errors_exit_70_and_say_how_to_report(monkeypatch, run_cli):
    monkeypatch.setattr(show, "run", lambda args: {}["boom"])
    status, lines = run_cli("show", "x")
    assert status == cli.EXIT_INTERNAL == 70
    assert lines == [f"caffe-cae show: internal error: KeyError: 'boom'; {cli.REPORT}"]


def test_out_of_memory_exits_71(monkeypatch, run_cli):
    def run(args):
        raise MemoryError("Unable to allocate 3.6 TiB")

    monkeypatch.setattr(show, "run", run)
    assert run_cli("show", "x") == (71, ["caffe-cae show: error: out of memory: Unable to allocate 3.6 TiB"])


def test_the_entry_point_prints_no_traceback_for_a_bug(tmp_path):
    result = run_process("show", "--kind", "caffemodel", tmp_path, cwd=tmp_path)  # a folder: one user error
    assert result.returncode == 1 and len(result.stderr.splitlines()) == 1, result.stderr
