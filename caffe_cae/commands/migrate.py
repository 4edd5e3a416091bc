"""``caffe-cae migrate``: upgrade legacy Caffe nets, solvers and weights to the current syntax.

  caffe-cae migrate OLD.prototxt [-o NEW.prototxt]       a net (V0, V1 or Noh's fork)
  caffe-cae migrate --solver OLD_solver.prototxt [-o NEW] a solver (solver_type -> type)
  caffe-cae migrate OLD.caffemodel -o NEW.caffemodel     binary weights

Text is printed like Caffe's upgrade_net_proto_text (fields in field-number order, two-space
indent); the comment block at the top of the input is kept.  What the upgrade did goes to stderr,
including every Reshape inserted after an InnerProduct that feeds a spatial layer
(--no-reshape-fix turns that off).  Exit status, as Caffe's tools: 1 when something could not be
carried over (the output is still written) or the input is refused, 2 when it does not parse.
"""
from __future__ import annotations

import argparse
import logging
import sys

from caffe_cae import prototxt, weights
from caffe_cae.errors import CaffeCaeError
from caffe_cae.fileio import atomic_write_bytes
from caffe_cae.migrate import (has_problems, net_needs_upgrade, solver_needs_upgrade,
                               upgrade_caffemodel_with_notes, upgrade_net, upgrade_solver)
from caffe_cae.migrate.text import read_legacy_text
from caffe_cae.proto import caffe_pb2

logger = logging.getLogger(__name__)

BINARY_SUFFIXES = (".caffemodel",)


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "migrate",
        help="upgrade a legacy net prototxt, solver or .caffemodel to the current Caffe syntax",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("file", help="legacy net prototxt, solver prototxt (--solver) or .caffemodel")
    parser.add_argument("-o", "--output", help="where to write (default: stdout; required for .caffemodel)")
    parser.add_argument("--solver", action="store_true", help="the file is a solver prototxt")
    parser.add_argument("--binary", action="store_true",
                        help="the file is a binary NetParameter (default for *.caffemodel)")
    parser.add_argument("--no-reshape-fix", dest="reshape_fix", action="store_false",
                        help="do not insert Reshape (0,0,1,1) after InnerProduct tops that feed "
                             "Convolution/Deconvolution/Pooling/Unpooling")
    parser.add_argument("--keep-legacy-dims", action="store_true",
                        help="caffemodel: keep blobs' num/channels/height/width exactly as Caffe's "
                             "upgrade_net_proto_binary does (default: modern shapes, IP (N,K)/(N))")
    parser.add_argument("--no-comments", dest="comments", action="store_false",
                        help="do not copy the input's leading comment block")
    parser.set_defaults(func=run)


def run(args) -> int:
    if args.solver and args.binary:
        raise CaffeCaeError("--solver and --binary exclude each other")
    if args.binary or (not args.solver and args.file.lower().endswith(BINARY_SUFFIXES)):
        return _migrate_caffemodel(args)
    if args.file.lower().endswith(".h5"):
        raise CaffeCaeError(f"{args.file}: HDF5 weights have no legacy syntax to migrate")
    if args.solver:
        return _migrate_solver(args)
    return _migrate_net(args)


def _unparsable(err: CaffeCaeError) -> CaffeCaeError:
    """Caffe's upgrade tools exit 2 when the input does not parse ("Failed to parse input ...")."""
    err.exit_status = 2
    return err


def _finish(notes, kind: str, output: str | None) -> int:
    if output and output != "-":
        logger.info("Wrote upgraded %s to %s", kind, output)
    if has_problems(notes):
        logger.error("Encountered error(s) while upgrading; see details above.")
        return 1
    return 0


def _write_text(output: str | None, header: str, message) -> None:
    """Print like Caffe's tools, after the kept comment block and one blank line."""
    text = (header + "\n" if header else "") + prototxt.to_text(message)
    if output and output != "-":
        atomic_write_bytes(output, text.encode("utf-8"))
    else:
        sys.stdout.write(text)
        sys.stdout.flush()


def _migrate_net(args) -> int:
    try:
        net, header = read_legacy_text(args.file, caffe_pb2.NetParameter)
    except CaffeCaeError as err:
        if "has no field named" in str(err) and _parses_as_solver(args.file):
            raise _unparsable(CaffeCaeError(f"{args.file}: this is a solver, not a net; use "
                                            f"'caffe-cae migrate --solver {args.file}'")) from None
        raise _unparsable(err)
    if not net_needs_upgrade(net):
        logger.info("File already in latest proto format: %s", args.file)
    upgraded, notes = upgrade_net(net, source=args.file, reshape_fix=args.reshape_fix)
    _write_text(args.output, header if args.comments else "", upgraded)
    return _finish(notes, "NetParameter text proto", args.output)


def _parses_as_solver(path: str) -> bool:
    try:
        prototxt.read_solver_text(path)
    except CaffeCaeError:
        return False
    return True


def _migrate_solver(args) -> int:
    try:
        solver, header = read_legacy_text(args.file, caffe_pb2.SolverParameter)
    except CaffeCaeError as err:
        raise _unparsable(err)
    if not solver_needs_upgrade(solver):
        logger.info("File already in latest proto format: %s", args.file)
    upgraded, notes = upgrade_solver(solver, source=args.file)
    _write_text(args.output, header if args.comments else "", upgraded)
    return _finish(notes, "SolverParameter text proto", args.output)


def _migrate_caffemodel(args) -> int:
    if not args.output or args.output == "-":
        raise CaffeCaeError(f"{args.file}: binary weights need an output file (-o NEW.caffemodel)")
    try:
        net = weights.read_net_binary(args.file)
    except CaffeCaeError as err:
        raise _unparsable(err)
    if not net_needs_upgrade(net):
        logger.info("File already in latest proto format: %s", args.file)
    upgraded, notes = upgrade_caffemodel_with_notes(net, source=args.file,
                                                    keep_legacy_dims=args.keep_legacy_dims)
    weights.write_binary(args.output, upgraded)
    return _finish(notes, "NetParameter binary proto", args.output)
