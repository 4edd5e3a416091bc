"""Element-wise neuron layers with parameters: ELU, BNLL, Exp, Log, Threshold, Clip, Swish.

Each follows the order of Caffe's float operations (scale, shift, function, outer scale), so
onnxruntime rounds where Caffe does.
"""
from __future__ import annotations

import math

import numpy as np
from onnx import TensorProto

from caffe_cae.onnx.converters import LayerContext, converter


def _chain(c: LayerContext, x: str, steps: list[tuple[str, str | None]]) -> None:
    """Apply ``(op, operand)`` steps in order (operand None: a unary op); the last one writes
    top 0, and no steps at all make an Identity."""
    if not steps:
        c.emit("Identity", [x], output_index=0)
        return
    for i, (op, operand) in enumerate(steps):
        last = i == len(steps) - 1
        x = c.emit(op, [x] if operand is None else [x, operand], output_index=0 if last else None)


@converter("ELU")
def elu(c: LayerContext) -> None:
    """y = x for x > 0, alpha (e^x - 1) otherwise."""
    c.emit("Elu", c.inputs[:1], output_index=0, alpha=float(c.param.elu_param.alpha))


@converter("BNLL")
def bnll(c: LayerContext) -> None:
    """Caffe's stable form of log(1 + e^x): x + log(1 + e^-x) for x > 0, log(1 + e^x) otherwise,
    i.e. relu(x) + log(1 + e^-|x|) (no overflow to inf for large x, unlike a plain Softplus)."""
    x = c.inputs[0]
    tail = c.emit("Exp", [c.emit("Neg", [c.emit("Abs", [x])])])
    softplus_tail = c.emit("Log", [c.emit("Add", [tail, c.const("one", 1.0)])])
    c.emit("Add", [c.emit("Relu", [x]), softplus_tail], output_index=0)


@converter("Exp")
def exp(c: LayerContext) -> None:
    """y = base^(shift + scale x) (base -1: e), computed as Caffe does:
    base^shift * e^(ln(base) scale x)."""
    p = c.param.exp_param
    log_base = np.float32(1.0 if p.base == -1 else math.log(p.base))
    inner = np.float32(log_base * np.float32(p.scale))
    outer = np.float32(1.0 if p.shift == 0 else (math.exp(p.shift) if p.base == -1 else p.base ** p.shift))
    steps = [("Mul", c.const("inner_scale", inner))] if inner != 1 else []
    steps.append(("Exp", None))
    if outer != 1:
        steps.append(("Mul", c.const("outer_scale", outer)))
    _chain(c, c.inputs[0], steps)


@converter("Log")
def log(c: LayerContext) -> None:
    """y = log_base(shift + scale x) (base -1: natural log)."""
    p = c.param.log_param
    steps = []
    if p.scale != 1:
        steps.append(("Mul", c.const("scale", p.scale)))
    if p.shift != 0:
        steps.append(("Add", c.const("shift", p.shift)))
    steps.append(("Log", None))
    base_scale = np.float32(1.0 if p.base == -1 else 1 / math.log(p.base))
    if base_scale != 1:
        steps.append(("Mul", c.const("base_scale", base_scale)))
    _chain(c, c.inputs[0], steps)


@converter("Threshold")
def threshold(c: LayerContext) -> None:
    """y = 1 where x > threshold (strictly), else 0."""
    above = c.emit("Greater", [c.inputs[0], c.const("threshold", c.param.threshold_param.threshold)])
    c.emit("Cast", [above], output_index=0, to=TensorProto.FLOAT)


@converter("Clip")
def clip(c: LayerContext) -> None:
    p = c.param.clip_param
    c.emit("Clip", [c.inputs[0], c.const("min", p.min), c.const("max", p.max)], output_index=0)


@converter("Swish")
def swish(c: LayerContext) -> None:
    """y = x sigmoid(beta x)."""
    x = c.inputs[0]
    beta = c.param.swish_param.beta
    gate_input = x if beta == 1 else c.emit("Mul", [x, c.const("beta", beta)])
    c.emit("Mul", [x, c.emit("Sigmoid", [gate_input])], output_index=0)
