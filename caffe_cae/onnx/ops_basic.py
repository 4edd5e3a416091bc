"""Element-wise, shape and wiring layers."""
from __future__ import annotations

import numpy as np

from caffe_cae.onnx.converters import (COPY_BATCH, INFER, LayerContext, converter, normalized_axis,
                                       reshape_by_rules)
from caffe_cae.proto import caffe_pb2


@converter("Sigmoid")
def sigmoid(c: LayerContext) -> None:
    c.emit("Sigmoid", c.inputs[:1], output_index=0)


@converter("TanH")
def tanh(c: LayerContext) -> None:
    c.emit("Tanh", c.inputs[:1], output_index=0)


@converter("AbsVal")
def absval(c: LayerContext) -> None:
    c.emit("Abs", c.inputs[:1], output_index=0)


@converter("ReLU")
def relu(c: LayerContext) -> None:
    slope = c.param.relu_param.negative_slope
    if slope:
        c.emit("LeakyRelu", c.inputs[:1], output_index=0, alpha=float(slope))
    else:
        c.emit("Relu", c.inputs[:1], output_index=0)


@converter("Dropout", "Split")
def identity(c: LayerContext) -> None:
    """Dropout is the identity at inference; Split only copies its bottom to every top.
    The forks' Dropout options: ``scale_train: false`` scales by Caffe's ``1/scale_``;
    ``sample_weights_test`` (a random mask at test time) has no deterministic form."""
    if c.layer.type == "Dropout" and not c.layer.identity_at_inference:
        if c.layer.random_mask:
            raise c.error("sample_weights_test draws a random dropout mask at test time (Monte-Carlo "
                          "dropout); an ONNX model is deterministic: export without it")
        factor = c.layer.factor(np.dtype(np.float32))
        c.emit("Mul", [c.inputs[0], c.const("scale", factor)], output_index=0)
        return
    for k in range(len(c.outputs)):
        c.emit("Identity", c.inputs[:1], output_index=k)


@converter("Power")
def power(c: LayerContext) -> None:
    p = c.param.power_param
    x = c.inputs[0]
    if p.power == 0:  # Caffe fills the top with 1
        zero = c.emit("Mul", [x, c.const("zero", 0.0)])
        c.emit("Add", [zero, c.const("one", 1.0)], output_index=0)
        return
    steps = []
    if p.scale != 1:
        steps.append(("Mul", c.const("scale", p.scale)))
    if p.shift != 0:
        steps.append(("Add", c.const("shift", p.shift)))
    if p.power != 1:
        steps.append(("Pow", c.const("power", p.power)))
    if not steps:
        c.emit("Identity", [x], output_index=0)
        return
    for i, (op, operand) in enumerate(steps):
        last = i == len(steps) - 1
        x = c.emit(op, [x, operand], output_index=0 if last else None)


@converter("Reshape")
def reshape(c: LayerContext) -> None:
    """Caffe's rule per top axis: axes outside [axis, axis + num_axes) and ``0`` dims copy the
    bottom axis (the batch stays dynamic), ``-1`` is inferred, other dims are literal -- a fixed
    first dim stays fixed, so another batch size fails in onnxruntime as it fails in Caffe."""
    p = c.param.reshape_param
    bottom = c.bottom_shapes[0]
    start = p.axis if p.axis >= 0 else len(bottom) + p.axis + 1
    end = len(bottom) if p.num_axes == -1 else start + p.num_axes
    sources = list(range(start)) + [None] * len(p.shape.dim) + list(range(end, len(bottom)))
    rules = []
    for k, source in enumerate(sources):
        if source is None:
            dim = int(p.shape.dim[k - start])
            source = k if dim == 0 else None
            if dim == -1:
                rules.append(INFER)
                continue
            if source is None:
                rules.append(dim)
                continue
        rules.append(COPY_BATCH if source == 0 else bottom[source])
    reshape_by_rules(c, c.inputs[0], rules)


@converter("Flatten")
def flatten(c: LayerContext) -> None:
    """The collapsed span takes the batch with it when it starts at axis 0."""
    top = c.top_shapes[0]
    start = normalized_axis(c.param.flatten_param.axis, len(c.bottom_shapes[0]))
    rules = [COPY_BATCH if k == 0 and start > 0 else INFER if k == start else d for k, d in enumerate(top)]
    reshape_by_rules(c, c.inputs[0], rules)


@converter("Concat")
def concat(c: LayerContext) -> None:
    p = c.param.concat_param
    axis = p.concat_dim if p.HasField("concat_dim") else p.axis
    c.emit("Concat", c.inputs, output_index=0, axis=normalized_axis(axis, len(c.bottom_shapes[0])))


@converter("Slice")
def slice_(c: LayerContext) -> None:
    p = c.param.slice_param
    axis = normalized_axis(p.slice_dim if p.HasField("slice_dim") else p.axis, len(c.bottom_shapes[0]))
    sizes = c.graph.ints(f"{c.name}/split", [shape[axis] for shape in c.top_shapes])
    c.graph.node("Split", [c.inputs[0], sizes], list(c.outputs), name=c.name, axis=axis)


@converter("Eltwise")
def eltwise(c: LayerContext) -> None:
    p = c.param.eltwise_param
    op = p.operation
    # In place (top == bottom 0) Caffe fills the top before reading bottom 0: SUM and MAX then
    # see 0 / -FLT_MAX there (as the interpreter does).
    in_place = bool(c.param.top) and bool(c.param.bottom) and c.param.top[0] == c.param.bottom[0]
    if op == caffe_pb2.EltwiseParameter.PROD:
        c.emit("Mul", c.inputs, output_index=0) if len(c.inputs) == 2 else _chain(c, "Mul")
    elif op == caffe_pb2.EltwiseParameter.MAX:
        inputs = list(c.inputs)
        if in_place:
            inputs[0] = c.const("lowest", np.float32(-np.finfo(np.float32).max))
        c.emit("Max", inputs, output_index=0)
    else:
        coeffs = list(p.coeff) or [1.0] * len(c.inputs)
        if len(coeffs) != len(c.inputs):
            raise c.error(f"Eltwise SUM has {len(coeffs)} coeff for {len(c.inputs)} bottoms")
        terms = [
            x if k == 1 else c.emit("Mul", [x, c.const(f"coeff{i}", k)])
            for i, (x, k) in enumerate(zip(c.inputs, coeffs))
            if not (in_place and i == 0)
        ]
        c.emit("Sum", terms, output_index=0)


def _chain(c: LayerContext, op: str) -> None:
    x = c.inputs[0]
    for i, y in enumerate(c.inputs[1:]):
        last = i == len(c.inputs) - 2
        x = c.emit(op, [x, y], output_index=0 if last else None)


@converter("Softmax")
def softmax(c: LayerContext) -> None:
    axis = normalized_axis(c.param.softmax_param.axis, len(c.bottom_shapes[0]))
    c.emit("Softmax", c.inputs[:1], output_index=0, axis=axis)


@converter("InnerProduct")
def inner_product(c: LayerContext) -> None:
    """y = x W^T + b over the axes from ``axis`` on (Caffe weight (N, K), or (K, N) with transpose)."""
    p = c.param.inner_product_param
    shape = c.bottom_shapes[0]
    axis = normalized_axis(p.axis, len(shape))
    weight = c.params[0]
    w_kn = weight if p.transpose else weight.T  # (K, N) for MatMul / Gemm with transB=0
    bias = c.params[1] if p.bias_term else np.zeros(w_kn.shape[1], np.float32)
    if axis == 1:
        flat = c.emit("Flatten", [c.inputs[0]], axis=1) if len(shape) != 2 else c.inputs[0]
        c.emit("Gemm", [flat, c.const("W", np.ascontiguousarray(w_kn)), c.const("b", bias)], output_index=0)
        return
    k = int(np.prod(shape[axis:]))
    lead = c.graph.ints(f"{c.name}/lead", [0] * axis + [k])
    flat = c.emit("Reshape", [c.inputs[0], lead]) if len(shape) != axis + 1 else c.inputs[0]
    product = c.emit("MatMul", [flat, c.const("W", np.ascontiguousarray(w_kn))])
    c.emit("Add", [product, c.const("b", bias)], output_index=0)
