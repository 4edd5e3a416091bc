"""``caffe-cae time``: per-layer forward/backward timing of a net, like ``caffe time``.

    caffe-cae time --model model4.prototxt --iterations 20

The net is built in the TRAIN phase (as Caffe's default); each iteration runs every layer's
forward, then every layer's backward, timed one layer at a time.  Prints the average
milliseconds per layer and per pass.
"""
from __future__ import annotations

import argparse
import logging
import time

from caffe_cae.commands.common import add_python_layers_argument, add_threads_argument
from caffe_cae.commands.test import add_model_arguments, build_net

log = logging.getLogger(__name__)


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "time",
        aliases=["timing"],
        help="benchmark a net's forward/backward per layer (caffe time)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_model_arguments(parser, default_phase="TRAIN")
    parser.add_argument("--weights", metavar="W[,W...]", help="optional caffemodel(s) to load first")
    parser.add_argument("--iterations", type=int, default=50, metavar="N", help="iterations (default 50)")
    add_threads_argument(parser, default=None)
    add_python_layers_argument(parser)
    parser.set_defaults(func=run)


def benchmark(net, iterations: int) -> dict:
    """Average milliseconds: ``{"forward": [per layer], "backward": [per layer],
    "forward_pass", "backward_pass", "forward_backward", "total"}`` over ``iterations``."""
    n_layers = len(net.layers)
    log.info("Performing Forward")
    log.info("Initial loss: %g", net.forward_loss())
    log.info("Performing Backward")
    net.backward_from_to(n_layers - 1, 0)
    forward = [0.0] * n_layers
    backward = [0.0] * n_layers
    forward_total = backward_total = 0.0
    clock = time.perf_counter
    log.info("*** Benchmark begins ***")
    log.info("Testing for %d iterations.", iterations)
    start_all = clock()
    for j in range(iterations):
        start_iter = clock()
        for i in range(n_layers):
            t = clock()
            net.forward_from_to(i, i, continue_pass=i > 0)
            forward[i] += clock() - t
        mid = clock()
        forward_total += mid - start_iter
        for i in range(n_layers - 1, -1, -1):
            t = clock()
            net.backward_from_to(i, i)
            backward[i] += clock() - t
        backward_total += clock() - mid
        log.info("Iteration: %d forward-backward time: %.4g ms.", j + 1, (clock() - start_iter) * 1e3)
    total = clock() - start_all
    scale = 1e3 / iterations
    return {
        "forward": [t * scale for t in forward],
        "backward": [t * scale for t in backward],
        "forward_pass": forward_total * scale,
        "backward_pass": backward_total * scale,
        "forward_backward": total * scale,
        "total": total * 1e3,
    }


def run(args) -> int:
    net = build_net(args, args.weights)
    result = benchmark(net, args.iterations)
    print("Average time per layer: ")
    for name, fwd, bwd in zip(net.layer_names, result["forward"], result["backward"]):
        print(f"{name:>10}\tforward: {fwd:.4g} ms.")
        print(f"{name:>10}\tbackward: {bwd:.4g} ms.")
    print(f"Average Forward pass: {result['forward_pass']:.4g} ms.")
    print(f"Average Backward pass: {result['backward_pass']:.4g} ms.")
    print(f"Average Forward-Backward: {result['forward_backward']:.4g} ms.")
    print(f"Total Time: {result['total']:.4g} ms.")
    return 0
