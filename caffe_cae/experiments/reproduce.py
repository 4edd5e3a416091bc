"""The whole experiment of the 2019 paper: data -> gen -> train -> encode -> evaluate -> figures -> report.

Layout under ``OUT``::

    mnist/                          HDF5 MNIST (:mod:`.mnist`)
    runs/<model>-<N>d-run<R>/       net.prototxt, solver.prototxt, snap_iter_<k>.caffemodel/.solverstate,
                                    history.json (loss curves), codes.h5, eval.json, *.png, result.json
    reconstructions.png             Table 6: sample digits and every model's reconstruction
    report.md                       Table 4 side by side with the paper, loss trends, findings, figures

Every stage leaves its files behind and is skipped when they exist, so an interrupted reproduce
resumes: training continues from the newest snapshot (and its saved loss history), finished runs
are not touched (``force`` redoes them).
"""
from __future__ import annotations

import dataclasses
import json
import logging
import os
import pathlib
import re
import time
from typing import Sequence

import h5py
import numpy as np

from caffe_cae.errors import CaffeCaeError
from caffe_cae.experiments import encode as encode_mod
from caffe_cae.experiments import evaluate as evaluate_mod
from caffe_cae.experiments import figures, mnist, report
from caffe_cae.fileio import atomic_write_bytes, make_folder

log = logging.getLogger(__name__)

DEFAULT_MODELS = ("model1", "model2", "model3", "model4", "model5")
UNSUPPORTED = {"siamese": "the Siamese baseline trains on image pairs (semi-supervised); reproduce runs the auto-encoders"}
# Table 6 shows digits 2, 4, 5, 8; Fig. 11 traces a 5.
SAMPLE_DIGITS = (2, 4, 5, 8)
TRACE_DIGIT = 5


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
    threads: int | None = 1            # interpreter + BLAS/OpenMP threads; None = the defaults

    def check(self) -> None:
        from caffe_cae import zoo

        for model in self.models:
            if model in UNSUPPORTED:
                raise CaffeCaeError(f"model {model!r}: {UNSUPPORTED[model]}")
            zoo.get_model(model)
        if not self.models or not self.dims:
            raise CaffeCaeError("--models and --dims need at least one entry each")
        for name in ("iters", "runs", "mlp_max_iter", "tsne_points", "test_every", "test_iters"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise CaffeCaeError(f"--{name.replace('_', '-')} must be at least 1 (got {value})")
        if self.folds < 2:
            raise CaffeCaeError(f"--folds must be at least 2 (got {self.folds})")
        if any(d < 1 for d in self.dims):
            raise CaffeCaeError("--dims must be positive code sizes")

    @property
    def test_interval(self) -> int:
        return self.test_every or max(100, self.iters // 10)

    @property
    def record_interval(self) -> int:
        return self.record_every or max(1, self.iters // 200)


def _bar(total: int, desc: str, enabled: bool, **kwargs):
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, disable=not enabled, dynamic_ncols=True, **kwargs)


def _write_json(path: pathlib.Path, data, indent: int | None = 1) -> None:
    atomic_write_bytes(path, (json.dumps(data, indent=indent, default=float) + "\n").encode())


def _read_json(path: pathlib.Path):
    return json.loads(path.read_text()) if path.is_file() else None


# ------------------------------------------------------------------------------------------
# one run


class Run:
    """One (model, code size, run index): its folder, files and stages."""

    def __init__(self, settings: Settings, files: mnist.MnistFiles, model: str, dims: int, index: int):
        from caffe_cae import zoo

        self.settings, self.files = settings, files
        self.model, self.dims, self.index = model, dims, index
        self.spec = zoo.get_model(model)
        self.name = f"{model}-{dims}d-run{index}"
        self.dir = settings.out / "runs" / self.name
        self.net_path = self.dir / "net.prototxt"
        self.solver_path = self.dir / "solver.prototxt"
        self.prefix = self.dir / "snap"
        self.history_path = self.dir / "history.json"
        self.codes_path = self.dir / "codes.h5"
        self.result_path = self.dir / "result.json"

    # -- generation -----------------------------------------------------------------------
    def generate(self):
        from caffe_cae import generate, prototxt

        self.dir.mkdir(parents=True, exist_ok=True)
        text = generate.net_text(self.model, dim=self.dims, train_source=str(self.files.train_list),
                                 test_source=str(self.files.test_list))
        atomic_write_bytes(self.net_path, text.encode())
        param = generate.solver_param(self.model, net=str(self.net_path), dim=self.dims,
                                      snapshot_prefix=str(self.prefix),
                                      random_seed=self.settings.seed + 1000 * self.index + self.dims)
        s = self.settings
        param.max_iter = s.iters
        param.test_interval = s.iters + 1  # never inside step(): tested here, between chunks
        param.test_initialization = False
        param.display = 0                  # the progress bar shows the loss
        param.snapshot = s.test_interval
        param.snapshot_after_train = False
        if s.test_iters:
            for i in range(len(param.test_iter)):
                param.test_iter[i] = s.test_iters
        atomic_write_bytes(self.solver_path, prototxt.to_text(param).encode())
        return param

    def loss_names(self) -> dict:
        """The output blobs of the SigmoidCrossEntropyLoss and EuclideanLoss layers."""
        from caffe_cae import prototxt

        names = {}
        for layer in prototxt.read_net_text(str(self.net_path)).layer:
            if layer.type == "SigmoidCrossEntropyLoss" and layer.top:
                names["sce"] = layer.top[0]
            elif layer.type == "EuclideanLoss" and layer.top:
                names["euclidean"] = layer.top[0]
        return names

    def reconstruction_blob(self) -> str | None:
        """The decoder's output image: the first bottom of the EuclideanLoss layer."""
        from caffe_cae import prototxt

        for layer in prototxt.read_net_text(str(self.net_path)).layer:
            if layer.type == "EuclideanLoss" and layer.bottom:
                return layer.bottom[0]
        return None

    # -- training --------------------------------------------------------------------------
    def weights_path(self) -> pathlib.Path:
        return pathlib.Path(f"{self.prefix}_iter_{self.settings.iters}.caffemodel")

    def _latest_snapshot(self, history: dict | None) -> int:
        if not history:
            return 0
        found = []
        for path in self.dir.glob("snap_iter_*.solverstate"):
            match = re.fullmatch(r"snap_iter_(\d+)\.solverstate", path.name)
            if match and int(match.group(1)) <= min(self.settings.iters, history.get("iter", 0)):
                found.append(int(match.group(1)))
        return max(found, default=0)

    def train(self, param) -> dict:
        """Train to ``iters`` (resuming from the newest snapshot); returns the loss history."""
        from caffe_cae.solver import get_solver

        s = self.settings
        history = _read_json(self.history_path)
        if history and history.get("iter") == s.iters and self.weights_path().is_file():
            return history
        solver = get_solver(param)
        start = self._latest_snapshot(history)
        if start:
            solver.restore(f"{self.prefix}_iter_{start}.solverstate")
            history = _truncate_history(history, start)
            log.info("%s: resuming at iteration %d", self.name, start)
        else:
            history = {"iter": 0, "train": {}, "test": {}}
        test_index = len(solver.test_nets) - 1      # the deep AE's last test net is "test-on-test"
        outputs = [n for n in solver.net.outputs]
        window = {n: [] for n in outputs}
        bar = _bar(s.iters, self.name, s.progress, initial=solver.iter, unit="it", leave=False)

        def record(solver_, loss):
            for n in outputs:
                window[n].append(float(np.asarray(solver_.net.blobs[n].data).sum()))
            if solver_.iter % s.record_interval == 0 or solver_.iter == s.iters:
                for n in outputs:
                    history["train"].setdefault(n, []).append((solver_.iter, float(np.mean(window[n]))))
                    window[n] = []
            bar.update(1)
            if solver_.iter % 10 == 0:
                bar.set_postfix(loss=f"{loss:.3g}")

        def test():
            if solver.test_nets:
                means = solver.test(test_index)
                for n, v in means.items():
                    if n != "loss":
                        history["test"].setdefault(n, []).append((solver.iter, float(np.sum(v))))

        solver.add_callback(record)
        try:
            if solver.iter == 0:
                test()
            while solver.iter < s.iters:
                solver.step(min(s.test_interval - solver.iter % s.test_interval, s.iters - solver.iter))
                test()
                if solver.iter % s.test_interval != 0 or solver.iter == s.iters:
                    if not pathlib.Path(f"{self.prefix}_iter_{solver.iter}.caffemodel").is_file():
                        solver.snapshot()
                history["iter"] = solver.iter
                _write_json(self.history_path, history, indent=None)
        finally:
            bar.close()
        return history

    # -- encode, evaluate, figures ---------------------------------------------------------
    def encode(self) -> dict:
        """Codes of the test set (codes.h5), sample reconstructions and the layer trace."""
        s = self.settings
        with h5py.File(self.files.test_h5, "r") as h5:
            encoder = encode_mod.Encoder(str(self.net_path), str(self.weights_path()),
                                         encode_mod.data_shapes(h5), batch_size=100)
            if not self.codes_path.is_file() or s.force:
                codes, labels = encode_mod.encode_open(encoder, h5, [self.spec.code_blob], progress=s.progress)
                encode_mod.write_codes(self.codes_path, codes, labels,
                                       switches=encode_mod.switch_inventory(encoder.net),
                                       attrs={"net": self.net_path, "weights": self.weights_path(),
                                              "data": self.files.test_h5})
            labels = np.asarray(h5["label"]).astype(np.int64)
            picks = [int(np.flatnonzero(labels == d)[0]) for d in SAMPLE_DIGITS if (labels == d).any()]
            samples = np.asarray(h5["data"][sorted(picks)])[np.argsort(np.argsort(picks))]
            recon_blob = self.reconstruction_blob()
            recon = None
            if recon_blob:
                recon = encoder.run({"data": samples}, [recon_blob])[recon_blob].reshape(len(samples), 28, 28)
            trace_at = int(np.flatnonzero(labels == TRACE_DIGIT)[0]) if (labels == TRACE_DIGIT).any() else 0
            trace = encoder.trace({"data": np.asarray(h5["data"][trace_at:trace_at + 1])})
        np.savez(self.dir / "samples.npz", inputs=samples[:, 0], recon=recon if recon is not None else np.zeros(0))
        return {"trace": trace, "trace_label": int(labels[trace_at])}

    def evaluate(self) -> dict:
        path = self.dir / "eval.json"
        done = _read_json(path)
        if done and not self.settings.force:
            return done
        codes, labels, switches = evaluate_mod.read_codes(self.codes_path)
        s = self.settings
        result = evaluate_mod.evaluate_codes(codes, labels, switches, folds=s.folds, seed=s.seed,
                                             mlp_max_iter=s.mlp_max_iter, source=self.codes_path).as_dict()
        result.update(folds=s.folds, mlp_max_iter=s.mlp_max_iter)
        _write_json(path, result)
        return result

    def draw(self, history: dict, trace: list, trace_label: int) -> dict:
        s = self.settings
        out = {}
        title = f"{self.model} {self.dims}-D run {self.index}"
        loss_png = self.dir / "loss.png"
        figures.loss_curves({k: history[k] for k in ("train", "test")}, loss_png,
                            title=f"{title}: loss ({s.iters} iterations)")
        out["loss curves"] = loss_png
        codes, labels, _ = evaluate_mod.read_codes(self.codes_path)
        code_png = self.dir / ("code.png" if codes.shape[1] == 2 else "tsne.png")
        if codes.shape[1] == 2:
            figures.code_scatter(codes, labels, code_png, title=f"{title}: 2-D code of the test set")
            out["2-D code"] = code_png
        else:
            figures.tsne_map(codes, labels, code_png, max_points=s.tsne_points, seed=s.seed,
                             title=f"{title}: t-SNE of the {codes.shape[1]}-D code")
            out["t-SNE of the code"] = code_png
        layers_png = self.dir / "layers.png"
        figures.layer_panels(trace, layers_png, title=f"{title}: digit {trace_label} through the net")
        out["layer by layer"] = layers_png
        return {k: os.path.relpath(v, s.out) for k, v in out.items()}

    # -- everything ------------------------------------------------------------------------
    def execute(self) -> dict:
        done = _read_json(self.result_path)
        if done and not self.settings.force and done.get("iters") == self.settings.iters:
            return done
        started = time.perf_counter()
        param = self.generate()
        before = _read_json(self.history_path)
        history = self.train(param)
        if before != history:
            # New weights: codes and measures of older weights must not be reused.
            for stale in (self.codes_path, self.dir / "eval.json"):
                stale.unlink(missing_ok=True)
        traced = self.encode()
        evaluation = self.evaluate()
        figs = self.draw(history, traced["trace"], traced["trace_label"])
        record = {
            "model": self.model, "dims": self.dims, "run": self.index, "iters": self.settings.iters,
            "seconds": round(time.perf_counter() - started, 1),
            "losses": self.loss_names(),
            "train_first": _at(history["train"], 0), "train_last": _at(history["train"], -1),
            "test_first": _at(history["test"], 0), "test_last": _at(history["test"], -1),
            "eval": evaluation, "figures": figs,
        }
        _write_json(self.result_path, record)
        return record


def _at(series: dict, index: int) -> dict:
    return {name: points[index][1] for name, points in series.items() if points}


def _truncate_history(history: dict, upto: int) -> dict:
    return {"iter": upto, **{phase: {n: [p for p in pts if p[0] <= upto] for n, pts in history.get(phase, {}).items()}
                             for phase in ("train", "test")}}


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
    settings.out = pathlib.Path(settings.out).resolve()
    settings.check()
    make_folder(settings.out)
    files = mnist.prepare_mnist(settings.out / "mnist", from_dir=settings.from_dir, download=settings.download,
                                spec=settings.spec)
    plan = [(m, d, r) for m in settings.models for d in settings.dims for r in range(1, settings.runs + 1)]
    records = []
    with _bar(len(plan), "reproduce", settings.progress, unit="run") as bar:
        for model, dims, index in plan:
            bar.set_postfix_str(f"{model} {dims}-D run {index}")
            records.append(Run(settings, files, model, dims, index).execute())
            bar.update(1)
    figs = []
    rows = {}
    for record in records:
        if record["run"] != 1:
            continue
        data = np.load(settings.out / "runs" / f"{record['model']}-{record['dims']}d-run1" / "samples.npz")
        if data["recon"].size:
            rows[f"{record['model']} {record['dims']}-D"] = data["recon"]
            inputs = data["inputs"]
    if rows:
        figures.reconstructions(inputs, rows, settings.out / "reconstructions.png",
                                title="Reconstruction of test digits (Table 6)")
        figs.append(("Reconstructions (Table 6)", "reconstructions.png"))
    report_path = settings.out / "report.md"
    report.write_report(report_path, records, {
        "models": ", ".join(settings.models), "code sizes": ", ".join(map(str, settings.dims)),
        "iterations": settings.iters, "runs per model": settings.runs,
        "test every": f"{settings.test_interval} iterations",
        "data": f"{files.train_h5.name} / {files.test_h5.name} ({files.source})",
        "classifiers": f"{settings.folds}-fold CV, MLP L-BFGS max {settings.mlp_max_iter} iterations",
        "t-SNE points": settings.tsne_points,
    }, figs)
    return report_path
