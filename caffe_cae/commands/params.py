"""``caffe-cae params NET.prototxt``: per-layer weights, biases and blob sizes, and the totals.

Computed by shape inference alone: nothing is allocated, and of the data only what tells its
shape is read (one LMDB/LevelDB record, the first image of an ImageData list, the dataset shapes
of an HDF5Data layer's first file).  The totals are the papers' measures: trainable parameters
|w+b| (a Siamese net's shared weights counted in both branches, as Table 2 does, and once as
"unique") and the model size (hidden feature-map elements and neurons per sample, Table 1).
Legacy V0/V1 nets are upgraded first.

Data shapes: --input-shape BLOB=C,H,W wins; else the data source; else what the layer's
parameters fix (crop_size, the channels of mean_value/mean_file/is_color, labels), with a
warning; otherwise the command stops and asks for --input-shape (it never guesses).  E.g. a
generated paper net before `caffe-cae data mnist` made its HDF5 files:

    caffe-cae params model3.prototxt --input-shape data=1,28,28
"""
from __future__ import annotations

import argparse
import logging

from caffe_cae import params
from caffe_cae.commands.common import add_input_shape_argument, add_python_layers_argument, input_shapes


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
    add_input_shape_argument(parser)
    add_python_layers_argument(parser)
    parser.set_defaults(func=run)


def run(args) -> int:
    from caffe_cae.commands import preflight

    shapes = input_shapes(args)
    preflight.net_file(args.net)
    # Net construction logs every layer as Caffe does; the table says it better here.
    quiet = [logging.getLogger(n) for n in ("caffe_cae.netgraph", "caffe_cae.layers", "caffe_cae.migrate", "caffe_cae.data")]
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
