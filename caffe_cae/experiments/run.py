"""One run of the reproduction (model, code size, run index) in its own folder.

``runs/<model>-<N>d-run<R>/``::

    net.prototxt, solver.prototxt   regenerated at every start (paths of this checkout)
    snap_iter_<k>.caffemodel/.solverstate   the newest ``keep_snapshots`` snapshots only
    history.json      loss curves, the iteration they reach, time and threads per session
    progress.json     what the run is doing now (read by the sweep's progress display)
    codes.h5, eval.json, samples.npz, *.png, result.json (written last: the run is finished)

Idempotent: a finished run (``result.json`` for these iterations) is skipped; an unfinished one
resumes from its newest snapshot.  Caffe's data layers start again at row 0 after a restore;
here they are advanced to where an uninterrupted run would read next (train net: one batch per
iteration; test net: one pass per recorded test), and the partial loss average is stored with
the history, so a resumed run is bit for bit the uninterrupted one.
"""
from __future__ import annotations

import json
import logging
import os
import pathlib
import re
import time

import h5py
import numpy as np

from caffe_cae.errors import CaffeCaeError
from caffe_cae.experiments import encode as encode_mod
from caffe_cae.experiments import evaluate as evaluate_mod
from caffe_cae.experiments import figures, paper_results, protocol, provenance
from caffe_cae.fileio import atomic_write_bytes

log = logging.getLogger(__name__)

# Table 6 shows digits 2, 4, 5, 8; Fig. 11 traces a 5.
SAMPLE_DIGITS = (2, 4, 5, 8)
TRACE_DIGIT = 5
#: seconds between two progress.json writes
PROGRESS_EVERY_S = 2.0
_SNAPSHOT = re.compile(r"snap_iter_(\d+)\.solverstate")


class RunInterrupted(Exception):
    """The run stopped on request after writing a snapshot at ``iteration``."""

    def __init__(self, name: str, iteration: int):
        super().__init__(f"{name}: stopped at iteration {iteration} (snapshot written)")
        self.name, self.iteration = name, iteration


def write_json(path: pathlib.Path, data, indent: int | None = 1) -> None:
    atomic_write_bytes(path, (json.dumps(data, indent=indent, default=float) + "\n").encode())


def read_json(path: pathlib.Path):
    try:
        return json.loads(path.read_text()) if path.is_file() else None
    except ValueError:  # a file cut by a crash of an older version: start that stage again
        return None


def run_name(model: str, dims: int, index: int) -> str:
    return f"{model}-{dims}d-run{index}"


def advance_data(net, batches: int) -> None:
    """Let the data layers of ``net`` read ``batches`` batches into scratch tops (as forward would)."""
    for node in net.graph.layers:
        layer = node.layer
        if batches <= 0 or not getattr(layer, "is_data", False):
            continue
        if not hasattr(layer, "next_rows"):
            raise CaffeCaeError(f"layer {node.name!r} ({type(layer).__name__}): cannot advance it to the "
                                f"resumed iteration")
        if getattr(layer, "_shuffle_pending", False):
            layer._initial_shuffle()
        scratch = [np.empty(shape, np.float32) for shape in layer.reshape([])]
        for _ in range(batches):
            layer.next_rows(scratch)


class Run:
    """One (model, code size, run index): its folder, files and stages."""

    def __init__(self, settings, files, model: str, dims: int, index: int):
        from caffe_cae import zoo

        self.settings, self.files = settings, files
        self.model, self.dims, self.index = model, dims, index
        self.spec = zoo.get_model(model)
        self.name = run_name(model, dims, index)
        self.dir = pathlib.Path(settings.out) / "runs" / self.name
        self.net_path = self.dir / "net.prototxt"
        self.solver_path = self.dir / "solver.prototxt"
        self.prefix = self.dir / "snap"
        self.history_path = self.dir / "history.json"
        self.progress_path = self.dir / "progress.json"
        self.codes_path = self.dir / "codes.h5"
        self.result_path = self.dir / "result.json"
        self.seed = settings.seed + 1000 * index + dims

    def result(self) -> dict | None:
        """result.json of a complete run with these settings' iterations, or None."""
        done = read_json(self.result_path)
        return done if done and done.get("iters") == self.settings.iters else None

    def finished(self) -> dict | None:
        """The result of an earlier complete run to skip (None under ``force``: redo it)."""
        return None if self.settings.force else self.result()

    # -- generation -----------------------------------------------------------------------
    def generate(self):
        from caffe_cae import generate, prototxt

        self.dir.mkdir(parents=True, exist_ok=True)
        text = generate.net_text(self.model, dim=self.dims, train_source=str(self.files.train_list),
                                 test_source=str(self.files.test_list))
        atomic_write_bytes(self.net_path, text.encode())
        param = generate.solver_param(self.model, net=str(self.net_path), dim=self.dims,
                                      snapshot_prefix=str(self.prefix), random_seed=self.seed)
        s = self.settings
        param.max_iter = s.iters
        param.test_interval = s.iters + 1  # never inside step(): tested here, between chunks
        param.test_initialization = False
        param.display = 0                  # the sweep's progress display shows the state
        param.snapshot = 0                 # snapshots are written here, between chunks
        param.snapshot_after_train = False
        if s.test_iters:
            for i in range(len(param.test_iter)):
                param.test_iter[i] = s.test_iters
        atomic_write_bytes(self.solver_path, prototxt.to_text(param).encode())
        return param

    def net_layers(self):
        from caffe_cae import prototxt

        return prototxt.read_net_text(str(self.net_path)).layer

    def loss_names(self) -> dict:
        """The output blobs of the SigmoidCrossEntropyLoss and EuclideanLoss layers."""
        names = {}
        for layer in self.net_layers():
            if layer.type == "SigmoidCrossEntropyLoss" and layer.top:
                names["sce"] = layer.top[0]
            elif layer.type == "EuclideanLoss" and layer.top:
                names["euclidean"] = layer.top[0]
        return names

    def shuffled(self) -> bool:
        """Does the TRAIN data layer shuffle (the authors' files did not)?"""
        return any(layer.type == "HDF5Data" and layer.hdf5_data_param.shuffle for layer in self.net_layers())

    def reconstruction_blob(self) -> str | None:
        """The decoder's output image: the first bottom of the EuclideanLoss layer."""
        for layer in self.net_layers():
            if layer.type == "EuclideanLoss" and layer.bottom:
                return layer.bottom[0]
        return None

    # -- snapshots --------------------------------------------------------------------------
    def weights_path(self) -> pathlib.Path:
        return pathlib.Path(f"{self.prefix}_iter_{self.settings.iters}.caffemodel")

    def snapshots(self) -> list[int]:
        """Iterations with a complete snapshot pair, oldest first."""
        found = []
        for path in self.dir.glob("snap_iter_*.solverstate"):
            match = _SNAPSHOT.fullmatch(path.name)
            if match and pathlib.Path(f"{self.prefix}_iter_{match.group(1)}.caffemodel").is_file():
                found.append(int(match.group(1)))
        return sorted(found)

    def prune_snapshots(self) -> None:
        """Keep the newest ``keep_snapshots`` pairs (the history must already name the newest)."""
        for it in self.snapshots()[:-self.settings.keep_snapshots]:
            for ext in (".caffemodel", ".solverstate"):
                pathlib.Path(f"{self.prefix}_iter_{it}{ext}").unlink(missing_ok=True)

    # -- training --------------------------------------------------------------------------
    def train(self, param, stop=None, progress=None) -> dict:
        """Train to ``iters`` (resuming from the newest snapshot); returns the loss history.

        ``stop()`` is polled every iteration: when true, the solver snapshots and
        :class:`RunInterrupted` is raised.  ``progress(state, iteration, rate)`` is called now and then.
        """
        from caffe_cae.solver import get_solver

        s = self.settings
        history = read_json(self.history_path)
        if history and history.get("iter") == s.iters and self.weights_path().is_file():
            return history
        solver = get_solver(param)
        test_index = len(solver.test_nets) - 1      # the deep AE's last test net is "test-on-test"
        start = max([it for it in self.snapshots() if history and it <= min(s.iters, history.get("iter", 0))],
                    default=0)
        if start:
            solver.restore(f"{self.prefix}_iter_{start}.solverstate")
            window = history.get("window", {}) if history.get("iter") == start else {}
            history = _truncate_history(history, start)
            advance_data(solver.net, start * param.iter_size)
            passes = max((len(v) for v in history["test"].values()), default=0)
            if solver.test_nets:
                advance_data(solver.test_nets[test_index], passes * param.test_iter[test_index])
            log.info("%s: resuming at iteration %d", self.name, start)
        else:
            history = {"iter": 0, "train": {}, "test": {}, "seconds": 0.0, "sessions": []}
            window = {}
        outputs = list(solver.net.outputs)
        window = {n: list(window.get(n, [])) for n in outputs}
        session = {"from": solver.iter, "to": solver.iter, "seconds": 0.0, "threads": provenance.threads(),
                   "host": provenance.machine()["host"], "caffe_cae": provenance.code_version()}
        history.setdefault("sessions", []).append(session)
        clock = {"start": time.perf_counter(), "last": 0.0, "iter": solver.iter}

        def report(state):
            if progress is None:
                return
            now = time.perf_counter()
            rate = (solver.iter - clock["iter"]) / (now - clock["start"]) if now > clock["start"] else 0.0
            progress(state, solver.iter, rate)
            clock["last"] = now

        def record(solver_, loss):
            for n in outputs:
                window[n].append(float(np.asarray(solver_.net.blobs[n].data).sum()))
            if solver_.iter % s.record_interval == 0 or solver_.iter == s.iters:
                for n in outputs:
                    history["train"].setdefault(n, []).append((solver_.iter, float(np.mean(window[n]))))
                    window[n] = []
            if time.perf_counter() - clock["last"] >= PROGRESS_EVERY_S:
                report("training")
            # At a chunk's end the loop below tests, saves and stops by itself (a solver asked to
            # stop would skip that test).
            at_chunk_end = solver_.iter % s.test_interval == 0 or solver_.iter == s.iters
            if stop is not None and not at_chunk_end and stop():
                solver_.request_stop(snapshot=True)

        def test():
            if solver.test_nets:
                report("testing")
                means = solver.test(test_index)
                for n, v in means.items():
                    if n != "loss":
                        history["test"].setdefault(n, []).append((solver.iter, float(np.sum(v))))

        def save():
            """Snapshot (unless written), then the history naming it, then drop older snapshots."""
            if not pathlib.Path(f"{self.prefix}_iter_{solver.iter}.solverstate").is_file():
                solver.snapshot()
            elapsed = time.perf_counter() - clock["start"]
            session.update(to=solver.iter, seconds=round(elapsed, 1))
            history.update(iter=solver.iter, window=window,
                           seconds=round(sum(x["seconds"] for x in history["sessions"]), 1))
            write_json(self.history_path, history, indent=None)
            self.prune_snapshots()

        solver.add_callback(record)
        report("training")
        if solver.iter == 0:
            test()
        while solver.iter < s.iters:
            solver.step(min(s.test_interval - solver.iter % s.test_interval, s.iters - solver.iter))
            if solver.iter % s.test_interval == 0 or solver.iter == s.iters:
                test()
            save()
            if stop is not None and stop() and solver.iter < s.iters:
                report("interrupted")
                raise RunInterrupted(self.name, solver.iter)
        return history

    # -- encode, evaluate, figures ---------------------------------------------------------
    def encode(self) -> dict:
        """Codes of the test set (codes.h5), sample reconstructions and the layer trace."""
        s = self.settings
        with h5py.File(self.files.test_h5, "r") as h5:
            encoder = encode_mod.Encoder(str(self.net_path), str(self.weights_path()),
                                         encode_mod.data_shapes(h5), batch_size=100)
            if not self.codes_path.is_file() or s.force:
                codes, labels = encode_mod.encode_open(encoder, h5, [self.spec.code_blob], progress=False)
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

    def evaluate(self, stop=None) -> dict:
        """eval.json: the sklearn variant's measures (top level, as before) and every protocol's."""
        path = self.dir / "eval.json"
        s = self.settings
        done = read_json(path)
        if done and not s.force and all(p in done.get("protocols", {}) for p in s.protocols):
            return done
        codes, labels, switches = evaluate_mod.read_codes(self.codes_path)
        base = evaluate_mod.evaluate_codes(codes, labels, switches, folds=s.folds, seed=s.seed,
                                           classifiers=(), mlp_max_iter=s.mlp_max_iter).as_dict()
        base["protocols"] = {}
        for name in s.protocols:
            base["protocols"][name] = protocol.evaluate(codes, labels, name, folds=s.folds, seed=s.seed,
                                                        mlp_epochs=s.mlp_epochs, mlp_trainer=s.mlp_trainer,
                                                        mlp_max_iter=s.mlp_max_iter, stop=stop)
        main = base["protocols"].get("sklearn") or base["protocols"][s.protocols[0]]
        base.update(linear_error=main["linear"]["error"], mlp_error=main["mlp"]["error"],
                    folds=s.folds, mlp_max_iter=s.mlp_max_iter)
        write_json(path, base)
        return base

    def draw(self, history: dict, trace: list, trace_label: int) -> dict:
        s = self.settings
        out = {}
        title = f"{self.model} {self.dims}-D run {self.index}"
        loss_png = self.dir / "loss.png"
        names = self.loss_names()
        labels = {names[k]: label for k, label in (("sce", "SCE"), ("euclidean", "Euclidean")) if k in names}
        reference = {}
        paper = paper_results.mean_losses(self.model, self.dims)
        if paper:
            for k, position in (("sce", 0), ("euclidean", 1)):
                if k in names:
                    reference[names[k]] = {"train": paper[0][position], "test": paper[1][position]}
        figures.loss_curves({k: history[k] for k in ("train", "test")}, loss_png,
                            title=f"{title}: loss ({s.iters} iterations)", labels=labels, reference=reference)
        out["loss curves"] = loss_png
        codes, labels_, _ = evaluate_mod.read_codes(self.codes_path)
        code_png = self.dir / ("code.png" if codes.shape[1] == 2 else "tsne.png")
        if codes.shape[1] == 2:
            figures.code_scatter(codes, labels_, code_png, title=f"{title}: 2-D code of the test set")
            out["2-D code"] = code_png
        else:
            figures.tsne_map(codes, labels_, code_png, max_points=s.tsne_points, seed=s.seed,
                             title=f"{title}: t-SNE of the {codes.shape[1]}-D code")
            out["t-SNE of the code"] = code_png
        layers_png = self.dir / "layers.png"
        figures.layer_panels(trace, layers_png, title=f"{title}: digit {trace_label} through the net")
        out["layer by layer"] = layers_png
        return {k: os.path.relpath(v, s.out) for k, v in out.items()}

    # -- everything ------------------------------------------------------------------------
    def execute(self, stop=None, progress=None) -> dict:
        """All stages; returns the record written to result.json."""
        done = self.finished()
        if done:
            return done

        def state(name):
            if progress is not None:
                progress(name, self.settings.iters, 0.0)

        param = self.generate()
        before = read_json(self.history_path)
        history = self.train(param, stop, progress)
        if before is None or before.get("iter") != history.get("iter") or self.settings.force:
            # New weights: codes and measures of older weights must not be reused.
            for stale in (self.codes_path, self.dir / "eval.json"):
                stale.unlink(missing_ok=True)
        # Ctrl-C after training: encoding and measures start again at the next call.
        stopped = RunInterrupted(self.name, history["iter"])
        if stop is not None and stop():
            raise stopped
        state("encoding")
        traced = self.encode()
        state("evaluating")
        try:
            evaluation = self.evaluate(stop)
        except protocol.Stopped:
            state("interrupted")
            raise stopped from None
        if stop is not None and stop():
            raise stopped
        figs = {}
        if self.settings.figures:
            state("drawing")
            figs = self.draw(history, traced["trace"], traced["trace_label"])
        record = {
            "model": self.model, "dims": self.dims, "run": self.index, "iters": self.settings.iters,
            "seed": self.seed, "shuffled": self.shuffled(),
            "seconds": history.get("seconds"), "sessions": history.get("sessions", []),
            "threads": provenance.threads(), "machine": provenance.machine(),
            "caffe_cae": provenance.code_version(),
            "losses": self.loss_names(),
            "train_first": _at(history["train"], 0), "train_last": _at(history["train"], -1),
            "test_first": _at(history["test"], 0), "test_last": _at(history["test"], -1),
            "eval": evaluation, "figures": figs,
        }
        write_json(self.result_path, record)
        state("done")
        return record


def _at(series: dict, index: int) -> dict:
    return {name: points[index][1] for name, points in series.items() if points}


def _truncate_history(history: dict, upto: int) -> dict:
    out = {k: v for k, v in history.items() if k not in ("train", "test", "window")}
    out.update({phase: {n: [p for p in pts if p[0] <= upto] for n, pts in history.get(phase, {}).items()}
                for phase in ("train", "test")})
    out["iter"] = upto
    return out
