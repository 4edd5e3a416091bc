"""``caffe-cae compute_image_mean [FLAGS] INPUT_DB [OUTPUT_FILE]``: Caffe's tool.

The mean image of every record of a LMDB/LevelDB of Datums (encoded images decoded as stored),
written as a BlobProto (``.binaryproto``: 1 x C x H x W) for ``transform_param { mean_file }``,
and the mean of each channel in the log (the numbers for ``mean_value``).  Summed and divided
in float32 as Caffe does, so the file equals Caffe's.  ``--backend`` takes Caffe's gflags
spellings (``-backend=leveldb``).

    caffe-cae compute_image_mean examples/cifar10/cifar10_train_lmdb examples/cifar10/mean.binaryproto
"""
from __future__ import annotations

import argparse

from caffe_cae.commands.gflags import add_flag


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "compute_image_mean", help="mean image of a database -> .binaryproto (Caffe's compute_image_mean)",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter, allow_abbrev=False,
    )
    parser.add_argument("input_db", metavar="INPUT_DB", help="LMDB/LevelDB of Datums")
    parser.add_argument("output_file", metavar="OUTPUT_FILE", nargs="?",
                        help="the mean BlobProto to write (without it only the channel means are logged)")
    add_flag(parser, "backend", str, "lmdb", "The backend {leveldb, lmdb} containing the images")
    parser.set_defaults(func=run)


def run(args) -> int:
    import logging

    from caffe_cae.data.db import BACKENDS
    from caffe_cae.data.mean import compute_image_mean
    from caffe_cae.errors import CaffeCaeError
    from caffe_cae.weights import write_binary

    if args.backend not in BACKENDS:
        raise CaffeCaeError(f"Unknown db backend {args.backend} (use lmdb or leveldb)")
    blob, _ = compute_image_mean(args.input_db, args.backend)
    if args.output_file:
        logging.getLogger(__name__).info("Write to %s", args.output_file)
        write_binary(args.output_file, blob)
    return 0
