"""``caffe-cae encode NET WEIGHTS DATA.h5 --out CODES.h5``: run a trained net over a data set and
save blobs (default the internal code ``ip2encode``) with the labels to HDF5.

NET may be the train/test prototxt the solver used: its data layers are replaced by an Input
layer fed from DATA.h5's datasets of the same names (``data``), batch by batch.  The codes file
holds one dataset per ``--blob``, ``label``, and the switches the decoder consumes (for the
compression ratio of ``caffe-cae evaluate``).
"""
from __future__ import annotations

import argparse
import os

from caffe_cae.commands.common import add_python_layers_argument, add_threads_argument
from caffe_cae.errors import CaffeCaeError

from caffe_cae.experiments import encode


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "encode", help="run a trained net over an HDF5 data set and save a blob (the code) with labels",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("net", help="net prototxt (train/test or deploy)")
    parser.add_argument("weights", help="trained .caffemodel or .caffemodel.h5")
    parser.add_argument("data", help="HDF5 data file, e.g. mnist/mnist_test.h5")
    parser.add_argument("--out", required=True, help="codes file to write (.h5)")
    parser.add_argument("--blob", action="append", dest="blobs", metavar="NAME",
                        help="blob to save (repeatable; the first is the code; default ip2encode)")
    parser.add_argument("--batch", type=int, default=100, help="samples per forward pass (default 100)")
    parser.add_argument("--limit", type=int, help="encode only the first N samples")
    add_threads_argument(parser, default=1)
    add_python_layers_argument(parser)
    parser.set_defaults(func=run)


def run(args) -> int:
    if args.batch < 1:
        raise CaffeCaeError(f"--batch must be at least 1 (got {args.batch})")
    if args.limit is not None and args.limit < 1:
        raise CaffeCaeError(f"--limit must be at least 1 (got {args.limit})")
    if os.path.isdir(args.out):  # before the work, not after it
        raise CaffeCaeError(f"{args.out}: is a directory, expected a file to write")
    from caffe_cae.commands import preflight
    from caffe_cae.fileio import check_input_file

    preflight.net_file(args.net)
    preflight.weights_files(args.weights, "encode")
    check_input_file(args.data, "an HDF5 data file")
    blobs = args.blobs or ["ip2encode"]
    codes, labels, switches = encode.encode_h5(args.net, args.weights, args.data, blobs,
                                               batch_size=args.batch, limit=args.limit, progress=True)
    encode.write_codes(args.out, codes, labels, switches=switches,
                       attrs={"net": args.net, "weights": args.weights, "data": args.data})
    first = codes[blobs[0]]
    print(f"{args.out}: {blobs[0]} {list(first.shape)}"
          + (f", {len(labels)} labels" if labels is not None else ", no labels"))
    return 0
