"""Convolution, Deconvolution, Pooling and Unpooling (Noh's fork) as ONNX nodes that onnxruntime
runs on CUDA too (no MaxUnpool: it has no CUDA kernel and an ambiguous output shape).

Index conventions (where they bite): Caffe's pooling mask is a float per-plane index ``h*W + w``;
ONNX MaxPool's ``Indices`` are int64 over the whole N*C*H*W input, so mask = Indices mod (H*W).
Unpooling with switches scatters each value to its mask position in a zero plane of the
Caffe-known output size; without switches (the papers' Model 4) each value goes to the top-left
cell of its window, which is a depthwise ConvTranspose with a 1x1 kernel of ones and the pooling
stride, padded to the output size -- unless :mod:`caffe_cae.onnx.fusion` folds it into the
Deconvolution that reads it.
"""
from __future__ import annotations

import numpy as np
from onnx import TensorProto

from caffe_cae.onnx import fusion
from caffe_cae.onnx.converters import LayerContext, converter
from caffe_cae.proto import caffe_pb2


def _conv_attrs(layer) -> dict:
    if layer.n_spatial == 0 or layer.channel_axis != 1:
        raise layer.error("ONNX export: only convolutions over the axes after axis 1 with spatial axes are exportable")
    return dict(
        kernel_shape=list(layer.kernel), strides=list(layer.stride), dilations=list(layer.dilation),
        pads=list(layer.pad) * 2, group=int(layer.group),
    )


def _weight_and_bias(c: LayerContext) -> list[str]:
    """The layer's weight and, with ``bias_term``, its bias as initializers."""
    return [c.const("W", c.params[0])] + ([c.const("b", c.params[1])] if len(c.params) > 1 else [])


@converter("Convolution")
def convolution(c: LayerContext) -> None:
    _check_single(c)
    c.emit("Conv", [c.inputs[0]] + _weight_and_bias(c), output_index=0, **_conv_attrs(c.layer))


@converter("Deconvolution")
def deconvolution(c: LayerContext) -> None:
    """Caffe's deconvolution weight (C_in, C_out/group, kh, kw) is ConvTranspose's ``W`` unchanged;
    with ``c.optimize`` a deconvolution of a 1x1 map becomes a Gemm (``fusion``)."""
    _check_single(c)
    gemm = fusion.single_pixel_deconvolution_as_gemm(
        c.layer, c.bottom_shapes[0], c.params[0], c.params[1] if len(c.params) > 1 else None) if c.optimize else None
    if gemm is not None:
        rows = c.emit("Flatten", [c.inputs[0]], axis=1)
        product = c.emit("Gemm", [rows, c.const("W", gemm[0]), c.const("b", gemm[1])])
        shape = c.graph.ints(f"{c.name}/shape", [0, *c.top_shapes[0][1:]])
        c.emit("Reshape", [product, shape], output_index=0)
        return
    c.emit("ConvTranspose", [c.inputs[0]] + _weight_and_bias(c), output_index=0, **_conv_attrs(c.layer))


def deconvolution_of_top_left_unpool(c: LayerContext, geometry: dict) -> None:
    """The fold of ``fusion``: ``c`` is the Deconvolution, its input already the *pooled* tensor
    that the top-left unpooling would have spread; ``geometry`` from ``fusion.plan_unpool_folds``
    replaces the deconvolution's strides and pads."""
    _check_single(c)
    attrs = dict(_conv_attrs(c.layer), **geometry)
    c.emit("ConvTranspose", [c.inputs[0]] + _weight_and_bias(c), output_index=0, **attrs)


def _check_single(c: LayerContext) -> None:
    if len(c.inputs) != 1:
        raise c.error("only single-bottom convolutions are exportable")


# ------------------------------------------------------------------------------------------
# Pooling


def _pool_geometry(c: LayerContext):
    """kernel, stride, pad, begin/end pads reproducing Caffe's output size exactly."""
    (_, _, height, width), (_, _, out_h, out_w) = c.bottom_shapes[0], c.top_shapes[0]
    layer = c.layer
    kernel, stride, pad = list(layer.kernel), list(layer.stride), list(layer.pad)
    # Caffe's ceil rounding + clip rule fixed the output size; pad the end so that exactly
    # out windows fit: (out-1)*s + k <= in + pad_begin + pad_end.
    ends = [max((o - 1) * s + k - n - p, 0) for o, s, k, n, p in zip((out_h, out_w), stride, kernel, (height, width), pad)]
    if any(e >= k for e, k in zip(ends, kernel)):  # only without pad and kernel < stride
        raise c.error(f"the last pooling window lies outside the {height}x{width} input (kernel "
                      f"{kernel}, stride {stride}, no pad: Caffe's ceil rounding); ONNX pooling "
                      f"cannot express it")
    return kernel, stride, pad, ends, (height, width), (out_h, out_w)


@converter("Pooling")
def pooling(c: LayerContext) -> None:
    method = c.param.pooling_param.pool
    kernel, stride, pad, ends, (height, width), (out_h, out_w) = _pool_geometry(c)
    if c.layer.global_pooling:
        if method == caffe_pb2.PoolingParameter.MAX and len(c.outputs) == 1:
            c.emit("GlobalMaxPool", c.inputs[:1], output_index=0)
            return
        if method == caffe_pb2.PoolingParameter.AVE:
            c.emit("GlobalAveragePool", c.inputs[:1], output_index=0)
            return
    attrs = dict(kernel_shape=kernel, strides=stride, pads=pad + ends)
    if method == caffe_pb2.PoolingParameter.MAX:
        if len(c.outputs) == 1:
            c.emit("MaxPool", c.inputs[:1], output_index=0, **attrs)
            return
        indices = c.graph.fresh(f"{c.name}/indices")
        c.graph.node("MaxPool", c.inputs[:1], [c.outputs[0], indices], name=c.name, **attrs)
        plane = c.emit("Mod", [indices, c.graph.ints(f"{c.name}/plane", height * width)])
        c.emit("Cast", [plane], output_index=1, to=TensorProto.FLOAT)
        return
    if method == caffe_pb2.PoolingParameter.AVE:
        # Caffe divides by the window clipped to in+pad (padded cells count, cells beyond do not):
        # average with every pad counted, then rescale by k*k / Caffe's divisor per output cell.
        mean = c.emit("AveragePool", c.inputs[:1], count_include_pad=1, **attrs)
        divisor = c.layer.grid.pool_size  # Caffe's divisor per output cell, from the layer
        scale = ((kernel[0] * kernel[1]) / divisor).astype(np.float32)
        if np.allclose(scale, 1.0):
            c.emit("Identity", [mean], output_index=0)
        else:
            c.emit("Mul", [mean, c.const("rescale", scale)], output_index=0)
        return
    raise c.error("only MAX and AVE pooling are exportable")


# ------------------------------------------------------------------------------------------
# Unpooling (Noh's fork)


@converter("Unpooling")
def unpooling(c: LayerContext) -> None:
    layer = c.layer
    (_, channels, height, width), (_, _, out_h, out_w) = c.bottom_shapes[0], c.top_shapes[0]
    method = c.param.unpooling_param.unpool
    methods = caffe_pb2.UnpoolingParameter
    if method == methods.MAX and len(c.inputs) == 2:
        scatter_to_switches(c, channels, height * width, out_h * out_w, (out_h, out_w))
        return
    kernel, stride = list(layer.kernel), list(layer.stride)
    if method == methods.MAX:
        # Top-left placement: value (ph, pw) lands at (ph*s, pw*s) -> stride-s "dilation" of the
        # input by a depthwise 1x1 ConvTranspose, then zero-padded to the unpooled size.
        spread = [(n - 1) * s + 1 for n, s in zip((height, width), stride)]
        if any(o < e for o, e in zip((out_h, out_w), spread)):
            raise c.error(f"unpool size {out_h}x{out_w} smaller than the input spread {spread[0]}x{spread[1]} is not exportable")
        weight = np.ones((channels, 1, 1, 1), np.float32)
        up = c.emit("ConvTranspose", [c.inputs[0], c.const("spread", weight)], kernel_shape=[1, 1], strides=stride, group=channels)
        _pad_or_crop(c, up, spread, (out_h, out_w))
        return
    # AVE / TILE: every covered output cell gets the value (AVE: divided by the window size,
    # window end clipped to the output); windows beyond the output are cropped.
    value = c.inputs[0]
    if method == methods.AVE:
        value = c.emit("Div", [value, c.const("pool_size", layer.grid.pool_size)])
    weight = np.ones((channels, 1, kernel[0], kernel[1]), np.float32)
    up = c.emit("ConvTranspose", [value, c.const("window", weight)], kernel_shape=kernel, strides=stride, group=channels)
    spread = [(n - 1) * s + k for n, s, k in zip((height, width), stride, kernel)]
    _pad_or_crop(c, up, spread, (out_h, out_w))


def _pad_or_crop(c: LayerContext, source: str, have, want) -> None:
    """Zero-pad at the end and/or crop (H, W) from ``have`` to ``want``."""
    grow = [max(w - h, 0) for h, w in zip(have, want)]
    if any(grow):
        source = c.emit("Pad", [source, c.graph.ints(f"{c.name}/pads", [0, 0, 0, 0, 0, 0, *grow])])
    if any(h > w for h, w in zip(have, want)):
        starts, ends = c.graph.ints(f"{c.name}/starts", [0, 0]), c.graph.ints(f"{c.name}/ends", list(want))
        source = c.emit("Slice", [source, starts, ends, c.graph.ints(f"{c.name}/axes", [2, 3])])
    c.emit("Identity", [source], output_index=0)


def scatter_to_switches(c: LayerContext, channels: int, in_plane: int, out_plane: int, out_hw) -> None:
    """Scatter each value to its switch (per-plane index) in a zero plane of the output size
    (also SegNet's Upsample)."""
    flat_shape = c.graph.ints(f"{c.name}/flat", [0, channels, in_plane])
    values = c.emit("Reshape", [c.inputs[0], flat_shape])
    index = c.emit("Cast", [c.emit("Reshape", [c.inputs[1], flat_shape])], to=TensorProto.INT64)
    # zeros of shape (N, C, out_plane) with the dynamic batch size taken from the input
    batch = c.emit("Slice", [c.emit("Shape", [c.inputs[0]]), c.graph.ints(f"{c.name}/s0", [0]), c.graph.ints(f"{c.name}/s1", [1])])
    zeros_shape = c.emit("Concat", [batch, c.graph.ints(f"{c.name}/plane_shape", [channels, out_plane])], axis=0)
    zeros = c.emit("ConstantOfShape", [zeros_shape])
    scattered = c.emit("ScatterElements", [zeros, index, values], axis=2)
    c.emit("Reshape", [scattered, c.graph.ints(f"{c.name}/out", [0, channels, out_hw[0], out_hw[1]])], output_index=0)
