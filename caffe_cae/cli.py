"""The ``caffe-cae`` command line: one sub-command per module in ``caffe_cae.commands``.

Each command module defines ``register(subparsers)``, which adds its parser and sets
``func(args) -> int``.  User errors (:class:`CaffeCaeError`) become one line on stderr and exit
status 1; ``--debug`` shows the traceback instead.
"""
from __future__ import annotations

import argparse
import importlib
import logging
import sys

from caffe_cae import __version__
from caffe_cae.errors import CaffeCaeError

# Order = order in --help.  Each name is a module in caffe_cae.commands.
COMMANDS = [
    "show",
    "migrate",
    "gen",
    "params",
    "layers",
    "data",
    "convert_imageset",
    "compute_image_mean",
    "encode",
    "evaluate",
    "reproduce",
    "train",
    "test",
    "timing",
    "export",
    "infer",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="caffe-cae",
        description="Caffe nets and the convolutional auto-encoders of Turchenko et al. "
        "without a Caffe build.",
    )
    parser.add_argument("--version", action="version", version=f"caffe-cae {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks for errors")
    parser.add_argument("-q", "--quiet", action="store_true", help="only warnings and errors in the log")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"caffe_cae.commands.{name}").register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
        return 2
    logging.basicConfig(
        level=logging.WARNING if args.quiet else logging.INFO,
        format="%(message)s",
        stream=sys.stderr,
    )
    try:
        from caffe_cae import engine
        from caffe_cae.parallel import limit_threads

        engine.current()  # a bad CAFFE_CAE_ENGINE is this command's one-line error
        if (getattr(args, "threads", None) or 0) < 0:
            raise CaffeCaeError(f"--threads must be 0 (the libraries' defaults) or more (got {args.threads})")
        from caffe_cae.layers.python_layer import allow_python_layers

        python_layers = True if getattr(args, "allow_python_layers", False) else None
        with limit_threads(getattr(args, "threads", None)), allow_python_layers(python_layers):
            return int(args.func(args) or 0)
    except CaffeCaeError as err:
        if args.debug:
            raise
        one_line = " ".join(part.strip() for part in str(err).splitlines() if part.strip())  # e.g. HDF5's
        print(f"caffe-cae {args.command}: error: {one_line}", file=sys.stderr)
        return getattr(err, "exit_status", 1)  # e.g. migrate: 2 = unparsable input, as Caffe's tools
    except KeyboardInterrupt:
        print(f"caffe-cae {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
