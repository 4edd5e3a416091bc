"""Ctrl-C and kill -9 under ``train``: one line at any moment, a second Ctrl-C stops at once, and
the temporary files of a write that a kill interrupted are gone after the next start."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from caffe_cae import fileio
from caffe_cae.testing.fuzz.corpus import seed_files
from tests.helpers.cli import cli_env

FILES = ("train.prototxt", "train.txt", "test.txt", "data.h5")


@pytest.fixture
def long_run(tmp_path):
    for name in FILES:
        (tmp_path / name).write_bytes(seed_files()[name])
    solver = seed_files()["solver.prototxt"].decode()
    solver = (solver.replace("max_iter: 2", "max_iter: 100000").replace("display: 1", "display: 50")
              .replace("test_interval: 2", "test_interval: 1000000").replace("snapshot: 2", "snapshot: 5"))
    (tmp_path / "solver.prototxt").write_text(solver)
    return tmp_path


def start(folder, *extra):
    return subprocess.Popen([sys.executable, "-m", "caffe_cae", "train", "solver.prototxt", "--log-format", "plain",
                             *extra], cwd=folder, env=cli_env(), stderr=subprocess.PIPE, text=True)


def wait_for(process, text: str, timeout: float = 60) -> list[str]:
    lines, deadline = [], time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = process.stderr.readline()
        if not line:
            break
        lines.append(line.rstrip("\n"))
        if text in line:
            return lines
    process.kill()
    raise AssertionError(f"never saw {text!r}: {lines[-5:]}")


def finish(process, timeout: float = 30) -> tuple[int, list[str]]:
    rest = process.communicate(timeout=timeout)[1]
    return process.returncode, rest.splitlines()


def parts(folder) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".part"))


def test_ctrl_c_during_set_up_is_one_line(long_run):
    process = start(long_run)
    wait_for(process, "Using CPU")
    process.send_signal(signal.SIGINT)
    status, lines = finish(process)
    assert status == 130
    assert lines[-1] == "caffe-cae train: interrupted", lines[-3:]
    assert not any("Traceback" in line for line in lines)


def test_second_ctrl_c_stops_at_once(long_run):
    # Batches of 1000 make an iteration long: the second press comes while it runs.
    (long_run / "train.prototxt").write_text(seed_files()["train.prototxt"].decode().replace("batch_size: 4",
                                                                                            "batch_size: 1000"))
    (long_run / "solver.prototxt").write_text((long_run / "solver.prototxt").read_text().replace(
        "display: 50", "display: 1"))
    process = start(long_run)
    wait_for(process, "Iteration 1 (")
    process.send_signal(signal.SIGINT)
    time.sleep(0.1)  # the kernel keeps one pending SIGINT: two presses at the same instant are one
    process.send_signal(signal.SIGINT)
    start_wait = time.monotonic()
    status, lines = finish(process)
    assert time.monotonic() - start_wait < 5
    assert status == 130 and lines[-1] == "caffe-cae train: interrupted again: stopped at once", lines[-3:]
    assert not any("Traceback" in line for line in lines)


def test_one_ctrl_c_snapshots_and_stops(long_run):
    process = start(long_run)
    wait_for(process, "Iteration 50 ")
    process.send_signal(signal.SIGINT)
    status, lines = finish(process)
    assert status == 0 and lines[-1] == "Optimization stopped early.", lines[-3:]
    assert any(line.startswith("Snapshotting solver state") for line in lines)


def test_kill_9_during_snapshots_leaves_nothing_after_the_next_start(long_run):
    for _ in range(3):  # killed at the instant a snapshot file is being written
        process = start(long_run)
        wait_for(process, "Snapshotting to binary proto file")
        process.send_signal(signal.SIGKILL)
        process.wait()
    stale = long_run / ".snap_iter_5.caffemodel.999999999.abcdefgh.part"  # a dead writer's, certainly
    stale.write_bytes(b"half a snapshot")
    restart = subprocess.run([sys.executable, "-m", "caffe_cae", "train", "solver.prototxt", "--iterations", "6",
                              "--log-format", "plain"], cwd=long_run, env=cli_env(), capture_output=True, text=True)
    assert restart.returncode == 0, restart.stderr[-2000:]
    assert parts(long_run) == []


def test_only_dead_writers_parts_are_removed(tmp_path):
    prefix = tmp_path / "snap_iter_"
    dead = tmp_path / ".snap_iter_10.caffemodel.999999999.x1y2z3w4.part"
    legacy = tmp_path / ".snap_iter_10.solverstate.k9j8h7g6.part"  # no pid: an older writer's
    alive = tmp_path / f".snap_iter_10.caffemodel.{os.getppid()}.a1b2c3d4.part"
    other = tmp_path / ".model.onnx.999999999.a1b2c3d4.part"  # not this prefix's
    for path in (dead, legacy, alive, other):
        path.write_bytes(b"x")
    removed = fileio.remove_stale_parts(prefix)
    assert sorted(os.path.basename(p) for p in removed) == sorted([dead.name, legacy.name])
    assert parts(tmp_path) == sorted([alive.name, other.name])


def test_snapshot_files_are_synced_before_the_rename(tmp_path, monkeypatch):
    calls = []
    real_fsync, real_replace = os.fsync, os.replace
    monkeypatch.setattr(os, "fsync", lambda fd: (calls.append("fsync"), real_fsync(fd))[1])
    monkeypatch.setattr(os, "replace", lambda a, b: (calls.append("replace"), real_replace(a, b))[1])
    fileio.atomic_write_bytes(tmp_path / "f.caffemodel", b"weights")
    assert calls == ["fsync", "replace", "fsync"]  # the file, the rename, the folder
