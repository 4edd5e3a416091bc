"""Where the runs of a reproduction compute: here, in local worker processes, or on Dask.

* ``workers=1`` (default): one after another in this process.
* ``workers=N``: N worker processes on this machine (``python -m caffe_cae.experiments.worker``),
  each started with its BLAS/OpenMP threads pinned in the environment, so they are set before
  NumPy loads; threads x workers must not exceed the CPUs.
* ``scheduler="tcp://HOST:PORT"``: an existing Dask distributed cluster (``dask scheduler`` +
  ``dask worker --nthreads 1``, dask-jobqueue, SSH or Kubernetes clusters alike).  The output
  folder must be on a file system the workers share, at the same path: the runs read the data and
  write their folders there.  A Dask worker has loaded NumPy before the task arrives, so the
  task pins threads with threadpoolctl; start workers with ``OMP_NUM_THREADS=1`` as well.

Every backend runs :meth:`Run.execute`, which is idempotent: a worker that dies (killed, out of
memory, node lost) loses no run; the run is started again and resumes from its newest snapshot
(local workers: up to :data:`RETRIES` times; Dask: its own rescheduling).  Ctrl-C asks every
running run to snapshot and stop (local workers receive SIGINT, Dask tasks a Dask ``Event``);
a second Ctrl-C stops at once, losing what was computed since each run's last snapshot.
"""
from __future__ import annotations

import collections
import dataclasses
import json
import logging
import os
import pathlib
import signal
import subprocess
import sys
import threading
import time
import uuid

from caffe_cae.errors import CaffeCaeError
from caffe_cae.experiments import provenance
from caffe_cae.experiments.progress import SweepProgress, reporter
from caffe_cae.experiments.run import Run, RunInterrupted, read_json, run_name

log = logging.getLogger("caffe_cae.experiments.reproduce")

#: how often a local run is started again after its worker died
RETRIES = 3
#: environment variables that size the BLAS/OpenMP pools (read when the libraries load)
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "BLIS_NUM_THREADS",
                    "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS", "CAFFE_CAE_THREADS")
EXIT_INTERRUPTED = 130
SETTINGS_FILE = "sweep.json"


class SweepInterrupted(Exception):
    """Ctrl-C: the runs in ``stopped`` (name -> iteration) wrote a snapshot and stopped."""

    def __init__(self, stopped: dict, lost: list):
        self.stopped, self.lost = stopped, lost
        super().__init__(f"interrupted; {len(stopped)} run(s) snapshotted")


@dataclasses.dataclass
class Outcome:
    records: dict            # name -> result record
    skipped: list            # finished earlier
    failed: dict             # name -> error line


class StopFlag:
    """Set by the first Ctrl-C (SIGINT handler, main thread); the second one interrupts at once."""

    def __init__(self):
        self.event = threading.Event()
        self._previous = None

    def __call__(self) -> bool:
        return self.event.is_set()

    def _handler(self, signum, frame):
        log.warning("Interrupted: snapshotting the running runs (Ctrl-C again to stop at once)")
        self.event.set()
        signal.signal(signal.SIGINT, self._previous or signal.default_int_handler)

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handler)
        return self

    def __exit__(self, *exc):
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
        return False


def check_threads(workers: int, threads: int | None) -> None:
    cores = provenance.cpu_count()
    if workers < 1:
        raise CaffeCaeError(f"--workers must be at least 1 (got {workers})")
    if workers > 1 and not threads:
        raise CaffeCaeError("--workers needs a fixed --threads per worker (not 0)")
    if workers > 1 and workers * threads > cores:
        raise CaffeCaeError(f"--workers {workers} x --threads {threads} = {workers * threads} threads, but "
                            f"this machine lets this process use {cores} CPUs")


def pinned_environment(threads: int) -> dict:
    env = dict(os.environ)
    env.update({name: str(threads) for name in THREAD_VARIABLES})
    return env


def execute(settings, files, plan: list[tuple[str, int, int]]) -> Outcome:
    """Run ``plan`` ((model, dims, index) triples) on the backend ``settings`` names."""
    runs = {run_name(*key): Run(settings, files, *key) for key in plan}
    outcome = Outcome({}, [], {})
    todo = []
    for name, run in runs.items():
        done = run.finished()
        if done:
            log.info("%s: finished earlier (%s), skipped", name, os.path.relpath(run.result_path, settings.out))
            outcome.records[name] = done
            outcome.skipped.append(name)
        else:
            todo.append(name)
    display = SweepProgress({n: r.dir for n, r in runs.items()}, settings.iters, enabled=settings.progress,
                            every=settings.progress_every)
    for name in outcome.skipped:
        display.ended[name] = "skipped"
    if not todo:
        return outcome
    if settings.scheduler:
        backend = _dask
    elif settings.workers > 1:
        backend = _local_workers
    else:
        backend = _in_process
    with StopFlag() as stop, display:
        backend(settings, {n: runs[n] for n in todo}, outcome, display, stop)
    return outcome


# ------------------------------------------------------------------------------------------
# here


def _in_process(settings, runs: dict, outcome: Outcome, display: SweepProgress, stop: StopFlag) -> None:
    for name, run in runs.items():
        if stop():   # Ctrl-C between two runs
            raise SweepInterrupted({}, [])
        try:
            outcome.records[name] = run.execute(stop=stop, progress=reporter(run.dir, settings.iters))
            display.mark(name, "done")
        except RunInterrupted as interrupted:
            display.mark(name, "interrupted")
            raise SweepInterrupted({name: interrupted.iteration}, []) from None


# ------------------------------------------------------------------------------------------
# local worker processes


def write_settings(settings, files) -> pathlib.Path:
    """``OUT/sweep.json``: what a worker process needs to rebuild ``settings`` and ``files``."""
    path = pathlib.Path(settings.out) / SETTINGS_FILE
    data = {"settings": settings.to_json(), "files": {k: str(v) for k, v in dataclasses.asdict(files).items()}}
    from caffe_cae.experiments.run import write_json

    write_json(path, data)
    return path


def _local_workers(settings, runs: dict, outcome: Outcome, display: SweepProgress, stop: StopFlag) -> None:
    sweep_file = write_settings(settings, runs[next(iter(runs))].files)
    env = pinned_environment(settings.threads)
    pending = collections.deque(runs)
    running: dict[str, subprocess.Popen] = {}
    attempts = collections.Counter()
    stopped, lost = {}, []
    forwarded = False
    try:
        while running or (pending and not stop()):
            while pending and len(running) < settings.workers and not stop():
                name = pending.popleft()
                attempts[name] += 1
                running[name] = _start_worker(sweep_file, runs[name], env)
            if stop() and not forwarded:
                forwarded = True
                for proc in running.values():
                    proc.send_signal(signal.SIGINT)
            for name, proc in list(running.items()):
                code = proc.poll()
                if code is None:
                    continue
                del running[name]
                run = runs[name]
                # Did the worker write this sweep's result?  (Not finished(): under --force that is
                # None, and a worker that ended well would be started again.)
                record = run.result() if code == 0 else None
                if record:
                    outcome.records[name] = record
                    display.mark(name, "done")
                elif code == EXIT_INTERRUPTED or (stop() and code != 0):
                    stopped[name] = (read_json(run.history_path) or {}).get("iter", 0)
                    display.mark(name, "interrupted")
                elif code == 1:   # a user error: starting again would fail the same way
                    outcome.failed[name] = _last_error(run)
                    display.mark(name, "failed")
                elif attempts[name] <= RETRIES:
                    log.warning("%s: its worker ended with %s; starting it again from its newest snapshot",
                                name, _describe_exit(code))
                    pending.appendleft(name)
                else:
                    outcome.failed[name] = f"worker ended with {_describe_exit(code)} {attempts[name]} times"
                    display.mark(name, "failed")
            time.sleep(0.2)
    except KeyboardInterrupt:   # the second Ctrl-C
        for name, proc in running.items():
            proc.kill()
            proc.wait()
            lost.append(name)
        raise SweepInterrupted(stopped, lost) from None
    if stopped or stop():
        raise SweepInterrupted(stopped, lost)


def _start_worker(sweep_file: pathlib.Path, run: Run, env: dict) -> subprocess.Popen:
    run.dir.mkdir(parents=True, exist_ok=True)
    with open(run.dir / "worker.log", "ab") as log_file:
        # A session of its own: a terminal's Ctrl-C reaches only the sweep, which forwards one
        # SIGINT to each worker (two would abort the worker's snapshot).
        return subprocess.Popen([sys.executable, "-m", "caffe_cae.experiments.worker", str(sweep_file), run.name],
                                stdin=subprocess.DEVNULL, stdout=log_file, stderr=subprocess.STDOUT, env=env,
                                start_new_session=True)


def _describe_exit(code: int) -> str:
    if code < 0:
        try:
            return f"signal {signal.Signals(-code).name}"
        except ValueError:
            return f"signal {-code}"
    return f"status {code}"


def _last_error(run: Run) -> str:
    try:
        lines = (run.dir / "worker.log").read_text(errors="replace").strip().splitlines()
    except OSError:
        return "worker failed (no worker.log)"
    errors = [line for line in lines if "error:" in line]
    return (errors or lines or ["worker failed"])[-1]


# ------------------------------------------------------------------------------------------
# Dask


def _dask(settings, runs: dict, outcome: Outcome, display: SweepProgress, stop: StopFlag) -> None:
    try:
        from distributed import Client, Event
    except ImportError:
        raise CaffeCaeError("--scheduler needs Dask's distributed scheduler: pip install 'caffe-cae[sweep]'") from None
    files = runs[next(iter(runs))].files
    token = uuid.uuid4().hex[:8]
    event_name = f"caffe-cae-stop-{token}"
    try:
        client = Client(settings.scheduler, timeout=settings.scheduler_timeout)
    except (OSError, TimeoutError) as err:
        raise CaffeCaeError(f"cannot reach the Dask scheduler at {settings.scheduler}: {err}") from None
    stopped, lost = {}, []
    with client:
        stop_event = Event(event_name, client=client)
        payload = json.dumps({"settings": settings.to_json(),
                              "files": {k: str(v) for k, v in dataclasses.asdict(files).items()}})
        # No retries: a task that raised would raise again; a worker that died is the
        # scheduler's business (it reruns the task elsewhere, and the run resumes).
        futures = {client.submit(dask_task, payload, name, event_name, key=f"caffe-cae-{name}-{token}",
                                 pure=False): name for name in runs}
        forwarded = False
        try:
            remaining = set(futures)
            while remaining:
                if stop() and not forwarded:
                    forwarded = True
                    stop_event.set()
                done = [future for future in remaining if future.done()]
                if not done:
                    time.sleep(0.5)
                for future in done:
                    remaining.discard(future)
                    name = futures[future]
                    if future.status == "error":
                        error = future.exception()
                        outcome.failed[name] = f"{type(error).__name__}: {error}"
                        display.mark(name, "failed")
                        continue
                    if future.status == "cancelled":
                        lost.append(name)
                        continue
                    status, value = future.result()
                    if status == "interrupted":
                        stopped[name] = value
                        display.mark(name, "interrupted")
                    else:
                        outcome.records[name] = value
                        display.mark(name, "done")
        except KeyboardInterrupt:   # the second Ctrl-C
            client.cancel(list(futures))
            raise SweepInterrupted(stopped, [futures[f] for f in futures if not f.done()] + lost) from None
    if stopped or stop():
        raise SweepInterrupted(stopped, lost)


def dask_task(payload: str, name: str, event_name: str):
    """Runs on a Dask worker: one run, stopping (with a snapshot) when ``event_name`` is set."""
    from caffe_cae.experiments import reproduce
    from caffe_cae.parallel import limit_threads

    settings, files = reproduce.settings_from_json(json.loads(payload))
    if not pathlib.Path(settings.out).is_dir():
        raise CaffeCaeError(f"{settings.out}: not visible on this worker; --out must be on a file system "
                            f"every Dask worker shares, at the same path")
    run = reproduce.find_run(settings, files, name)
    stop = _dask_stop(event_name)
    with limit_threads(settings.threads):
        try:
            return "done", run.execute(stop=stop, progress=reporter(run.dir, settings.iters))
        except RunInterrupted as interrupted:
            return "interrupted", interrupted.iteration


def _dask_stop(event_name: str):
    """A stop test that asks the scheduler at most once a second."""
    from distributed import Event

    event = Event(event_name)
    state = {"last": 0.0, "set": False}

    def stop() -> bool:
        now = time.monotonic()
        if not state["set"] and now - state["last"] >= 1.0:
            state["last"] = now
            try:
                state["set"] = event.is_set()
            except Exception:  # noqa: BLE001 - scheduler gone: keep computing, the next check may work
                pass
        return state["set"]

    return stop
