"""``caffe-cae evaluate CODES.h5``: the papers' measures of a code (2019 paper, Table 4).

Average per-class error (%) of a linear classifier (LDA = Matlab's ``classify``) and of an MLP
(hidden 14/42/66 for 2/10/30-D codes, sigmoid + softmax) under 10-fold cross-validation; the
code's sparsity (% of elements below 30 % of the maximum, Sec. 5.1, on the signed values and on
magnitudes); the compression ratio
(Sec. 5.1, counting the switches stored in the codes file).
"""
from __future__ import annotations

import argparse
import json
import logging

from caffe_cae.commands.common import add_threads_argument
from caffe_cae.errors import CaffeCaeError

from caffe_cae.experiments import evaluate, sparsity

log = logging.getLogger(__name__)


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "evaluate", help="classification error, sparsity and compression ratio of a codes file",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("codes", help="codes file written by caffe-cae encode")
    parser.add_argument("--blob", help="dataset to evaluate (default: the file's code_blob)")
    parser.add_argument("--folds", type=int, default=10, help="cross-validation folds (default 10)")
    parser.add_argument("--classifiers", default="linear,mlp",
                        help="comma-separated subset of linear,mlp (default both)")
    parser.add_argument("--mlp-max-iter", type=int, default=evaluate.MLP_MAX_ITER,
                        help=f"L-BFGS iterations of the MLP (default {evaluate.MLP_MAX_ITER})")
    parser.add_argument("--threshold", type=float, default=0.3,
                        help="sparsity threshold as a fraction of the maximum (default 0.3)")
    parser.add_argument("--switch-bits", choices=sparsity.SWITCH_BIT_RULES, default="paper",
                        help="bits per switch in the compression ratio (default: the paper's floor(log2))")
    parser.add_argument("--no-switches", action="store_true",
                        help="the decoder needs no pooling switches (codes from infer, Models 1, 2, 4, 5)")
    parser.add_argument("--seed", type=int, default=0, help="fold shuffling / MLP initialisation seed")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    add_threads_argument(parser, default=1)
    parser.set_defaults(func=run)


def run(args) -> int:
    kinds = [k.strip() for k in args.classifiers.split(",") if k.strip()]
    unknown = [k for k in kinds if k not in evaluate.CLASSIFIERS]
    if unknown:
        raise CaffeCaeError(f"--classifiers: unknown {', '.join(map(repr, unknown))} "
                            f"(known: {', '.join(evaluate.CLASSIFIERS)})")
    if kinds and args.folds < 2:
        raise CaffeCaeError(f"--folds must be at least 2 (got {args.folds})")
    if args.mlp_max_iter < 1:
        raise CaffeCaeError(f"--mlp-max-iter must be at least 1 (got {args.mlp_max_iter})")
    if not 0.0 <= args.threshold <= 1.0:
        raise CaffeCaeError(f"--threshold is a fraction of the maximum, 0..1 (got {args.threshold:g})")
    codes, labels, switches = evaluate.read_codes(args.codes, args.blob)
    if switches is None and not args.no_switches:
        log.warning("%s: no switch inventory (the file was not written by `caffe-cae encode`, e.g. by `infer`): "
                    "the compression ratio is unknown, since the decoder may need the pooling switches; "
                    "encode the codes with `caffe-cae encode`, or pass --no-switches if the decoder needs none",
                    args.codes)
    elif args.no_switches:
        switches = []
    result = evaluate.evaluate_codes(codes, labels, switches, folds=args.folds, seed=args.seed,
                                     classifiers=kinds, mlp_max_iter=args.mlp_max_iter,
                                     sparsity_fraction=args.threshold, switch_rule=args.switch_bits,
                                     source=args.codes)
    if args.json:
        print(json.dumps(result.as_dict(), indent=2))
        return 0
    fmt = lambda v: "-" if v is None else f"{v:.2f} %"  # noqa: E731
    print(f"codes:        {result.samples} x {result.code_dim}")
    print(f"linear error: {fmt(result.linear_error)}  (average per-class, {args.folds}-fold CV)")
    print(f"MLP error:    {fmt(result.mlp_error)}")
    print(f"sparsity:     {result.sparsity:.1f} %  (elements < {args.threshold:g} x max)")
    print(f"              {result.sparsity_magnitude:.1f} %  of magnitudes (|elements| < {args.threshold:g} x max |element|)")
    if result.compression is None:
        print("compression:  unknown  (no switch inventory in the codes file; see the warning above)")
    else:
        print(f"compression:  {result.compression:.1f} %"
              + (f"  (switches {result.switches})" if result.switches else ""))
    return 0
