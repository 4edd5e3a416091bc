"""A small ONNX graph builder: unique names, constants as initializers, nodes named after layers."""
from __future__ import annotations

import numpy as np
import onnx
from onnx import helper, numpy_helper

#: Default opset: old enough for every onnxruntime of the last years, new enough for every op we
#: emit.  onnx 1.23 writes IR 14 / opset 28 by default, which onnxruntime 1.31 rejects, so the
#: IR version is always the lowest that carries the chosen opset (at most 13).
DEFAULT_OPSET = 17
MIN_OPSET, MAX_OPSET = 13, 26


class GraphBuilder:
    def __init__(self, opset: int = DEFAULT_OPSET):
        self.opset = opset
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self._names: set[str] = set()
        self._node_names: set[str] = set()  # nodes and tensors are separate namespaces

    def reserve(self, name: str) -> str:
        """Mark ``name`` as taken (graph inputs/outputs chosen by the caller)."""
        self._names.add(name)
        return name

    def fresh(self, base: str) -> str:
        """A tensor/node name not used yet, derived from ``base`` (Caffe allows an empty layer
        name; ONNX refuses an empty tensor name)."""
        base = base or "unnamed"
        name, k = base, 1
        while name in self._names:
            name, k = f"{base}_{k}", k + 1
        self._names.add(name)
        return name

    def const(self, base: str, value, dtype=np.float32) -> str:
        """Add ``value`` as an initializer; return its name."""
        name = self.fresh(base)
        self.initializers.append(numpy_helper.from_array(np.asarray(value, dtype=dtype), name))
        return name

    def ints(self, base: str, values) -> str:
        return self.const(base, np.asarray(values, dtype=np.int64), dtype=np.int64)

    def node(self, op: str, inputs: list[str], outputs: list[str] | None = None, *, name: str, **attrs) -> list[str]:
        """Append a node; ``outputs`` default to one fresh tensor named after the node."""
        if outputs is None:
            outputs = [self.fresh(name)]
        node_name, k = name, 1
        while node_name in self._node_names:
            node_name, k = f"{name}_{k}", k + 1
        self._node_names.add(node_name)
        self.nodes.append(helper.make_node(op, inputs, outputs, name=node_name, **attrs))
        return outputs

    def one(self, op: str, inputs: list[str], *, name: str, output: str | None = None, **attrs) -> str:
        """``node`` for the common single-output case; returns the output name."""
        return self.node(op, inputs, [output] if output else None, name=name, **attrs)[0]
