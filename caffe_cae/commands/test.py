"""``caffe-cae test``: score a trained net, like ``caffe test``.

    caffe-cae test --model train_test.prototxt --weights snap_iter_1000.caffemodel --iterations 100

Runs the net in the TEST phase (``--phase TRAIN`` to change) for N forward passes, logs every
batch's outputs (``Batch i, name = v``) and prints the mean of each output (with its loss
weight) and the mean loss, as Caffe does.
"""
from __future__ import annotations

import argparse

from caffe_cae.commands.common import add_python_layers_argument, add_threads_argument
import logging

import numpy as np

from caffe_cae.errors import CaffeCaeError

log = logging.getLogger(__name__)


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "test",
        help="score a net with trained weights over N batches (caffe test)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_model_arguments(parser, default_phase="TEST")
    parser.add_argument("--weights", metavar="W[,W...]", help="caffemodel(s) to score (required)")
    parser.add_argument("--iterations", type=int, default=50, metavar="N", help="batches to run (default 50)")
    add_threads_argument(parser, default=None)
    add_python_layers_argument(parser)
    parser.set_defaults(func=run)


def add_model_arguments(parser, default_phase: str) -> None:
    """``MODEL`` / ``--model``, ``--phase``, ``--level``, ``--stage`` (shared with ``time``)."""
    parser.add_argument("model_file", nargs="?", metavar="MODEL", help="net prototxt (same as --model)")
    parser.add_argument("--model", help="net prototxt")
    parser.add_argument("--phase", choices=("TRAIN", "TEST"), default=default_phase,
                        help=f"net phase (default {default_phase})")
    parser.add_argument("--level", type=int, default=0, help="NetState level (default 0)")
    parser.add_argument("--stage", action="append", default=[], metavar="STAGE",
                        help="NetState stage (repeatable)")


def build_net(args, weights=None):
    """The Net named by the arguments, with the weights (comma-separated list) copied in."""
    from caffe_cae import TEST, TRAIN, Net

    if args.model and args.model_file and args.model != args.model_file:
        raise CaffeCaeError("give the model once (either MODEL or --model)")
    model = args.model or args.model_file
    if not model:
        raise CaffeCaeError(f"need a model: caffe-cae {args.command} --model NET.prototxt")
    if args.iterations < 1:
        raise CaffeCaeError(f"--iterations must be >= 1 (got {args.iterations})")
    from caffe_cae.commands import preflight

    preflight.net_file(model)
    preflight.weights_files(weights, args.command)
    net = Net(model, phase=TRAIN if args.phase == "TRAIN" else TEST, level=args.level, stages=tuple(args.stage))
    for path in (weights or "").split(","):
        if path:
            net.copy_from(path)
    return net


def score(net, iterations: int):
    """Caffe's ``test()``: ``([(output name, mean value, loss weight)], mean loss)`` over
    ``iterations`` forward passes, every output element separately."""
    sums = None
    names = []
    loss = 0.0
    loss_weights = net.blob_loss_weights
    for i in range(iterations):
        loss += net.forward_loss()
        values = []
        for name in net.outputs:
            for v in np.asarray(net.blobs[name].data, np.float32).ravel():
                log.info("Batch %d, %s = %g", i, name, v)
                values.append(float(v))
                if sums is None:
                    names.append(name)
        sums = np.array(values) if sums is None else sums + values
    means = [] if sums is None else [
        (name, float(s) / iterations, float(loss_weights.get(name, 0.0))) for name, s in zip(names, sums)
    ]
    return means, loss / iterations


def run(args) -> int:
    if not args.weights:
        raise CaffeCaeError("need model weights to score: --weights W.caffemodel")
    net = build_net(args, args.weights)
    log.info("Running for %d iterations.", args.iterations)
    means, loss = score(net, args.iterations)
    print(f"Loss: {loss:g}")
    for name, mean, weight in means:
        tail = f" (* {weight:g} = {weight * mean:g} loss)" if weight else ""
        print(f"{name} = {mean:g}{tail}")
    return 0
