"""The Caffe forks' layers as ONNX nodes.

* SSD: Normalize (ReduceSumSquare, Sqrt, Div, Mul), Permute (Transpose), PriorBox (a constant:
  its boxes depend on shapes only); DetectionOutput is refused with the blobs to export up to
  (its per-class NMS and keep_top_k are run outside the model).
* SegNet: Upsample (ScatterElements into the Caffe-known output size, as Noh's unpooling with
  switches); BN (Noh's and SegNet's: scale and shift, or the batch statistics in LEARN mode).
* ROIPooling (MaxRoiPool, whose rounding and bins are Fast R-CNN's), Interp (Resize, linear,
  align_corners), ReLU6 (Clip), ShuffleChannel (Reshape, Transpose, Reshape),
  DepthwiseConvolution (Conv).  Python layers are refused: their code is not in the model.
"""
from __future__ import annotations

import numpy as np

from caffe_cae.onnx.converters import CONVERTERS, LayerContext, converter, unexportable
from caffe_cae.onnx.ops_vision import scatter_to_switches
from caffe_cae.proto import caffe_pb2


def _reduce(c: LayerContext, op: str, source: str, axes, keepdims: int = 1) -> str:
    """ReduceSumSquare/ReduceMean over ``axes``: an input from opset 18, an attribute before."""
    if c.graph.opset >= 18:
        return c.emit(op, [source, c.graph.ints(f"{c.name}/axes", list(axes))], keepdims=keepdims)
    return c.emit(op, [source], axes=list(axes), keepdims=keepdims)


def _per_channel(values: np.ndarray, ndim: int) -> np.ndarray:
    """A (C,) array shaped (1, C, 1, ...) to broadcast over axis 1 of an ``ndim``-D tensor."""
    return np.asarray(values, np.float32).reshape((1, -1) + (1,) * (ndim - 2))


@converter("Normalize")
def normalize(c: LayerContext) -> None:
    layer, ndim = c.layer, len(c.bottom_shapes[0])
    axes = list(range(1, ndim)) if layer.across_spatial else [1]
    squares = _reduce(c, "ReduceSumSquare", c.inputs[0], axes)
    norm = c.emit("Sqrt", [c.emit("Add", [squares, c.const("eps", np.float32(layer.eps))])])
    unit = c.emit("Div", [c.inputs[0], norm])
    scale = c.params[0].reshape(()) if layer.channel_shared else _per_channel(c.params[0], ndim)
    c.emit("Mul", [unit, c.const("scale", scale)], output_index=0)


@converter("Permute")
def permute(c: LayerContext) -> None:
    c.emit("Transpose", c.inputs[:1], output_index=0, perm=list(c.layer.order))


@converter("PriorBox")
def prior_box(c: LayerContext) -> None:
    """The boxes are a function of the two bottoms' shapes, fixed when the net was built."""
    c.emit("Identity", [c.const("priors", c.layer.priors().reshape(c.top_shapes[0]))], output_index=0)


unexportable(
    "DetectionOutput", "per-class NMS and keep_top_k give a data-dependent number of rows; export up to its bottoms",
    lambda c: f"SSD's DetectionOutput (per-class NMS, keep_top_k, a data-dependent number of rows) "
              f"is not exported; export up to its bottoms (--outputs {','.join(c.param.bottom)}) and run "
              f"the detection step on them")


@converter("Upsample")
def upsample(c: LayerContext) -> None:
    (_, channels, height, width), (_, _, out_h, out_w) = c.bottom_shapes[0], c.top_shapes[0]
    scatter_to_switches(c, channels, height * width, out_h * out_w, (out_h, out_w))


@converter("BN")
def bn(c: LayerContext) -> None:
    """INFERENCE: ``scale * x + shift``; LEARN: the fork normalizes with the batch's statistics
    in every phase, so the model does too."""
    ndim = len(c.bottom_shapes[0])
    x = c.inputs[0]
    if c.param.bn_param.bn_mode == caffe_pb2.BNParameter.LEARN:
        axes = [0] + list(range(2, ndim))
        mean = _reduce(c, "ReduceMean", x, axes)
        mean_sq = _reduce(c, "ReduceMean", c.emit("Mul", [x, x]), axes)
        var = c.emit("Sub", [mean_sq, c.emit("Mul", [mean, mean])])
        std = c.emit("Sqrt", [c.emit("Add", [var, c.const("eps", np.float32(1e-9))])])
        x = c.emit("Div", [c.emit("Sub", [x, mean]), std])
    scaled = c.emit("Mul", [x, c.const("scale", _per_channel(c.params[0].reshape(-1), ndim))])
    c.emit("Add", [scaled, c.const("shift", _per_channel(c.params[1].reshape(-1), ndim))], output_index=0)


@converter("ROIPooling")
def roi_pooling(c: LayerContext) -> None:
    rois = c.inputs[1]
    if len(c.bottom_shapes[1]) != 2:  # MaxRoiPool takes (num_rois, 5)
        rois = c.emit("Reshape", [rois, c.graph.ints(f"{c.name}/rois", [-1, 5])])
    c.emit("MaxRoiPool", [c.inputs[0], rois], output_index=0, pooled_shape=list(c.layer.pooled),
           spatial_scale=float(c.layer.spatial_scale))


@converter("Interp")
def interp(c: LayerContext) -> None:
    layer = c.layer
    x = c.inputs[0]
    start = -layer.pad[0]
    if start or layer.pad[1]:  # crop to the effective input first
        ends = [start + n for n in layer.eff]
        x = c.emit("Slice", [x, c.graph.ints(f"{c.name}/starts", [start, start]),
                             c.graph.ints(f"{c.name}/ends", ends), c.graph.ints(f"{c.name}/axes", [2, 3])])
    if tuple(layer.eff) == tuple(layer.out):
        c.emit("Identity", [x], output_index=0)
        return
    batch = c.emit("Slice", [c.emit("Shape", [x]), c.graph.ints(f"{c.name}/s0", [0]), c.graph.ints(f"{c.name}/s1", [1])])
    sizes = c.emit("Concat", [batch, c.graph.ints(f"{c.name}/sizes", [c.top_shapes[0][1], *layer.out])], axis=0)
    c.emit("Resize", [x, "", "", sizes], output_index=0, mode="linear",
           coordinate_transformation_mode="align_corners")


@converter("ReLU6")
def relu6(c: LayerContext) -> None:
    x = c.inputs[0]
    if c.layer.negative_slope:
        x = c.emit("LeakyRelu", [x], alpha=float(c.layer.negative_slope))
        c.emit("Min", [x, c.const("six", np.float32(6))], output_index=0)
        return
    c.emit("Clip", [x, c.const("zero", np.float32(0)), c.const("six", np.float32(6))], output_index=0)


@converter("ShuffleChannel")
def shuffle_channel(c: LayerContext) -> None:
    shape = c.bottom_shapes[0]
    group, rest = c.layer.group, list(shape[2:])
    grid = c.emit("Reshape", [c.inputs[0], c.graph.ints(f"{c.name}/grid", [0, group, shape[1] // group, *rest])])
    perm = [0, 2, 1] + list(range(3, 3 + len(rest)))
    swapped = c.emit("Transpose", [grid], perm=perm)
    c.emit("Reshape", [swapped, c.graph.ints(f"{c.name}/shape", [0, shape[1], *rest])], output_index=0)


@converter("DepthwiseConvolution")
def depthwise_convolution(c: LayerContext) -> None:
    CONVERTERS["Convolution"](c)


unexportable(
    "Python", "it runs Python code the model cannot hold; export up to its bottoms",
    lambda c: f"a Python layer ({c.layer.qualified}) runs code the model cannot hold; export up to "
              f"its bottoms (--outputs {','.join(c.param.bottom)}) and run it on them")
