"""Layers that select, repeat or summarise values: Crop, Tile, Reduction, ArgMax, Embed,
BatchReindex, Filter, Parameter, Im2col and SPP.

Index conventions where they bite: Caffe stores indices as floats (ArgMax tops, Embed and
BatchReindex index bottoms, cast to int64 by truncation as Caffe's ``static_cast<int>``);
ArgMax breaks ties towards the *higher* index while ONNX TopK prefers the lower one, so TopK
runs on the reversed axis.
"""
from __future__ import annotations

import math

import numpy as np
from onnx import TensorProto

from caffe_cae.layers.common import conv_spatial_params
from caffe_cae.layers.pooling import WindowGrid
from caffe_cae.onnx.converters import (COPY_BATCH, LayerContext, converter, normalized_axis, reduce, reshape_by_rules,
                                       unexportable)
from caffe_cae.proto import caffe_pb2


def _as_float(c: LayerContext, x: str, output_index: int | None = None) -> str:
    return c.emit("Cast", [x], output_index=output_index, to=TensorProto.FLOAT)


def _as_index(c: LayerContext, x: str) -> str:
    return c.emit("Cast", [x], to=TensorProto.INT64)


def _to_top(c: LayerContext, x: str) -> None:
    """Reshape to top 0's shape (its axis 0 the batch)."""
    reshape_by_rules(c, x, [COPY_BATCH, *c.top_shapes[0][1:]])


@converter("Crop")
def crop(c: LayerContext) -> None:
    """Axes from ``axis`` on take bottom 1's sizes, starting at ``offset`` (one value for every
    cropped axis, or one per axis, default 0); bottom 1 only gives the shape."""
    p = c.param.crop_param
    shape, reference = c.bottom_shapes[0], c.bottom_shapes[1]
    start = normalized_axis(p.axis, len(shape))
    axes = list(range(start, len(shape)))
    offsets = [int(p.offset[0] if len(p.offset) == 1 else p.offset[i - start]) if len(p.offset) else 0 for i in axes]
    ends = [o + reference[i] for o, i in zip(offsets, axes)]
    g = c.graph
    c.emit("Slice", [c.inputs[0], g.ints(f"{c.name}/starts", offsets), g.ints(f"{c.name}/ends", ends),
                     g.ints(f"{c.name}/axes", axes)], output_index=0)


@converter("Tile")
def tile(c: LayerContext) -> None:
    """The block from ``axis`` on repeated ``tiles`` times (numpy ``tile``, not ``repeat``)."""
    p = c.param.tile_param
    ndim = len(c.bottom_shapes[0])
    repeats = [1] * ndim
    repeats[normalized_axis(p.axis, ndim)] = int(p.tiles)
    c.emit("Tile", [c.inputs[0], c.graph.ints(f"{c.name}/repeats", repeats)], output_index=0)


@converter("Reduction")
def reduction(c: LayerContext) -> None:
    """Every axis from ``axis`` to the end reduced (axis 0: a 0-d top), times ``coeff``; MEAN is
    the sum times coeff / count, as Caffe computes it."""
    p = c.param.reduction_param
    ndim = len(c.bottom_shapes[0])
    axis = normalized_axis(p.axis, ndim)
    axes = list(range(axis, ndim))
    ops = caffe_pb2.ReductionParameter
    op = {ops.SUM: "ReduceSum", ops.ASUM: "ReduceL1", ops.SUMSQ: "ReduceSumSquare", ops.MEAN: "ReduceSum"}[p.operation]
    coeff = np.float32(p.coeff)
    if p.operation == ops.MEAN:
        coeff = np.float32(coeff / np.float32(math.prod(c.bottom_shapes[0][axis:])))
    if coeff == 1:
        reduce(c, op, c.inputs[0], axes, keepdims=0, output_index=0)
        return
    c.emit("Mul", [reduce(c, op, c.inputs[0], axes, keepdims=0), c.const("coeff", coeff)], output_index=0)


@converter("ArgMax")
def argmax(c: LayerContext) -> None:
    """Indices (as floats) of the ``top_k`` largest values along ``axis``, or per item over
    everything after axis 0 without ``axis``, ties to the higher index.  Without ``axis``,
    ``out_max_val`` puts the values after the indices ((N, 2, top_k, ...)); with ``axis`` it
    gives the values only."""
    p = c.param.argmax_param
    shape = c.bottom_shapes[0]
    k = int(p.top_k)
    if p.HasField("axis"):
        axis = normalized_axis(p.axis, len(shape))
        x, dim = c.inputs[0], int(shape[axis])
    else:
        axis = 1
        x = c.emit("Flatten", c.inputs[:1], axis=1)
        dim = math.prod(shape[1:])
    if k == 1 and not p.out_max_val:
        index = c.emit("ArgMax", [x], axis=axis, keepdims=1, select_last_index=1)
        if p.HasField("axis"):
            _as_float(c, index, output_index=0)
        else:
            _to_top(c, _as_float(c, index))
        return
    g = c.graph
    reversed_x = c.emit("Slice", [x, g.ints(f"{c.name}/rev_start", [-1]), g.ints(f"{c.name}/rev_end", [-(2**63)]),
                                  g.ints(f"{c.name}/rev_axis", [axis]), g.ints(f"{c.name}/rev_step", [-1])])
    values, reversed_index = g.node("TopK", [reversed_x, g.ints(f"{c.name}/k", [k])],
                                    [g.fresh(f"{c.name}/values"), g.fresh(f"{c.name}/indices")],
                                    name=c.name, axis=axis, largest=1, sorted=1)
    if p.HasField("axis") and p.out_max_val:
        c.emit("Identity", [values], output_index=0)
        return
    index = _as_float(c, c.emit("Sub", [g.ints(f"{c.name}/last", dim - 1), reversed_index]))
    if p.HasField("axis"):
        c.emit("Identity", [index], output_index=0)
        return
    if p.out_max_val:
        one = g.ints(f"{c.name}/axis1", [1])
        index = c.emit("Concat", [c.emit("Unsqueeze", [index, one]), c.emit("Unsqueeze", [values, one])], axis=1)
    _to_top(c, index)


@converter("Embed")
def embed(c: LayerContext) -> None:
    """y[..., :] = W[int(x)] (+ b): weight (input_dim, num_output), indices given as floats."""
    rows = c.emit("Gather", [c.const("W", c.params[0]), _as_index(c, c.inputs[0])], axis=0)
    if c.param.embed_param.bias_term:
        c.emit("Add", [rows, c.const("b", c.params[1])], output_index=0)
    else:
        c.emit("Identity", [rows], output_index=0)


@converter("BatchReindex")
def batch_reindex(c: LayerContext) -> None:
    """y[i] = x[int(permutation[i])]."""
    order = c.emit("Reshape", [c.inputs[1], c.graph.ints(f"{c.name}/flat", [-1])])
    c.emit("Gather", [c.inputs[0], _as_index(c, order)], output_index=0, axis=0)


@converter("Filter")
def filter_(c: LayerContext) -> None:
    """The items (axis 0) of every bottom but the last whose selector (the last bottom, (N, 1,
    ...)) is non-zero; the tops' first dimension is known only at run time."""
    selector = c.emit("Reshape", [c.inputs[-1], c.graph.ints(f"{c.name}/flat", [-1])])
    keep = c.emit("Not", [c.emit("Equal", [selector, c.const("zero", 0.0)])])
    for k, x in enumerate(c.inputs[:-1]):
        c.emit("Compress", [x, keep], output_index=k, axis=0)


@converter("Parameter")
def parameter(c: LayerContext) -> None:
    """The layer's blob as a constant."""
    c.emit("Identity", [c.const("blob", c.params[0])], output_index=0)


@converter("Im2col")
def im2col(c: LayerContext) -> None:
    """Caffe's column layout (channel c*K + kernel offset, K = prod(kernel)) is a grouped Conv
    (one group per input channel) whose K filters are the one-hot kernel positions: each output
    value is exactly one input value (or a pad zero)."""
    cp = c.param.convolution_param
    shape = c.bottom_shapes[0]
    if normalized_axis(cp.axis, len(shape)) != 1:
        raise c.error("only Im2col with the channel axis 1 is exportable")
    n_spatial = len(shape) - 2
    kernel, stride, pad, dilation = conv_spatial_params(c.layer, cp, n_spatial)
    channels, cells = int(shape[1]), math.prod(kernel)
    one_hot = np.eye(cells, dtype=np.float32).reshape(cells, 1, *kernel)
    weight = np.tile(one_hot, (channels, 1) + (1,) * n_spatial)
    c.emit("Conv", [c.inputs[0], c.const("one_hot", weight)], output_index=0, kernel_shape=list(kernel),
           strides=list(stride), pads=list(pad) * 2, dilations=list(dilation), group=channels)


# ------------------------------------------------------------------------------------------
# SPP


def spp_level(height: int, width: int, level: int):
    """(kernel, pad, pooled) per axis of pyramid level ``level`` (2^level bins), as Caffe's
    SPPLayer::GetPoolingParam and PoolingLayer::Reshape compute them."""
    bins = 2 ** level
    kernel, pad, pooled = [], [], []
    for n in (height, width):
        k = math.ceil(n / bins)
        p = (k * bins - n + 1) // 2
        o = int(math.ceil(float(np.float32(n + 2 * p - k) / np.float32(k)))) + 1
        kernel.append(k)
        pad.append(p)
        pooled.append(o)
    if any(pad):  # Caffe clips a last window that starts in the padding, on both axes
        pooled = [o - 1 if (o - 1) * k >= n + p else o for o, k, n, p in zip(pooled, kernel, (height, width), pad)]
    return kernel, pad, pooled


@converter("SPP")
def spp(c: LayerContext) -> None:
    """One MAX/AVE pooling per level (kernel = stride = ceil(H / bins), pad so the bins cover
    the map), each flattened, concatenated along axis 1; one level gives the pooled map."""
    p = c.param.spp_param
    _, _, height, width = c.bottom_shapes[0]
    levels = int(p.pyramid_height)
    if p.pool not in (caffe_pb2.SPPParameter.MAX, caffe_pb2.SPPParameter.AVE):
        raise c.error("only MAX and AVE spatial pyramid pooling are exportable")
    parts = []
    for level in range(levels):
        kernel, pad, pooled = spp_level(height, width, level)
        ends = [max((o - 1) * k + k - n - q, 0) for o, k, n, q in zip(pooled, kernel, (height, width), pad)]
        if any(e >= k for e, k in zip(ends, kernel)) or any(q >= k for q, k in zip(pad, kernel)):
            raise c.error(f"pyramid level {level} of the {height}x{width} input has a window outside it")
        attrs = dict(kernel_shape=kernel, strides=kernel, pads=pad + ends)
        last = levels == 1
        if p.pool == caffe_pb2.SPPParameter.MAX:
            pooled_x = c.emit("MaxPool", c.inputs[:1], output_index=0 if last else None, **attrs)
        else:
            mean = c.emit("AveragePool", c.inputs[:1], count_include_pad=1, **attrs)
            divisor = WindowGrid((height, width), pooled, kernel, kernel, pad).pool_size
            rescale = ((kernel[0] * kernel[1]) / divisor).astype(np.float32)
            pooled_x = c.emit("Mul", [mean, c.const(f"rescale{level}", rescale)], output_index=0 if last else None)
        if not last:
            parts.append(c.emit("Flatten", [pooled_x], axis=1))
    if parts:
        c.emit("Concat", parts, output_index=0, axis=1)


unexportable("HDF5Output", "it writes its bottoms to an HDF5 file and has no tops; export the blobs it "
                           "writes with --outputs instead")
