"""``caffe-cae export NET WEIGHTS -o model.onnx``: a trained net as an ONNX model.

The TEST-phase graph is exported: data layers become inputs with a dynamic batch axis, loss and
accuracy layers are left out, and the chosen blobs become outputs (default: every blob the net
computes that no remaining layer consumes, e.g. the reconstruction ``deconv1neursig``).

No data is needed: an input's shape comes from --input-shape, else the data source when it is
there (one record), else the data layer's parameters (crop_size and the channels its mean or
is_color fix); a train_val net whose data is elsewhere exports with e.g. --input-shape
data=1,28,28.  The data layer's transformation (mean, scale, crop) is not part of the model:
feed it prepared input.

The graph is optimised for onnxruntime without changing values: a top-left Unpooling (no
switches) and the Deconvolution reading it become one strided ConvTranspose, a Deconvolution
of a 1x1 map becomes a Gemm, and BatchNorm (stored statistics), Scale and Bias after a
Convolution, Deconvolution or InnerProduct fold into its weights.  ``--no-fuse`` keeps one node
group per layer.
"""
from __future__ import annotations

import argparse
import logging

from caffe_cae.commands.common import add_input_shape_argument, input_shapes
from caffe_cae.onnx.graph import DEFAULT_OPSET, MAX_OPSET, MIN_OPSET
from caffe_cae.commands.common import add_python_layers_argument

log = logging.getLogger(__name__)


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "export", help="export a net and its weights to ONNX", description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("net", help="net prototxt (any syntax; legacy files are upgraded)")
    parser.add_argument("weights", nargs="?", help=".caffemodel or .caffemodel.h5 (default: the fillers' values)")
    parser.add_argument("-o", "--output", required=True, help="the .onnx file to write")
    parser.add_argument("--outputs", help="comma-separated blobs to output, e.g. ip2encode,deconv1neursig")
    parser.add_argument("--no-fuse", action="store_true",
                        help="no graph rewrites: every layer keeps its own nodes (see above)")
    add_input_shape_argument(parser)
    parser.add_argument("--opset", type=int, default=DEFAULT_OPSET, help=f"ONNX opset, {MIN_OPSET}..{MAX_OPSET} (default {DEFAULT_OPSET})")
    add_python_layers_argument(parser)
    parser.set_defaults(func=run)


def run(args) -> int:
    from caffe_cae.commands import preflight
    from caffe_cae.onnx import export, save

    preflight.net_file(args.net)
    preflight.weights_files(args.weights, "export")
    outputs = [b.strip() for b in args.outputs.split(",") if b.strip()] if args.outputs else None
    model = export(args.net, args.weights, outputs=outputs, opset=args.opset, optimize=not args.no_fuse,
                   input_shapes=input_shapes(args))
    save(model, args.output)
    names = ", ".join(f"{o.name} {_dims(o)}" for o in model.graph.output)
    log.info("Inputs: %s; outputs: %s", ", ".join(f"{i.name} {_dims(i)}" for i in model.graph.input), names)
    return 0


def _dims(value_info) -> str:
    dims = value_info.type.tensor_type.shape.dim
    return "x".join(d.dim_param or str(d.dim_value) for d in dims)
