"""``caffe-cae convert_imageset [FLAGS] ROOTFOLDER/ LISTFILE DB_NAME``: Caffe's tool.

Converts the images named in LISTFILE (``subfolder1/file1.JPEG 7`` per line: a path and an
integer label, split at the last space) into a new LMDB or LevelDB of Datum records, the input
of Caffe's ``Data`` layer.  Files are ROOTFOLDER + path (plain concatenation, as Caffe: end
ROOTFOLDER with a slash).  Keys are ``%08d_<path>`` with the line number, values serialised
Datums: real Caffe reads the result.

Images are read as OpenCV reads them (BGR; ``--gray`` for one channel) and stored raw, or with
``--encoded`` as image files (the original bytes when possible, else re-encoded as
``--encode_type``).  ``--resize_height``/``--resize_width`` (both) resize with OpenCV's bilinear
resize.  An image that cannot be read is reported and left out, as Caffe does.  Flags take
Caffe's gflags spellings (``--resize_height=256``, ``-backend lmdb``, ``--shuffle``).
A progress bar shows on a terminal.

    caffe-cae convert_imageset --resize_height=256 --resize_width=256 --shuffle \\
        data/train/ data/train.txt examples/imagenet/train_lmdb
"""
from __future__ import annotations

import argparse

from caffe_cae.commands.gflags import add_flag


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "convert_imageset", help="image files + labels -> LMDB/LevelDB of Datums (Caffe's convert_imageset)",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter, allow_abbrev=False,
    )
    parser.add_argument("root_folder", metavar="ROOTFOLDER/", help="prefix of every listed path")
    parser.add_argument("list_file", metavar="LISTFILE", help="lines of '<path> <label>'")
    parser.add_argument("db_name", metavar="DB_NAME", help="the database to create (must not exist)")
    add_flag(parser, "gray", bool, False, "When this option is on, treat images as grayscale ones")
    add_flag(parser, "shuffle", bool, False, "Randomly shuffle the order of images and their labels")
    add_flag(parser, "backend", str, "lmdb", "The backend {lmdb, leveldb} for storing the result")
    add_flag(parser, "resize_width", int, 0, "Width images are resized to")
    add_flag(parser, "resize_height", int, 0, "Height images are resized to")
    add_flag(parser, "check_size", bool, False,
             "When this option is on, check that all the datum have the same size")
    add_flag(parser, "encoded", bool, False, "When this option is on, the encoded image will be save in datum")
    add_flag(parser, "encode_type", str, "",
             "Optional: What type should we encode the image as ('png','jpg',...).")
    parser.add_argument("--seed", type=int, help="seed of --shuffle's order (not a Caffe flag; default: random)")
    parser.set_defaults(func=run)


def run(args) -> int:
    from caffe_cae.data.convert import convert_imageset

    convert_imageset(args.root_folder, args.list_file, args.db_name, gray=args.gray, shuffle=args.shuffle,
                     backend=args.backend, resize_height=args.resize_height, resize_width=args.resize_width,
                     check_size=args.check_size, encoded=args.encoded, encode_type=args.encode_type,
                     seed=args.seed)
    return 0
