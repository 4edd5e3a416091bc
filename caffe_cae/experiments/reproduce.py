"""The whole experiment of the 2019 paper: data -> gen -> train -> encode -> evaluate -> figures -> report.

Layout under ``OUT``::

    mnist/                          HDF5 MNIST (:mod:`.mnist`; ignored by git through OUT/.gitignore)
    runs/<model>-<N>d-run<R>/       one run (:mod:`.run`): prototxts, newest snapshot, history.json,
                                    codes.h5, eval.json, *.png, result.json
    sweep.json                      the settings local worker processes read
    reconstructions.png             Table 6: sample digits and every model's reconstruction
    report.md                       Table 4 of every finished run in OUT side by side with the paper,
                                    times, findings, figures

The runs are independent and idempotent: they compute here, in local worker processes or on a
Dask cluster (:mod:`.sweep`), and an interrupted reproduce resumes: finished runs are skipped,
unfinished ones continue from their newest snapshot (``force`` redoes encoding and measures).
"""
from __future__ import annotations

import dataclasses
import logging
import pathlib
from typing import Sequence

import numpy as np

from caffe_cae.errors import CaffeCaeError
from caffe_cae.experiments import evaluate as evaluate_mod
from caffe_cae.experiments import figures, mnist, protocol, report
from caffe_cae.experiments import sparsity as sparsity_mod
from caffe_cae.experiments.run import Run, read_json, run_name
from caffe_cae.fileio import atomic_write_bytes, make_folder

log = logging.getLogger(__name__)

DEFAULT_MODELS = ("model1", "model2", "model3", "model4", "model5")
UNSUPPORTED = {"siamese": "the Siamese baseline trains on image pairs (semi-supervised); reproduce runs the auto-encoders"}
PAPER_ITERS = 50000
#: what OUT/.gitignore keeps out of a committed reproduction (the data is rebuilt from MNIST)
GITIGNORE = "mnist/\n*.tmp\nworker.log\nprogress.json\n"


@dataclasses.dataclass
class Settings:
    """What ``caffe-cae reproduce`` was asked for."""

    out: pathlib.Path
    models: Sequence[str] = DEFAULT_MODELS
    dims: Sequence[int] = (2, 10, 30)
    iters: int = 50000
    runs: int = 1
    seed: int = 1
    test_every: int | None = None      # None: iters / 10 (at least 100)
    test_iters: int | None = None      # None: the solver's (the whole test set)
    record_every: int | None = None    # None: iters / 200 (at least 1)
    folds: int = 10
    mlp_max_iter: int = evaluate_mod.MLP_MAX_ITER
    tsne_points: int = 5000
    from_dir: str | None = None
    download: bool = True
    force: bool = False
    progress: bool = True
    spec: mnist.MnistSpec = mnist.MNIST   # what a correct data set is (tests use a tiny one)
    threads: int | None = 1            # interpreter + BLAS/OpenMP threads (per worker); None = the defaults
    workers: int = 1                   # local worker processes (1: in this process)
    scheduler: str | None = None       # tcp://HOST:PORT of a Dask scheduler
    scheduler_timeout: float = 30.0
    keep_snapshots: int = 1            # newest snapshots kept per run
    figures: bool = True
    protocols: Sequence[str] = protocol.PROTOCOLS
    mlp_epochs: int = 6000             # paper protocol: patternnet epochs (= max_fail)
    mlp_trainer: str = "scg"           # paper protocol: scg (trainscg) or lbfgs
    progress_every: float = 60.0       # seconds between progress lines when not on a terminal

    def check(self) -> None:
        from caffe_cae import zoo

        for model in self.models:
            if model in UNSUPPORTED:
                raise CaffeCaeError(f"model {model!r}: {UNSUPPORTED[model]}")
            zoo.get_model(model)
        if not self.models or not self.dims:
            raise CaffeCaeError("--models and --dims need at least one entry each")
        for name in ("iters", "runs", "mlp_max_iter", "tsne_points", "test_every", "test_iters", "keep_snapshots",
                     "mlp_epochs"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise CaffeCaeError(f"--{name.replace('_', '-')} must be at least 1 (got {value})")
        if self.folds < 2:
            raise CaffeCaeError(f"--folds must be at least 2 (got {self.folds})")
        if any(d < 1 for d in self.dims):
            raise CaffeCaeError("--dims must be positive code sizes")
        unknown = [p for p in self.protocols if p not in protocol.PROTOCOLS]
        if unknown or not self.protocols:
            raise CaffeCaeError(f"--protocol: {', '.join(unknown) or 'none given'} (known: {', '.join(protocol.PROTOCOLS)})")
        from caffe_cae.experiments import patternnet

        if self.mlp_trainer not in patternnet.TRAINERS:
            raise CaffeCaeError(f"--mlp-trainer {self.mlp_trainer!r} (known: {', '.join(patternnet.TRAINERS)})")
        if not self.scheduler:
            from caffe_cae.experiments.sweep import check_threads

            check_threads(self.workers, self.threads)
        elif not self.scheduler.startswith(("tcp://", "tls://", "inproc://", "ucx://", "ws://", "wss://")):
            raise CaffeCaeError(f"--scheduler {self.scheduler!r}: expected an address like tcp://HOST:PORT")

    @property
    def test_interval(self) -> int:
        return self.test_every or max(100, self.iters // 10)

    @property
    def record_interval(self) -> int:
        return self.record_every or max(1, self.iters // 200)


    def to_json(self) -> dict:
        data = dataclasses.asdict(self)
        data["out"] = str(self.out)
        data["models"], data["dims"], data["protocols"] = list(self.models), list(self.dims), list(self.protocols)
        return data

    @classmethod
    def from_json(cls, data: dict) -> "Settings":
        data = dict(data)
        data["out"] = pathlib.Path(data["out"])
        data["spec"] = mnist.MnistSpec(**data["spec"])
        return cls(**data)


def settings_from_json(data: dict) -> tuple[Settings, mnist.MnistFiles]:
    """The settings and data files of ``OUT/sweep.json`` (or a Dask task's payload)."""
    files = mnist.MnistFiles(**{k: (v if k == "source" else pathlib.Path(v)) for k, v in data["files"].items()})
    return Settings.from_json(data["settings"]), files


def plan(settings: Settings) -> list[tuple[str, int, int]]:
    return [(m, d, r) for m in settings.models for d in settings.dims for r in range(1, settings.runs + 1)]


def find_run(settings: Settings, files: mnist.MnistFiles, name: str) -> Run:
    for key in plan(settings):
        if run_name(*key) == name:
            return Run(settings, files, *key)
    raise CaffeCaeError(f"no run {name!r} in this sweep")


def resume_command(settings: Settings) -> str:
    """The command line that continues this sweep (the output folder relative to the current
    one when it lies below it, as a committed report is read from the repository root)."""
    import os
    import shlex

    s = settings
    out = os.path.relpath(s.out) if pathlib.Path(s.out).resolve().is_relative_to(pathlib.Path.cwd()) else str(s.out)
    parts = ["caffe-cae", "reproduce", "--out", out, "--models", ",".join(s.models),
             "--dims", ",".join(map(str, s.dims)), "--iters", str(s.iters), "--runs", str(s.runs)]
    if s.seed != 1:
        parts += ["--seed", str(s.seed)]
    if s.scheduler:
        parts += ["--scheduler", s.scheduler]
    elif s.workers > 1:
        parts += ["--workers", str(s.workers)]
    return shlex.join(parts)


# ------------------------------------------------------------------------------------------
# the pipeline


def reproduce(settings: Settings) -> pathlib.Path:
    """Run everything; returns the path of ``report.md``.

    BLAS and OpenMP (t-SNE) run with ``settings.threads`` threads: these nets' GEMMs are small,
    and on a shared machine spinning worker threads cost far more than they gain (5x slower
    training, 40x slower t-SNE measured on 2 busy cores).
    """
    from caffe_cae.parallel import limit_threads

    with limit_threads(settings.threads):
        return _reproduce(settings)


def _reproduce(settings: Settings) -> pathlib.Path:
    from caffe_cae.experiments import sweep

    settings.out = pathlib.Path(settings.out).resolve()
    settings.check()
    make_folder(settings.out)
    gitignore = settings.out / ".gitignore"
    if not gitignore.exists():
        atomic_write_bytes(gitignore, GITIGNORE.encode())
    files = mnist.prepare_mnist(settings.out / "mnist", from_dir=settings.from_dir, download=settings.download,
                                spec=settings.spec)
    data = files.describe()
    runs = plan(settings)
    try:
        outcome = sweep.execute(settings, files, runs)
    except sweep.SweepInterrupted:
        write_sweep_report(settings, data, *collect(settings))   # what is finished so far
        raise
    if outcome.failed:
        write_sweep_report(settings, data, *collect(settings))
        raise CaffeCaeError("; ".join(f"{name}: {error}" for name, error in outcome.failed.items()))
    return write_sweep_report(settings, data, [outcome.records[run_name(*key)] for key in runs], [])


def report_only(settings: Settings) -> pathlib.Path:
    """``report.md`` from the run folders as they are: finished runs in the tables, the others
    listed with the iteration they reached.  Trains, encodes and evaluates nothing."""
    settings.out = pathlib.Path(settings.out).resolve()
    settings.check()
    if not (settings.out / "runs").is_dir():
        raise CaffeCaeError(f"{settings.out}: no runs folder; start the runs with the same command "
                            "without --report-only")
    files = mnist.existing_files(settings.out / "mnist")
    data = files.describe() if files else "not in this folder (report only)"
    return write_sweep_report(settings, data, *collect(settings))


def collect(settings: Settings) -> tuple[list[dict], list[dict]]:
    """From the run folders on disk: the records of finished runs, and the state of the others."""
    finished, pending = [], []
    for key in plan(settings):
        run = Run(settings, None, *key)
        record = run.result()
        if record:
            finished.append(record)
        else:
            pending.append(pending_state(run))
    return finished, pending


def pending_state(run: Run) -> dict:
    """How far an unfinished run got: its newest snapshot and the test losses recorded up to it."""
    history = read_json(run.history_path) or {}
    snapshots = run.snapshots()
    reached = snapshots[-1] if snapshots else 0
    latest = {}
    if run.net_path.is_file():
        for kind, blob in run.loss_names().items():
            points = [p for p in history.get("test", {}).get(blob, []) if p[0] <= reached]
            if points:
                latest[kind] = points[-1]
    if reached >= run.settings.iters:
        state = "trained; encoding and evaluation to do"
    else:
        state = "training" if reached else "not started"
    return {"name": run.name, "model": run.model, "dims": run.dims, "iter": reached, "iters": run.settings.iters,
            "state": state, "test_latest": latest, "seconds": history.get("seconds")}


def finished_elsewhere(settings: Settings) -> list[dict]:
    """The records of finished runs in ``OUT/runs`` that this sweep does not plan: runs of other
    models or code sizes that earlier commands left in the same folder (each record carries its
    own iterations, seed and threads).  The report covers the whole folder, so a sweep that adds
    the 30-D runs to a folder of 10-D ones reports both."""
    planned = {run_name(*key) for key in plan(settings)}
    records = []
    for path in sorted((settings.out / "runs").glob("*/result.json")):
        record = read_json(path)
        if record and path.parent.name not in planned and path.parent.name == run_name(
                record.get("model"), record.get("dims"), record.get("run")):
            records.append(record)
    return records


def run_of(settings: Settings, record: dict) -> Run:
    """The run (folder and file names) a finished run's record belongs to."""
    return Run(settings, None, record["model"], record["dims"], record["run"])


def with_magnitude_sparsity(settings: Settings, record: dict) -> dict:
    """``record`` with the sparsity of the magnitudes of its codes: runs evaluated before that
    reading was measured get it from their codes file (nothing is written back)."""
    if "sparsity_magnitude" in record["eval"]:
        return record
    codes_path = run_of(settings, record).codes_path
    if not codes_path.is_file():
        return record
    codes, _, _ = evaluate_mod.read_codes(codes_path)
    value = sparsity_mod.sparsity(codes, magnitude=True)
    return {**record, "eval": {**record["eval"], "sparsity_magnitude": value}}


def write_sweep_report(settings: Settings, data: str, records: list[dict], pending: list[dict]) -> pathlib.Path:
    """``OUT/report.md`` (and the Table 6 figure) for ``records`` and the runs other commands
    finished in the same folder; ``pending``: unfinished runs of this sweep."""
    others = finished_elsewhere(settings)
    records = sorted((with_magnitude_sparsity(settings, r) for r in [*records, *others]),
                     key=lambda r: (r["model"], r["dims"], r["run"]))
    figs = []
    rows = {}
    for record in records:
        if record["run"] != 1:
            continue
        samples = run_of(settings, record).dir / "samples.npz"
        if not samples.is_file():
            continue
        with np.load(samples) as saved:
            if saved["recon"].size:
                rows[f"{record['model']} {record['dims']}-D"] = saved["recon"]
                inputs = saved["inputs"]
    if rows and settings.figures:
        figures.reconstructions(inputs, rows, settings.out / "reconstructions.png",
                                title="Reconstruction of test digits (Table 6)")
        figs.append(("Reconstructions (Table 6)", "reconstructions.png"))
    report_path = settings.out / "report.md"
    where = (f"Dask cluster {settings.scheduler}" if settings.scheduler
             else f"{settings.workers} local worker process(es)" if settings.workers > 1 else "this process")
    report.write_report(report_path, records, {
        "models": ", ".join(settings.models), "code sizes": ", ".join(map(str, settings.dims)),
        "iterations": f"{settings.iters} (paper: {PAPER_ITERS})", "runs per model": settings.runs,
        "test every": f"{settings.test_interval} iterations",
        "data": data,
        "computed in": f"{where}, {settings.threads or 'default'} thread(s) per run",
        "classification protocols": "; ".join(
            f"**{p}**: {protocol.describe(p, settings.folds, settings.mlp_epochs, settings.mlp_trainer, settings.mlp_max_iter)}"
            for p in settings.protocols),
        "t-SNE points": settings.tsne_points,
        **({"also in this folder": ", ".join(r["model"] + f" {r['dims']}-D run {r['run']} ({r['iters']} iterations)"
                                             for r in others) + " (finished by earlier commands)"} if others else {}),
    }, figs, paper_iters=PAPER_ITERS, pending=pending, resume=resume_command(settings) if pending else None)
    return report_path
