"""``caffe-cae show FILE``: print a prototxt, caffemodel or solverstate as Caffe's tools print it.

Binary files print without their numbers by default (one line per blob with its shape);
``--full`` prints every value like protobuf's text format.
"""
from __future__ import annotations

import argparse
import copy

from caffe_cae import prototxt, weights
from caffe_cae.errors import CaffeCaeError
from caffe_cae.proto import caffe_pb2

KINDS = ("auto", "net", "solver", "caffemodel", "solverstate")


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "show",
        help="print a prototxt, .caffemodel or .solverstate in Caffe's canonical text form",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("file", help="a net or solver prototxt, .caffemodel(.h5) or .solverstate(.h5)")
    parser.add_argument("--kind", choices=KINDS, default="auto", help="what the file is (default: from its name)")
    parser.add_argument("--full", action="store_true", help="print blob values too")
    parser.set_defaults(func=run)


def guess_kind(path: str) -> str:
    name = path.lower()
    if name.endswith((".caffemodel", ".caffemodel.h5")):
        return "caffemodel"
    if name.endswith((".solverstate", ".solverstate.h5")):
        return "solverstate"
    if "solver" in name.rsplit("/", 1)[-1]:
        return "solver"
    return "net"


def _summarise_blobs(message) -> None:
    """Replace every BlobProto's values by nothing, keeping its shape (in place)."""
    for field, value in message.ListFields():
        if field.message_type is None:
            continue
        items = value if field.is_repeated else [value]
        for item in items:
            if isinstance(item, caffe_pb2.BlobProto):
                if not item.HasField("shape") and not weights.blob_has_legacy_dims(item):
                    # Caffe writes a 0-d blob (Scale/Bias with num_axes 0) with no dims at all:
                    # one value, shown as an empty shape.
                    values = len(item.data) or len(item.double_data)
                    if values == 1:
                        item.shape.SetInParent()
                    else:
                        item.shape.dim.append(values)
                for name in ("data", "diff", "double_data", "double_diff"):
                    item.ClearField(name)
            else:
                _summarise_blobs(item)


def run(args) -> int:
    if args.kind == "auto" and args.file.lower().endswith(".onnx"):
        raise CaffeCaeError(f"{args.file}: is an ONNX model; show prints Caffe's files (onnx's own tools print "
                            f"ONNX models)")
    kind = guess_kind(args.file) if args.kind == "auto" else args.kind
    if kind == "net":
        message = prototxt.read_net_text(args.file)
    elif kind == "solver":
        message = prototxt.read_solver_text(args.file)
    elif kind == "caffemodel":
        if weights.is_hdf5(args.file):
            for layer, arrays in weights.read_weights_hdf5(args.file).items():
                shapes = ", ".join(str(list(a.shape)) for a in arrays)
                print(f"{layer}: {shapes}")
            return 0
        message = weights.read_net_binary(args.file)
    elif kind == "solverstate":
        message = weights.read_solverstate(args.file)
    else:  # pragma: no cover - argparse restricts the choices
        raise CaffeCaeError(f"unknown kind {kind!r}")
    if not args.full and kind in ("caffemodel", "solverstate"):
        message = copy.deepcopy(message)
        _summarise_blobs(message)
    print(prototxt.to_text(message), end="")
    return 0
