"""``caffe-cae train``: train a net with a Caffe solver, like ``caffe train``.

    caffe-cae train --solver solver.prototxt                       # from the fillers
    caffe-cae train --solver solver.prototxt --weights init.caffemodel
    caffe-cae train --solver solver.prototxt --snapshot snap_iter_500.solverstate
    caffe-cae train solver.prototxt --iterations 100               # solver file given directly

Logs Caffe's lines (Iteration N, loss = ...; Test net output #k: ...) in glog's format (Caffe's
tools/extra/parse_log.py reads them; ``--log-format plain`` for bare messages) and writes snapshots
``<snapshot_prefix>_iter_<N>.caffemodel`` / ``.solverstate``.  Ctrl-C snapshots and stops after
the current iteration (twice: stop at once, one line).  A non-finite loss stops with one line naming the
iteration and the first layer whose output became NaN/inf; earlier snapshots are kept.
Paths inside the files (net, HDF5 source lists) are relative to the current folder, as in Caffe.
"""
from __future__ import annotations

import argparse
import contextlib
import logging
import os
import signal
import sys
import threading

from caffe_cae.commands.common import add_python_layers_argument, add_threads_argument
from caffe_cae.errors import CaffeCaeError

log = logging.getLogger(__name__)

EXIT_INTERRUPTED = 130

#: a progress bar is shown for runs of at least this many iterations on a terminal
PROGRESS_MIN_ITERS = 50


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "train",
        help="train with a Caffe solver prototxt (caffe train)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("solver_file", nargs="?", metavar="SOLVER", help="solver prototxt (same as --solver)")
    parser.add_argument("--solver", help="solver prototxt")
    start = parser.add_mutually_exclusive_group()
    start.add_argument("--weights", metavar="W[,W...]",
                       help="caffemodel(s) to initialise the train net from (finetune)")
    start.add_argument("--snapshot", metavar="STATE", help=".solverstate(.h5) to resume training from")
    parser.add_argument("--iterations", type=int, metavar="N", help="train to iteration N (overrides max_iter)")
    parser.add_argument("--no-progress", action="store_true", help="never show a progress bar")
    add_threads_argument(parser, default=None)
    add_python_layers_argument(parser)
    parser.set_defaults(func=run)


def solver_path(args) -> str:
    if args.solver and args.solver_file and args.solver != args.solver_file:
        raise CaffeCaeError("give the solver once (either SOLVER or --solver)")
    path = args.solver or args.solver_file
    if not path:
        raise CaffeCaeError("need a solver: caffe-cae train --solver SOLVER.prototxt")
    return path


@contextlib.contextmanager
def progress_bar(solver, enabled: bool):
    """A tqdm bar over the remaining iterations on a terminal; log lines print above it."""
    total = solver.param.max_iter - solver.iter
    if not enabled or total < PROGRESS_MIN_ITERS or not sys.stderr.isatty():
        yield
        return
    from tqdm import tqdm
    from tqdm.contrib.logging import logging_redirect_tqdm

    with tqdm(total=total, unit="iter", leave=False, dynamic_ncols=True) as bar, logging_redirect_tqdm():
        solver.add_callback(lambda s, loss: (bar.update(1), bar.set_postfix(loss=f"{loss:.4g}", refresh=False)))
        yield


def run(args) -> int:
    with InterruptPolicy(args.command) as interrupts:
        return _train(args, interrupts)


def _train(args, interrupts: InterruptPolicy) -> int:
    from caffe_cae.commands import preflight
    from caffe_cae.solvers import get_solver

    path = solver_path(args)
    if args.iterations is not None and not 0 <= args.iterations <= 2**31 - 1:
        raise CaffeCaeError(f"--iterations must be 0..{2**31 - 1}, Caffe's int (got {args.iterations})")
    preflight.solver_file(path)
    preflight.weights_files(args.weights, "train")
    if args.snapshot:
        preflight.solverstate_file(args.snapshot)
    log.info("Using CPU (NumPy)")
    # caffe train: --weights replaces the solver's `weights` field, --snapshot drops it.
    solver = get_solver(path, weights=args.weights,
                        replace_weights=bool(args.weights or args.snapshot))
    if args.iterations is not None:
        solver.param.max_iter = args.iterations
    log.info("Starting Optimization")
    interrupts.solver = solver
    with progress_bar(solver, not args.no_progress):
        solver.solve(resume_file=args.snapshot)
    return 0


class InterruptPolicy:
    """Ctrl-C under ``train``: during set-up, one line and exit; while training, the first
    press snapshots and stops after the iteration, a second one ends the process at once with
    one line (a snapshot being written stays a ``.part`` file, which the next start removes).

    Presses are counted from signal's wakeup fd, so two presses that arrive while the main
    thread waits in C code (and Python runs its handler once) still count as two."""

    def __init__(self, command: str):
        self.command = command
        self.solver = None
        self.presses = 0

    def __enter__(self):
        self.main = threading.current_thread() is threading.main_thread()
        if not self.main:
            return self
        self.read_fd, write_fd = os.pipe()
        os.set_blocking(self.read_fd, False)
        os.set_blocking(write_fd, False)
        self.write_fd = write_fd
        self.previous_fd = signal.set_wakeup_fd(write_fd, warn_on_full_buffer=False)
        self.previous = signal.signal(signal.SIGINT, self._handler)
        return self

    def __exit__(self, *exc):
        if self.main:
            signal.signal(signal.SIGINT, self.previous)
            signal.set_wakeup_fd(self.previous_fd)
            os.close(self.read_fd)
            os.close(self.write_fd)
        return False

    def _pressed(self) -> int:
        try:
            data = os.read(self.read_fd, 1024)
        except BlockingIOError:
            data = b""
        return max(1, data.count(bytes([signal.SIGINT])))

    def _handler(self, signum, frame):
        self.presses += self._pressed()
        if self.solver is None:
            self._exit("interrupted")
        if self.presses >= 2:
            self._exit("interrupted again: stopped at once")
        log.warning("Interrupted: snapshotting and stopping after this iteration (Ctrl-C again to stop at once)")
        self.solver.request_stop(snapshot=True)

    def _exit(self, text: str) -> None:
        try:
            sys.stderr.write(f"caffe-cae {self.command}: {text}\n")
            sys.stderr.flush()
        finally:
            os._exit(EXIT_INTERRUPTED)
