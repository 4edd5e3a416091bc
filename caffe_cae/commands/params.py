"""``caffe-cae params NET.prototxt``: per-layer weights, biases and blob sizes, and the totals.

Computed by shape inference alone (nothing is allocated or read but the net, and at most the
shapes of an HDF5Data layer's first file).  The totals are the papers' measures: trainable
parameters |w+b| (a Siamese net's shared weights counted in both branches, as Table 2 does, and
once as "unique") and the model size (hidden feature-map elements and neurons per sample, Table 1).
Legacy V0/V1 nets are upgraded first.  Data layers whose files are not at hand get MNIST shapes
(data 1x28x28, pair_data 2x28x28, label/sim scalars); ``--input-shape`` overrides.
"""
from __future__ import annotations

import argparse
import logging

from caffe_cae import params
from caffe_cae.errors import CaffeCaeError
from caffe_cae.commands.common import add_python_layers_argument


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "params",
        help="count parameters and blob sizes of a net (shape inference only)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("net", help="net prototxt (any syntax)")
    parser.add_argument("--phase", choices=("TRAIN", "TEST"), default="TRAIN", help="net phase (default TRAIN)")
    parser.add_argument("--stage", action="append", default=[], help="net state stage (repeatable)")
    parser.add_argument("--level", type=int, default=0, help="net state level (default 0)")
    parser.add_argument("--input-shape", action="append", default=[], metavar="BLOB=C,H,W",
                        help="per-sample shape of a data/Input top (repeatable), e.g. data=1,28,28")
    add_python_layers_argument(parser)
    parser.set_defaults(func=run)


def parse_input_shape(text: str) -> tuple[str, tuple[int, ...]]:
    """``data=1,28,28`` -> ("data", (1, 28, 28)); ``sim=`` is a per-sample scalar."""
    name, sep, dims = text.partition("=")
    try:
        if not sep or not name:
            raise ValueError
        shape = tuple(int(d) for d in dims.replace("x", ",").split(",") if d.strip())
        if any(d < 1 for d in shape):
            raise ValueError
    except ValueError:
        raise CaffeCaeError(f"--input-shape {text!r}: expected BLOB=C,H,W with positive sizes") from None
    return name, shape


def run(args) -> int:
    shapes = dict(parse_input_shape(s) for s in args.input_shape)
    # Net construction logs every layer as Caffe does; the table says it better here.
    quiet = [logging.getLogger(n) for n in ("caffe_cae.netgraph", "caffe_cae.layers", "caffe_cae.migrate")]
    levels = [lg.level for lg in quiet]
    for lg in quiet:
        lg.setLevel(max(logging.WARNING, lg.getEffectiveLevel()))
    try:
        report = params.count_params(args.net, phase=args.phase, stages=tuple(args.stage),
                                     level=args.level, input_shapes=shapes)
    finally:
        for lg, level in zip(quiet, levels):
            lg.setLevel(level)
    print(params.format_report(report), end="")
    return 0
