"""BatchNorm, Scale, Bias, LRN, MVN and PReLU as ONNX nodes, with Caffe's formulas.

BatchNorm with stored statistics, Scale and Bias become per-channel ``Sub``/``Div``/``Mul``/``Add``
with constants shaped for ONNX's right-aligned broadcasting; :func:`caffe_cae.onnx.fusion.fold_affine_into_linear`
folds such chains into the weights of the Convolution/InnerProduct before them.
"""
from __future__ import annotations

import numpy as np

from caffe_cae.onnx.converters import LayerContext, broadcast_shape, converter, normalized_axis, reduce
from caffe_cae.proto import caffe_pb2


def _channels(shape) -> int:
    """Caffe's BatchNorm/PReLU channel count: axis 1, or 1 for a 1-D blob."""
    return int(shape[1]) if len(shape) > 1 else 1


def _per_channel(values: np.ndarray, ndim: int) -> np.ndarray:
    """(C,) values shaped to broadcast over axis 1 of an ``ndim``-D tensor."""
    return values.reshape(broadcast_shape(values.shape, ndim, min(1, ndim - 1)))


@converter("BatchNorm")
def batch_norm(c: LayerContext) -> None:
    """y = (x - mean) / sqrt(var + eps).  With ``use_global_stats`` (the TEST default) mean and
    var are the stored sums divided by the scale factor blob (a factor 0 means mean = var = 0);
    without, the batch's own statistics over every axis but 1 (biased variance)."""
    p = c.param.batch_norm_param
    shape = c.bottom_shapes[0]
    ndim = len(shape)
    use_global = p.use_global_stats if p.HasField("use_global_stats") else c.layer.phase == caffe_pb2.TEST
    eps = np.float32(p.eps)
    x = c.inputs[0]
    if use_global:
        factor = c.params[2].reshape(-1)[0]
        factor = np.float32(0 if factor == 0 else 1 / factor)
        mean = (c.params[0].reshape(-1) * factor).astype(np.float32)
        var = (c.params[1].reshape(-1) * factor).astype(np.float32)
        std = np.sqrt(var + eps).astype(np.float32)
        centred = c.emit("Sub", [x, c.const("mean", _per_channel(mean, ndim))])
        c.emit("Div", [centred, c.const("std", _per_channel(std, ndim))], output_index=0)
        return
    axes = [0] + list(range(2, ndim))
    if ndim == 1:
        axes = [0]
    mean = reduce(c, "ReduceMean", x, axes)
    centred = c.emit("Sub", [x, mean])
    var = reduce(c, "ReduceMean", c.emit("Mul", [centred, centred]), axes)
    std = c.emit("Sqrt", [c.emit("Add", [var, c.const("eps", eps)])])
    c.emit("Div", [centred, std], output_index=0)


def _affine_operand(c: LayerContext, kind: str, param_index: int | None) -> str:
    """The Scale/Bias operand broadcast from ``axis``: a parameter blob (``param_index``) or
    the second bottom (unsqueezed with trailing axes)."""
    p = c.param.scale_param if c.layer.type == "Scale" else c.param.bias_param
    shape = c.bottom_shapes[0]
    axis = normalized_axis(p.axis, len(shape))
    if param_index is not None:
        value = c.params[param_index]
        return c.const(kind, value.reshape(broadcast_shape(value.shape, len(shape), axis)))
    other = c.bottom_shapes[1]
    trailing = len(shape) - axis - len(other)
    if trailing == 0:
        return c.inputs[1]
    axes = c.graph.ints(f"{c.name}/axes", list(range(len(other), len(other) + trailing)))
    return c.emit("Unsqueeze", [c.inputs[1], axes])


@converter("Scale")
def scale(c: LayerContext) -> None:
    """y = x * scale (+ bias), scale from the second bottom or the first parameter blob; with a
    second bottom the bias is the only parameter blob."""
    from_bottom = len(c.inputs) > 1
    factor = _affine_operand(c, "scale", None if from_bottom else 0)
    if not c.param.scale_param.bias_term:
        c.emit("Mul", [c.inputs[0], factor], output_index=0)
        return
    product = c.emit("Mul", [c.inputs[0], factor])
    c.emit("Add", [product, _affine_operand(c, "bias", 0 if from_bottom else 1)], output_index=0)


@converter("Bias")
def bias(c: LayerContext) -> None:
    c.emit("Add", [c.inputs[0], _affine_operand(c, "bias", None if len(c.inputs) > 1 else 0)], output_index=0)


@converter("PReLU")
def prelu(c: LayerContext) -> None:
    """y = max(0, x) + slope_c * min(0, x), one slope per channel (axis 1) or one shared."""
    slope = c.params[0].reshape(-1)
    ndim = len(c.bottom_shapes[0])
    slope = slope if c.param.prelu_param.channel_shared else _per_channel(slope, ndim)
    c.emit("PRelu", [c.inputs[0], c.const("slope", slope)], output_index=0)


@converter("LRN")
def lrn(c: LayerContext) -> None:
    """ACROSS_CHANNELS is ONNX LRN as it stands (both divide alpha by the window size and pad the
    channel window with zeros); WITHIN_CHANNEL is Caffe's own composition:
    y = x * (1 + alpha * avg_{size x size, zero pad (size-1)/2} x^2)^-beta -- k is not used and
    the average always divides by size^2 (padded cells count)."""
    p = c.param.lrn_param
    size = int(p.local_size)
    if p.norm_region == caffe_pb2.LRNParameter.ACROSS_CHANNELS:
        c.emit("LRN", c.inputs[:1], output_index=0, size=size, alpha=float(p.alpha), beta=float(p.beta),
               bias=float(p.k))
        return
    x = c.inputs[0]
    pad = (size - 1) // 2
    mean = c.emit("AveragePool", [c.emit("Mul", [x, x])], kernel_shape=[size, size], strides=[1, 1],
                  pads=[pad] * 4, count_include_pad=1)
    base = c.emit("Add", [c.emit("Mul", [mean, c.const("alpha", p.alpha)]), c.const("one", 1.0)])
    c.emit("Mul", [x, c.emit("Pow", [base, c.const("neg_beta", -p.beta)])], output_index=0)


@converter("MVN")
def mvn(c: LayerContext) -> None:
    """Per item and channel (per item with ``across_channels``): x - mean, then divided by
    std + eps (eps added to the standard deviation, not the variance) with
    ``normalize_variance``."""
    p = c.param.mvn_param
    shape = c.bottom_shapes[0]
    rows = [0, -1] if p.across_channels else [0, _channels(shape), -1]
    x = c.emit("Reshape", [c.inputs[0], c.graph.ints(f"{c.name}/rows", rows)])
    centred = c.emit("Sub", [x, reduce(c, "ReduceMean", x, [len(rows) - 1])])
    if p.normalize_variance:
        var = reduce(c, "ReduceMean", c.emit("Mul", [centred, centred]), [len(rows) - 1])
        std = c.emit("Add", [c.emit("Sqrt", [var]), c.const("eps", p.eps)])
        centred = c.emit("Div", [centred, std])
    back = c.graph.ints(f"{c.name}/shape", [0, *c.top_shapes[0][1:]])  # Caffe's top is 4-D (legacy accessors)
    c.emit("Reshape", [centred, back], output_index=0)
