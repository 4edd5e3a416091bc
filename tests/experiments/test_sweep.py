"""Runs spread over local worker processes and a Dask cluster: same results as one after another,
a killed worker loses no run, Ctrl-C snapshots and says how to resume."""
import json
import os
import signal
import subprocess
import sys
import threading
import time

import pytest

from caffe_cae.experiments import reproduce
from caffe_cae.experiments.run import read_json
from tests.experiments.fake_mnist import fake_spec, fake_splits, write_idx_dir
from tests.experiments.test_reproduce import learned

RUNS = ("model1-2d-run1", "model1-2d-run2")
needs_two_cpus = pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="two worker processes need two CPUs")


def _settings(root, **overrides):
    splits = fake_splits(counts=(("train", 30), ("test", 40)))
    idx = root / "idx"
    if not idx.exists():
        write_idx_dir(idx, splits)
    fields = dict(out=root / "out", models=["model1"], dims=[2], runs=2, iters=10, test_every=2, test_iters=1,
                  folds=2, mlp_max_iter=10, mlp_epochs=10, progress=False, download=False, figures=False,
                  from_dir=str(idx), spec=fake_spec(splits))
    fields.update(overrides)
    return reproduce.Settings(**fields)


@pytest.fixture(scope="module")
def sequential(tmp_path_factory):
    settings = _settings(tmp_path_factory.mktemp("sequential"))
    reproduce.reproduce(settings)
    return settings.out


def _timeless(value):
    """``value`` without its wall-clock fields."""
    if isinstance(value, dict):
        return {k: _timeless(v) for k, v in value.items() if k != "seconds"}
    if isinstance(value, list):
        return [_timeless(v) for v in value]
    return value


def _results(out):
    """What must not depend on where a run computed: weights, losses, every protocol's errors."""
    found = {}
    for name in RUNS:
        run = out / "runs" / name
        record = json.loads((run / "result.json").read_text())
        history = json.loads((run / "history.json").read_text())
        found[name] = {"weights": learned(run / "snap_iter_10.caffemodel"),
                       "train": history["train"], "test": history["test"],
                       "eval": _timeless(record["eval"]), "threads": record["threads"]["interpreter"]}
    return found


@needs_two_cpus
def test_two_local_workers_give_the_sequential_results(tmp_path, sequential):
    settings = _settings(tmp_path, workers=2)
    reproduce.reproduce(settings)
    assert _results(settings.out) == _results(sequential)
    for name in RUNS:   # each run computed in a worker process of its own
        pid = json.loads((settings.out / "runs" / name / "progress.json").read_text())["pid"]
        assert pid != os.getpid()


@needs_two_cpus
def test_a_dask_cluster_on_loopback_gives_the_sequential_results(tmp_path, sequential):
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                                  dashboard_address=None, worker_dashboard_address=None) as cluster:
        settings = _settings(tmp_path, scheduler=cluster.scheduler_address)
        reproduce.reproduce(settings)
    assert _results(settings.out) == _results(sequential)
    for name in RUNS:
        assert json.loads((settings.out / "runs" / name / "progress.json").read_text())["pid"] != os.getpid()


def _kill_when_training(run_dir, killed):
    """Kill the run's worker process with SIGKILL once it has a snapshot and is still training."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not killed:
        history = read_json(run_dir / "history.json") or {}
        progress = read_json(run_dir / "progress.json") or {}
        if 2 <= history.get("iter", 0) < 10 and progress.get("state") in ("training", "testing") and progress["pid"] != os.getpid():
            os.kill(progress["pid"], signal.SIGKILL)
            killed.append((progress["pid"], history["iter"]))
        time.sleep(0.02)


@needs_two_cpus
def test_a_killed_worker_loses_no_run(tmp_path, sequential, caplog):
    settings = _settings(tmp_path, workers=2)
    killed = []
    killer = threading.Thread(target=_kill_when_training, args=(settings.out.resolve() / "runs" / RUNS[0], killed))
    killer.start()
    try:
        with caplog.at_level("WARNING", logger="caffe_cae.experiments.reproduce"):
            reproduce.reproduce(settings)
    finally:
        killed.append(None)   # stops the killer if the sweep failed first
        killer.join()
    assert killed[0] is not None, "the worker finished before it could be killed"
    assert f"{RUNS[0]}: its worker ended with signal SIGKILL; starting it again" in caplog.text
    history = json.loads((settings.out / "runs" / RUNS[0] / "history.json").read_text())
    assert len(history["sessions"]) == 2 and history["sessions"][1]["from"] >= 2
    assert _results(settings.out) == _results(sequential)


@needs_two_cpus
def test_a_killed_dask_worker_loses_no_run(tmp_path, sequential):
    distributed = pytest.importorskip("distributed")
    settings = _settings(tmp_path)
    killed = []
    killer = threading.Thread(target=_kill_when_training, args=(settings.out.resolve() / "runs" / RUNS[0], killed))
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                                  dashboard_address=None, worker_dashboard_address=None) as cluster:
        settings.scheduler = cluster.scheduler_address
        killer.start()
        try:
            reproduce.reproduce(settings)   # the nanny restarts the worker, the scheduler the task
        finally:
            killed.append(None)
            killer.join()
    assert killed[0] is not None, "the worker finished before it could be killed"
    history = json.loads((settings.out / "runs" / RUNS[0] / "history.json").read_text())
    assert len(history["sessions"]) == 2 and history["sessions"][1]["from"] >= 2
    assert _results(settings.out) == _results(sequential)


# The command line with the fake data's checksums as the MNIST spec (the real one refuses it).
CLI_WITH_FAKE_SPEC = """
import pickle, sys
from caffe_cae.experiments import reproduce
spec = pickle.loads(bytes.fromhex(sys.argv[1]))
original = reproduce.Settings.__init__
def init(self, *args, **kwargs):
    kwargs.setdefault("spec", spec)
    original(self, *args, **kwargs)
reproduce.Settings.__init__ = init
from caffe_cae.cli import main
sys.exit(main(sys.argv[2:]))
"""


@needs_two_cpus
def test_ctrl_c_snapshots_the_running_runs_and_says_how_to_resume(tmp_path, sequential):
    import pickle

    settings = _settings(tmp_path)
    out = settings.out
    command = [sys.executable, "-c", CLI_WITH_FAKE_SPEC, pickle.dumps(settings.spec).hex(),
               "reproduce", "--out", str(out), "--models", "model1", "--dims", "2",
               "--runs", "2", "--iters", "10", "--test-every", "2", "--test-iters", "1", "--folds", "2",
               "--mlp-max-iter", "10", "--mlp-epochs", "10", "--no-figures", "--from", settings.from_dir,
               "--workers", "2", "--no-progress"]
    env = dict(os.environ, PYTHONPATH=os.getcwd())
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        iters = [(read_json(out / "runs" / n / "history.json") or {}).get("iter", 0) for n in RUNS]
        if min(iters) >= 2:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr
    assert "resume with: caffe-cae reproduce --out" in stderr and "--workers 2" in stderr
    for name in RUNS:
        stopped_at = json.loads((out / "runs" / name / "history.json").read_text())["iter"]
        assert 2 <= stopped_at < 10 and (out / "runs" / name / f"snap_iter_{stopped_at}.solverstate").is_file()
        assert f"{name}: stopped, snapshot at iteration {stopped_at}" in stderr
        assert f"| {name} | {stopped_at} of 10 | training |" in (out / "report.md").read_text()
    assert "holds the runs finished so far" in stderr
    # The same command resumes and ends with the uninterrupted results.
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    assert _results(out) == _results(sequential)


@needs_two_cpus
def test_force_through_local_workers_redoes_the_measures_once(tmp_path, sequential, caplog):
    import shutil

    shutil.copytree(sequential, tmp_path / "out")
    stamp = {n: (tmp_path / "out/runs" / n / "eval.json").stat().st_mtime_ns for n in RUNS}
    with caplog.at_level("WARNING", logger="caffe_cae.experiments.reproduce"):
        reproduce.reproduce(_settings(tmp_path, workers=2, force=True))
    assert "starting it again" not in caplog.text          # a worker that ended well is not retried
    for name in RUNS:
        assert (tmp_path / "out/runs" / name / "eval.json").stat().st_mtime_ns != stamp[name]
    assert _results(tmp_path / "out") == _results(sequential)
