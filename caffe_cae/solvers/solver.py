"""``Solver``: Caffe's training loop (``Solver::Step`` / ``Solve`` / ``Test``) and the SGD-family
update (``SGDSolver::ApplyUpdate``), with pycaffe's API.

    solver = caffe_cae.get_solver("solver.prototxt")
    solver.net.copy_from("init.caffemodel")
    solver.step(100)          # or solver.solve()
    solver.snapshot()
    solver.restore("snap_iter_100.solverstate")

Per iteration: clear param diffs; ``iter_size`` x forward-backward (gradients accumulate);
test / display / lr as Caffe; clip (global L2 norm), then per learnable param normalise
(/iter_size), regularise (L2 / L1 x decay_mult), the type's update rule (x lr_mult), and
``W -= step``; ``iter += 1``; snapshot every ``snapshot`` iterations.  The solver types
(:mod:`caffe_cae.solvers.updates`) subclass ``Solver`` with their update rule.
"""
from __future__ import annotations

import logging
import os
import signal
import threading
import time

import numpy as np

from caffe_cae import engine, tuning, weights
from caffe_cae.errors import CaffeCaeError
from caffe_cae.fileio import remove_stale_parts
from caffe_cae.parallel import split
from caffe_cae.proto import caffe_pb2
from caffe_cae.solvers import config, snapshot as snap
from caffe_cae.solvers.divergence import diverged
from caffe_cae.solvers.lr_policy import learning_rate

log = logging.getLogger(__name__)
f32 = np.float32


def _g(value) -> str:
    """A number as C++ ``ostream <<`` prints it (6 significant digits)."""
    return f"{float(value):g}"


class Solver:
    """A Caffe solver built from a solver prototxt path or SolverParameter; the base of the
    solver types, each registered (:mod:`caffe_cae.solvers.registry`) under its ``TYPE``.

    ``weights``: caffemodel path(s) copied into the train net after construction (``--weights``;
    the solver's own ``weights`` field is applied first, as Caffe does).
    """

    #: the SolverParameter ``type`` this class implements
    TYPE = ""
    #: history blobs per learnable param (Caffe's PreSolve: one; AdaDelta / Adam add a second)
    HISTORY_SETS = 1

    @classmethod
    def check_param(cls, param: caffe_pb2.SolverParameter, where: str) -> None:
        """Refuse the settings this type's Caffe constructor CHECK-fails on."""

    def compute_update_value(self, index: int, diff: np.ndarray, history, scratch: np.ndarray,
                             local_rate: np.float32) -> None:
        """Caffe's ``ComputeUpdateValue``: turn param ``index``'s gradient ``diff`` into its step,
        in place, updating ``history`` (all history blobs, ``HISTORY_SETS`` x params)."""
        raise NotImplementedError

    def __init__(self, solver, weights: str | list[str] | None = None, *, net=None,
                 test_nets=None, param: caffe_pb2.SolverParameter | None = None):
        """``solver``: solver prototxt path or SolverParameter.  ``net`` / ``test_nets``: use
        these nets instead of building the ones the solver names.  ``param``: the SolverParameter
        ``solver`` was already read and upgraded to (:func:`config.load_solver`; skips doing it
        again)."""
        if not self.TYPE:
            raise TypeError("Solver is the base class; build a solver with caffe_cae.get_solver "
                            "or a solver type's class (SGDSolver, AdamSolver, ...)")
        self.source = None if isinstance(solver, caffe_pb2.SolverParameter) else str(solver)
        if param is None:
            param = config.load_solver(solver)
        self.param = param
        where = self.source or "solver"
        if param.type != self.TYPE:  # as in Caffe, the class (caffe.AdamSolver(...)) decides
            log.warning("%s: solver type '%s' ignored: this is a %sSolver "
                        "(caffe_cae.get_solver picks the class from the type)", where, param.type, self.TYPE)
            param.type = self.TYPE
        config.check_solver(param, where)
        config.check_snapshot_writable(param, where)
        if param.snapshot_prefix:  # the .part files of a snapshot write that a kill interrupted
            remove_stale_parts(f"{param.snapshot_prefix}_iter_")
        self.iter = 0
        self.current_step = 0
        self.callbacks: list = []
        #: pycaffe's Solver::Callback pairs (on_start, on_gradients_ready)
        self._step_callbacks: list[tuple] = []
        self._losses: list[float] = []
        self.smoothed_loss = 0.0
        self._stop_requested = False
        self._snapshot_requested = False
        self.last_snapshot: str | None = None
        self._last_snapshot_iter = -1
        #: mean loss of each test net's last run (with ``test_compute_loss``)
        self.test_losses: dict[int, float] = {}
        if net is not None:
            self.net, self.test_nets = net, list(test_nets or [])
            self._load_weights(weights)
        else:
            self._init_nets(weights)
        self._init_history()

    # ------------------------------------------------------------------------------------
    # construction

    def _make_net(self, net_param, seed_offset: int):
        from caffe_cae.net import Net

        seed = None if self.param.random_seed < 0 else int(self.param.random_seed) + seed_offset
        # The state (phase, level, stages) is already merged into net_param as Caffe does.
        return Net(net_param, phase=net_param.state.phase, seed=seed)

    def _init_nets(self, extra_weights) -> None:
        from caffe_cae.layers.python_layer import allow_python_layers

        base_dir = os.path.dirname(os.path.abspath(self.source)) if self.source else None
        where = self.source or "solver"
        train_param, what = config.train_net_param(self.param, base_dir, where)
        with allow_python_layers(None, base_dir):  # Python layers' modules may sit beside the solver
            log.info("Creating training net from %s", what)
            self.net = self._make_net(train_param, 0)
            self.test_nets = []
            for i, (net_param, what) in enumerate(config.test_net_params(self.param, base_dir, where)):
                log.info("Creating test net (#%d) specified by %s", i, what)
                self.test_nets.append(self._make_net(net_param, 1 + i))
        self._load_weights(extra_weights)
        log.info("Solver scaffolding done.")

    def _load_weights(self, extra_weights) -> None:
        # Caffe's LoadNetWeights: every entry is a comma-separated list, names trimmed.
        entries = list(self.param.weights)
        if isinstance(extra_weights, str):
            entries.append(extra_weights)
        elif extra_weights:
            entries += list(extra_weights)
        paths = [name.strip() for entry in entries for name in entry.split(",") if name.strip()]
        for path in paths:
            self.copy_weights(path)

    def copy_weights(self, path: str) -> None:
        """Copy trained layers from a caffemodel into the train net and every test net (as
        ``caffe train --weights``: layers only a test net has get their weights too)."""
        if not os.path.exists(path):
            raise CaffeCaeError(f"{path}: no such weights file")
        log.info("Finetuning from %s", path)
        for net in [self.net, *self.test_nets]:
            net.copy_from(path)

    def _init_history(self) -> None:
        params = self.net.learnable_params
        self.history = [np.zeros(p.data.shape, np.float32) for _ in range(self.HISTORY_SETS) for p in params]
        self._scratch = [np.zeros(p.data.shape, np.float32) for p in params]
        self._lr_mult = [f32(m) for m in self.net.params_lr]
        self._decay_mult = [f32(m) for m in self.net.params_weight_decay]

    # ------------------------------------------------------------------------------------
    # pycaffe-like API

    @property
    def lr(self) -> float:
        """Learning rate the next update will use (no side effect on ``current_step``)."""
        return float(learning_rate(self.param, self.iter, self.current_step)[0])

    def add_callback(self, fn, on_gradients_ready=None) -> None:
        """``add_callback(fn)``: ``fn(solver, loss)`` is called after every iteration
        (progress bars, recording).

        ``add_callback(on_start, on_gradients_ready)`` is pycaffe's form: both are called
        without arguments, ``on_start`` at the start of every iteration (after testing, before
        the forward passes), ``on_gradients_ready`` once the gradients are accumulated, before
        the update (``solver.lr`` is then the rate the update will use)."""
        if on_gradients_ready is None:
            self.callbacks.append(fn)
        else:
            self._step_callbacks.append((fn, on_gradients_ready))

    def request_stop(self, snapshot: bool = True) -> None:
        """Stop after the current iteration (and snapshot); safe to call from a signal handler."""
        self._snapshot_requested = snapshot
        self._stop_requested = True

    def solve(self, resume_file: str | None = None) -> None:
        """Train to ``max_iter`` (resuming from ``resume_file``), then snapshot if
        ``snapshot_after_train``; Ctrl-C stops after the current iteration with a snapshot."""
        log.info("Solving %s", self.net_name)
        log.info("Learning Rate Policy: %s", self.param.lr_policy)
        self._stop_requested = False
        if resume_file:
            log.info("Restoring previous solver status from %s", resume_file)
            self.restore(resume_file)
        start_iter = self.iter
        with _stop_on_sigint(self):
            self.step(self.param.max_iter - self.iter)
        param = self.param
        # Caffe: snapshot_after_train && (!snapshot || iter_ % snapshot != 0); plus the
        # snapshot a Ctrl-C asked for, unless this iteration's snapshot is already written.
        wanted = (param.snapshot_after_train and (not param.snapshot or self.iter % param.snapshot != 0)
                  or self._snapshot_requested)
        if wanted and self._last_snapshot_iter != self.iter:
            self.snapshot()
        if self._stop_requested:
            log.info("Optimization stopped early.")
            return
        if param.display and self.iter % param.display == 0:
            loss = self.net.forward_loss()
            self._update_smoothed_loss(loss, start_iter)
            log.info("Iteration %d, loss = %s", self.iter, _g(self.smoothed_loss))
        if param.test_interval and self.iter % param.test_interval == 0:
            self.test_all()
        log.info("Optimization Done.")

    def step(self, iters: int) -> None:
        """Run ``iters`` training iterations (Caffe's ``Solver::Step``)."""
        param = self.param
        start_iter = self.iter
        stop_iter = self.iter + int(iters)
        if stop_iter > 2**31 - 1:  # Caffe's iteration counter (and the solverstate's iter) is an int
            raise CaffeCaeError(f"{self.source or 'solver'}: training from iteration {self.iter} for {int(iters)} "
                                f"iterations passes Caffe's int iteration counter ({2**31 - 1})")
        self._stop_requested = self._snapshot_requested = False
        self._losses = []
        self.smoothed_loss = 0.0
        timer_start, iter_last = time.perf_counter(), self.iter
        while self.iter < stop_iter:
            self._clear_param_diffs()
            if (param.test_interval and self.iter % param.test_interval == 0
                    and (self.iter > 0 or param.test_initialization)):
                self.test_all()
                if self._stop_requested:  # Ctrl-C while testing
                    break
            for on_start, _ in self._step_callbacks:
                on_start()
            display = bool(param.display) and self.iter % param.display == 0
            loss = 0.0
            # NaN/overflow warnings are replaced by the divergence diagnosis below.
            with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
                for _ in range(param.iter_size):
                    loss += float(self.net.forward_backward())
                loss /= param.iter_size
                if not np.isfinite(loss):
                    raise diverged(self.net, self.iter, loss, self.last_snapshot)
            self._update_smoothed_loss(loss, start_iter)
            if display:
                lapse = time.perf_counter() - timer_start
                per_s = (self.iter - iter_last) / (lapse or 1)
                log.info("Iteration %d (%s iter/s, %ss/%d iters), loss = %s", self.iter,
                         _g(per_s), _g(lapse), param.display, _g(self.smoothed_loss))
                timer_start, iter_last = time.perf_counter(), self.iter
                self._log_outputs(self.net, "Train", None)
            for _, on_gradients_ready in self._step_callbacks:
                on_gradients_ready()
            self.apply_update(display)
            self.iter += 1
            for callback in self.callbacks:
                callback(self, loss)
            if (param.snapshot and self.iter % param.snapshot == 0) or self._snapshot_requested:
                self.snapshot()
                self._snapshot_requested = False
            if self._stop_requested:
                break

    # ------------------------------------------------------------------------------------
    # the update

    def _clear_param_diffs(self) -> None:
        for p in self.net.learnable_params:
            p.diff[...] = 0

    def apply_update(self, display: bool = False) -> None:
        """``SGDSolver::ApplyUpdate``: lr, clipping, then per param normalise, regularise,
        update rule, and ``W -= step``."""
        step_before = self.current_step
        rate, self.current_step = learning_rate(self.param, self.iter, self.current_step)
        if self.param.lr_policy == "multistep" and self.current_step != step_before:
            log.info("MultiStep Status: Iteration %d, step = %d", self.iter, self.current_step)
        if display:
            log.info("Iteration %d, lr = %s", self.iter, _g(rate))
        params = self.net.learnable_params
        self._clip_gradients(params)
        weight_decay = f32(self.param.weight_decay)
        l1 = self.param.regularization_type == "L1"
        iter_size = self.param.iter_size
        for i, p in enumerate(params):
            local_decay = weight_decay * self._decay_mult[i]
            local_rate = rate * self._lr_mult[i]

            # Element-wise per param, so it runs in cache-sized blocks of the flat arrays
            # (shared out to the threads): the same float operations, far less memory traffic.
            def update(diff, data, scratch, history, i=i, local_decay=local_decay,
                       local_rate=local_rate):
                if iter_size > 1:
                    diff *= f32(1) / f32(iter_size)
                if local_decay:
                    if l1:
                        np.sign(data, out=scratch)
                        scratch *= local_decay
                    else:
                        np.multiply(data, local_decay, out=scratch)
                    diff += scratch
                self.compute_update_value(i, diff, history, scratch, local_rate)
                data -= diff  # Net::Update

            _blockwise_update(update, p.diff, p.data, self._scratch[i], self.history)

    def _clip_gradients(self, params) -> None:
        clip = f32(self.param.clip_gradients)
        if clip < 0:
            return
        sumsq = f32(0)
        for p in params:
            flat = p.diff.ravel()
            sumsq += f32(np.dot(flat, flat))
        norm = f32(np.sqrt(sumsq))
        if norm > clip:
            scale = clip / norm
            log.info("Gradient clipping: scaling down gradients (L2 norm %s > %s) by scale factor %s",
                     _g(norm), _g(clip), _g(scale))
            for p in params:
                p.diff *= scale

    # ------------------------------------------------------------------------------------
    # testing and display

    @property
    def net_name(self) -> str:
        return getattr(self.net, "name", "") or ""

    def _update_smoothed_loss(self, loss: float, start_iter: int) -> None:
        window = self.param.average_loss
        if len(self._losses) < window:
            self._losses.append(loss)
            size = len(self._losses)
            self.smoothed_loss = (self.smoothed_loss * (size - 1) + loss) / size
        else:
            idx = (self.iter - start_iter) % window
            self.smoothed_loss += (loss - self._losses[idx]) / window
            self._losses[idx] = loss

    def _log_outputs(self, net, kind: str, values: dict | None) -> None:
        """``    Train net output #k: name = v (* w = wv loss)``, one line per output element."""
        loss_weights = net.blob_loss_weights
        index = 0
        for name in net.outputs:
            array = values[name] if values is not None else net.blobs[name].data
            weight = loss_weights.get(name, 0.0)
            for v in np.asarray(array).ravel():
                tail = f" (* {_g(weight)} = {_g(weight * v)} loss)" if weight else ""
                log.info("    %s net output #%d: %s = %s%s", kind, index, name, _g(v), tail)
                index += 1

    def share_trained_layers(self, test_net) -> None:
        """Caffe's ``ShareTrainedLayersWith``: test-net params use the train net's memory."""
        if hasattr(test_net, "share_with"):
            test_net.share_with(self.net)
            return
        for name, blobs in test_net.params.items():
            source = self.net.params.get(name)
            if source is None:
                continue
            if len(source) != len(blobs):
                raise CaffeCaeError(f"layer '{name}': the test net has {len(blobs)} param blobs, "
                                    f"the train net {len(source)}")
            for target, src in zip(blobs, source):
                if target.data.shape != src.data.shape:
                    raise CaffeCaeError(f"layer '{name}': param shape {list(target.data.shape)} in the "
                                        f"test net, {list(src.data.shape)} in the train net")
                target.share_data(src)

    def test_all(self) -> list[dict]:
        """Run every test net; returns ``[{output: mean value}]`` per test net."""
        return [self.test(i) for i in range(len(self.test_nets))]

    def test(self, index: int = 0) -> dict:
        """Caffe's ``Solver::Test``: ``test_iter`` forwards, outputs averaged, logged.

        Returns ``{output: mean array}``; with ``test_compute_loss`` the mean loss is also
        stored in ``self.test_losses[index]``."""
        log.info("Iteration %d, Testing net (#%d)", self.iter, index)
        net = self.test_nets[index]
        self.share_trained_layers(net)
        n = self.param.test_iter[index]
        sums: dict[str, np.ndarray] = {}
        loss = 0.0
        for i in range(n):
            if self._stop_requested:
                log.info("Test interrupted.")
                return {}
            loss += net.forward_loss()
            for name in net.outputs:
                value = np.asarray(net.blobs[name].data, dtype=np.float32)
                if i == 0:
                    sums[name] = value.copy()
                else:
                    sums[name] += value
        means = {name: s / f32(n) for name, s in sums.items()}
        if self.param.test_compute_loss:
            loss /= n
            log.info("Test loss: %s", _g(loss))
            self.test_losses[index] = loss
        self._log_outputs(net, "Test", means)
        return means

    # ------------------------------------------------------------------------------------
    # snapshots

    def snapshot(self) -> tuple[str, str]:
        """Write ``<prefix>_iter_<iter>.caffemodel`` and ``.solverstate`` (or the HDF5 pair);
        returns their paths."""
        param = self.param
        fmt = param.snapshot_format
        model = snap.snapshot_filename(param.snapshot_prefix, self.iter, snap.model_extension(fmt))
        state_path = snap.snapshot_filename(param.snapshot_prefix, self.iter, snap.state_extension(fmt))
        if fmt == snap.HDF5:
            log.info("Snapshotting to HDF5 file %s", model)
            self.net.save_hdf5(model, write_diff=param.snapshot_diff)
        else:
            log.info("Snapshotting to binary proto file %s", model)
            weights.write_binary(model, self.net.to_proto(write_diff=param.snapshot_diff))
        state = snap.make_state(self.iter, model, self.current_step, self.history)
        log.info("Snapshotting solver state to %s file %s",
                 "HDF5" if fmt == snap.HDF5 else "binary proto", state_path)
        weights.write_solverstate(state_path, state)
        self.last_snapshot = state_path
        self._last_snapshot_iter = self.iter
        return model, state_path

    def restore(self, path: str) -> None:
        """Continue from a ``.solverstate`` (ours or Caffe's; binary or ``.h5``): iteration,
        learned weights, lr step and history."""
        path = str(path)
        if not os.path.exists(path):
            raise CaffeCaeError(f"{path}: no such solverstate file")
        state = weights.read_solverstate(path)
        if not state.HasField("iter") and not state.history:  # Caffe always writes iter
            raise CaffeCaeError(f"{path}: not a solverstate (no iter, no history); a .caffemodel "
                                f"goes to --weights, not --snapshot")
        self.iter = state.iter
        if state.learned_net:
            self.net.copy_from(snap.resolve_learned_net(state.learned_net, path))
        self.current_step = state.current_step
        snap.load_history(state, self.history, path)
        log.info("%sSolver: restoring history", self.TYPE)


class _HistorySlice:
    """``history`` as the update rules index it, every array cut to flat elements lo..hi-1."""

    def __init__(self, history, lo, hi):
        self.history, self.lo, self.hi = history, lo, hi

    def __len__(self):
        return len(self.history)

    def __getitem__(self, k):
        return self.history[k].reshape(-1)[self.lo:self.hi]


def _blockwise_update(update, diff, data, scratch, history) -> None:
    """``update(diff, data, scratch, history)`` over blocks of one param's flat arrays
    (``tuning.UPDATE_BLOCK``), or once on the whole arrays under the reference engine or when
    one of them is not contiguous."""
    if engine.reference() or not all(a.flags.c_contiguous for a in (diff, data, scratch, *history)):
        update(diff, data, scratch, history)
        return
    flat = [a.reshape(-1) for a in (diff, data, scratch)]
    block = tuning.UPDATE_BLOCK

    def part(start, stop):
        for lo in range(start, stop, block):
            hi = min(stop, lo + block)
            update(*(a[lo:hi] for a in flat), _HistorySlice(history, lo, hi))

    split(part, flat[0].size, flat[0].size)


class _stop_on_sigint:
    """While training, the first Ctrl-C asks the solver to snapshot and stop after the current
    iteration; a second one interrupts at once."""

    def __init__(self, solver: Solver):
        self.solver = solver
        self.previous = None

    def _handler(self, signum, frame):
        log.warning("Interrupted: snapshotting and stopping after this iteration (Ctrl-C again to abort)")
        self.solver.request_stop(snapshot=True)
        signal.signal(signal.SIGINT, self.previous or signal.default_int_handler)

    def __enter__(self):
        # Only when Ctrl-C is Python's default (a program with its own handler keeps it).
        if (threading.current_thread() is threading.main_thread()
                and signal.getsignal(signal.SIGINT) is signal.default_int_handler):
            self.previous = signal.signal(signal.SIGINT, self._handler)
        return self

    def __exit__(self, *exc):
        if self.previous is not None:
            signal.signal(signal.SIGINT, self.previous)
        return False
