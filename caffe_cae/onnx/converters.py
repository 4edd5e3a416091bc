"""Converter registry: Caffe layer type -> ONNX nodes.

A converter gets a :class:`LayerContext` (the set-up interpreter layer, the ONNX names of its
inputs and of the outputs it must produce, static blob shapes and the parameter arrays) and adds
nodes to the graph.  Batch is dynamic: reshapes copy axis 0 (``0``) instead of naming it, and
keep literal what Caffe keeps literal (:func:`reshape_by_rules`).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from caffe_cae.errors import CaffeCaeError
from caffe_cae.layers.base import Layer
from caffe_cae.onnx.graph import GraphBuilder

CONVERTERS: dict[str, Callable[["LayerContext"], None]] = {}


@dataclass(frozen=True)
class Refusal:
    """Why a layer type has no ONNX form (``reason``, one line for listings) and, optionally,
    the error for one layer (``message``: e.g. which blobs to export instead)."""

    reason: str
    message: Callable[["LayerContext"], str] | None = None


#: Layer types with no ONNX form at inference (the one-line refusal names the layer).  Loss,
#: metric and data layers need no entry: the exporter leaves them out or makes them inputs.
UNEXPORTABLE: dict[str, Refusal] = {}


@dataclass
class LayerContext:
    graph: GraphBuilder
    layer: Layer
    inputs: list[str]
    outputs: list[str]
    bottom_shapes: list[tuple[int, ...]]
    top_shapes: list[tuple[int, ...]]
    params: list[np.ndarray]
    optimize: bool = True  # allow the value-preserving rewrites of ``caffe_cae.onnx.fusion``

    @property
    def name(self) -> str:
        return self.layer.name

    @property
    def param(self):
        return self.layer.param

    def error(self, message: str) -> CaffeCaeError:
        return self.layer.error(f"ONNX export: {message}")

    def emit(self, op: str, inputs: list[str], *, output_index: int | None = None, **attrs) -> str:
        """Add a node named after the layer; with ``output_index`` it writes that top's tensor."""
        output = self.outputs[output_index] if output_index is not None else None
        return self.graph.one(op, inputs, name=self.name, output=output, **attrs)

    def const(self, suffix: str, value, dtype=np.float32) -> str:
        return self.graph.const(f"{self.name}/{suffix}", value, dtype)


def converter(*type_names: str):
    def add(function):
        for type_name in type_names:
            CONVERTERS[type_name] = function
        return function

    return add


def unexportable(type_name: str, reason: str, message: Callable[[LayerContext], str] | None = None) -> None:
    """Declare that ``type_name`` has no ONNX form; exporting one raises ``message(context)``,
    or "<type> has no ONNX form: <reason>"."""
    UNEXPORTABLE[type_name] = Refusal(reason, message)


def convert(context: LayerContext) -> None:
    type_name = context.layer.type
    refusal = UNEXPORTABLE.get(type_name)
    if refusal is not None:
        raise context.error(refusal.message(context) if refusal.message else
                            f"{type_name} has no ONNX form: {refusal.reason}")
    try:
        function = CONVERTERS[type_name]
    except KeyError:
        known = ", ".join(sorted(CONVERTERS))
        raise context.error(f"layer type {type_name!r} has no ONNX conversion; exportable types: {known}") from None
    function(context)


#: Caffe's reshape rules, one entry per output axis: a literal size, COPY_BATCH (the size of
#: input axis 0, the dynamic batch) or INFER (-1: whatever the element count leaves).
COPY_BATCH, INFER = "batch", -1


def reshape_by_rules(context: LayerContext, source: str, rules: list, output_index: int | None = 0) -> str:
    """Reshape ``source`` by per-axis ``rules`` (see :data:`COPY_BATCH`): literal sizes stay
    literal, so a net reshaped to a fixed size refuses another batch in onnxruntime as in Caffe.

    ONNX Reshape's ``0`` copies the input axis at the *same* index; the batch copied to another
    axis is spelled ``-1`` when nothing else is inferred, else read with ``Shape``."""
    dims, dynamic = [], False
    for k, rule in enumerate(rules):
        if rule == COPY_BATCH and k == 0:
            dims.append(0)
        elif rule == COPY_BATCH:
            dynamic = True
            dims.append(rule)
        else:
            dims.append(int(rule))
    if dynamic and INFER not in dims and dims.count(COPY_BATCH) == 1:
        dims, dynamic = [INFER if d == COPY_BATCH else d for d in dims], False
    if not dynamic:
        shape = context.graph.ints(f"{context.name}/shape", dims)
    else:
        batch = context.emit("Shape", [source], start=0, end=1) if context.graph.opset >= 15 else context.emit(
            "Slice", [context.emit("Shape", [source]), context.graph.ints(f"{context.name}/s0", [0]),
                      context.graph.ints(f"{context.name}/s1", [1])])
        parts = [batch if d == COPY_BATCH else context.graph.ints(f"{context.name}/dim", [d]) for d in dims]
        shape = context.emit("Concat", parts, axis=0)
    return context.emit("Reshape", [source, shape], output_index=output_index)


def broadcast_shape(shape, ndim: int, axis: int) -> tuple[int, ...]:
    """``shape`` (covering axes ``axis``.. of an ``ndim``-D tensor) with trailing 1s, so that
    ONNX's right-aligned broadcasting applies it from ``axis`` on (Caffe's Scale/Bias/PReLU)."""
    return tuple(shape) + (1,) * (ndim - axis - len(shape))


def reduce(context: LayerContext, op: str, source: str, axes: list[int], keepdims: int = 1,
           output_index: int | None = None) -> str:
    """ReduceSum/Mean/L1/SumSquare/Max over ``axes``: ``axes`` is an input from opset 13 for
    ReduceSum and from opset 18 for the others, an attribute before."""
    as_input = op == "ReduceSum" or context.graph.opset >= 18
    if as_input:
        return context.emit(op, [source, context.graph.ints(f"{context.name}/axes", axes)],
                            output_index=output_index, keepdims=keepdims)
    return context.emit(op, [source], output_index=output_index, axes=list(axes), keepdims=keepdims)


def normalized_axis(axis: int, ndim: int) -> int:
    return axis + ndim if axis < 0 else axis
