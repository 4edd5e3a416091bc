"""Converter registry: Caffe layer type -> ONNX nodes.

A converter gets a :class:`LayerContext` (the set-up interpreter layer, the ONNX names of its
inputs and of the outputs it must produce, static blob shapes and the parameter arrays) and adds
nodes to the graph.  Batch is dynamic: reshapes copy axis 0 (``0``) instead of naming it.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from caffe_cae.errors import CaffeCaeError
from caffe_cae.layers.base import Layer
from caffe_cae.onnx.graph import GraphBuilder

CONVERTERS: dict[str, Callable[["LayerContext"], None]] = {}


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


def convert(context: LayerContext) -> None:
    try:
        function = CONVERTERS[context.layer.type]
    except KeyError:
        known = ", ".join(sorted(CONVERTERS))
        raise context.error(f"layer type {context.layer.type!r} has no ONNX conversion; exportable types: {known}") from None
    function(context)


def reshape_to(context: LayerContext, source: str, top_shape, output_index: int = 0) -> str:
    """Reshape ``source`` to the static ``top_shape`` keeping the batch axis dynamic."""
    bottom_shape = context.bottom_shapes[0]
    target = list(top_shape)
    if target and bottom_shape and target[0] == bottom_shape[0]:
        target[0] = 0  # copy the (dynamic) batch size
    elif target:
        target[0] = -1  # batch folded into/out of other axes proportionally
    shape = context.graph.ints(f"{context.name}/shape", target)
    return context.emit("Reshape", [source, shape], output_index=output_index)


def normalized_axis(axis: int, ndim: int) -> int:
    return axis + ndim if axis < 0 else axis
