"""``caffe-cae gen MODEL``: write one of the papers' nets (or its solver) as prototxt.

Models: the 2019 paper's model1..model5, the 2017 paper's small model (cae2017-model1), the deep
auto-encoder (deep-ae) and the Siamese baseline (siamese); ``--list`` describes them.  The net goes
to stdout unless ``-o FILE`` is given.  Examples::

    caffe-cae gen model4 --dim 10 -o model4.prototxt
    caffe-cae gen model4 --solver --net model4.prototxt -o model4_solver.prototxt
    caffe-cae gen model3 --syntax legacy            # V1 layers for Noh's Caffe fork
    caffe-cae gen model4 --deploy --dim 10          # Input layer "data" 1x1x28x28, no losses
"""
from __future__ import annotations

import argparse
import sys

from caffe_cae import generate, zoo
from caffe_cae.errors import CaffeCaeError
from caffe_cae.fileio import atomic_write_bytes


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "gen",
        help="generate a net or solver prototxt of the papers' models",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("model", nargs="?", help="model name (see --list)")
    parser.add_argument("--list", action="store_true", help="list the models with one-line descriptions")
    parser.add_argument("--dim", type=int, default=2, metavar="N", help="code size N (papers: 2, 10, 30; default 2)")
    parser.add_argument("--syntax", choices=zoo.SYNTAXES, default="new",
                        help="new: layer {} (BVLC Caffe); legacy: V1 layers {} as Noh's fork reads them")
    parser.add_argument("--batch", type=int, metavar="B",
                        help=f"batch size (default {zoo.DEFAULT_BATCH}; deploy {zoo.DEFAULT_DEPLOY_BATCH})")
    parser.add_argument("--train-source", metavar="LIST",
                        help=f"HDF5 list file of the TRAIN data layer (default {zoo.DEFAULT_TRAIN_SOURCE})")
    parser.add_argument("--test-source", metavar="LIST",
                        help=f"HDF5 list file of the TEST data layer (default {zoo.DEFAULT_TEST_SOURCE})")
    parser.add_argument("--deploy", action="store_true",
                        help="inference net: Input layer 'data' instead of data layers, no losses")
    parser.add_argument("--solver", action="store_true", help="write the model's solver instead of the net")
    parser.add_argument("--net", metavar="FILE", help="with --solver: the net file it trains (default MODEL.prototxt)")
    parser.add_argument("--snapshot-prefix", metavar="PREFIX", help="with --solver: default MODEL")
    parser.add_argument("--solver-mode", choices=("CPU", "GPU"), default="CPU", help="with --solver (default CPU)")
    parser.add_argument("--seed", type=int, help="with --solver: random_seed")
    parser.add_argument("-o", "--output", metavar="FILE", help="write here (atomically) instead of stdout")
    parser.set_defaults(func=run)


def list_models() -> str:
    width = max(len(name) for name in zoo.MODELS)
    return "".join(f"{name:<{width}}  {spec.description}\n" for name, spec in zoo.MODELS.items())


def run(args) -> int:
    if args.list:
        print(list_models(), end="")
        return 0
    if not args.model:
        raise CaffeCaeError("give a model name (caffe-cae gen --list shows them)")
    if args.solver:
        if args.deploy or args.train_source or args.test_source:
            raise CaffeCaeError("--solver takes no --deploy, --train-source or --test-source (they are net options)")
        text = generate.solver_text(args.model, net=args.net, dim=args.dim, syntax=args.syntax, batch=args.batch,
                                    snapshot_prefix=args.snapshot_prefix, solver_mode=args.solver_mode,
                                    random_seed=args.seed)
    else:
        if args.net or args.snapshot_prefix or args.seed is not None:
            raise CaffeCaeError("--net, --snapshot-prefix and --seed are solver options (add --solver)")
        if args.deploy and (args.train_source or args.test_source):
            raise CaffeCaeError("a --deploy net has no data layers: drop --train-source/--test-source")
        text = generate.net_text(args.model, dim=args.dim, syntax=args.syntax, batch=args.batch,
                                 train_source=args.train_source, test_source=args.test_source,
                                 deploy=args.deploy)
    if args.output:
        atomic_write_bytes(args.output, text.encode("utf-8"))
    else:
        sys.stdout.write(text)
    return 0
