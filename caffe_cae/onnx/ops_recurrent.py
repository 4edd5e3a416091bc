"""Recurrent layers: RNN and LSTM as an ONNX ``Scan`` over the time axis, LSTMUnit element-wise.

Caffe's recurrent layers are unrolled nets (``RecurrentLayer``): the input projection
``W x_t + b`` (+ ``W_static x_static``) of every step at once, then per step the previous state
times the continuation marker ``cont_t`` (0 starts a sequence), the recurrent product and the
step's non-linearity.  The ``Scan`` body is that step; the time axis (axis 0 of ``x``, (T, N,
...)) stays dynamic.

The initial state is the exposed ``h_0``/``c_0`` bottoms with ``expose_hidden``, else zero.
Caffe itself starts from zero only in a net's first forward: later forwards continue from the
previous forward's last state, which the stateless ONNX graph cannot carry -- equal values
whenever ``cont`` is 0 at t = 0 (every sequence starts in the batch) or with ``expose_hidden``.

Parameter blobs: RNN W_xh (H, D), b_h (H), [W_xh_static (H, S)], W_hh (H, H), W_ho (H, H),
b_o (H); LSTM W_xc (4H, D), b_c (4H), [W_xc_static (4H, S)], W_hc (4H, H); gates i, f, o, g.
"""
from __future__ import annotations

import numpy as np
from onnx import TensorProto, helper

from caffe_cae.onnx.converters import LayerContext, converter


def _static_input(c: LayerContext, states: int) -> bool:
    """Whether bottom 2 is a static input (Caffe: more bottoms than x, cont and the exposed
    states)."""
    exposed = states if c.param.recurrent_param.expose_hidden else 0
    return len(c.inputs) > 2 + exposed


def _input_projection(c: LayerContext, weight: np.ndarray, bias: np.ndarray, static_weight) -> str:
    """(T, N, G) = x W^T + b (+ x_static W_static^T, the same for every step)."""
    x = c.emit("Reshape", [c.inputs[0], c.graph.ints(f"{c.name}/steps", [0, c.bottom_shapes[0][1], -1])])
    projected = c.emit("Add", [c.emit("MatMul", [x, c.const("W_x", weight.T)]), c.const("b_x", bias)])
    if static_weight is None:
        return projected
    static = c.emit("Flatten", [c.inputs[2]], axis=1)
    return c.emit("Add", [projected, c.emit("MatMul", [static, c.const("W_static", static_weight.T)])])


def _initial_states(c: LayerContext, count: int, hidden: int) -> list[str]:
    batch = int(c.bottom_shapes[0][1])
    if not c.param.recurrent_param.expose_hidden:
        return [c.const(f"state{k}_0", np.zeros((batch, hidden), np.float32)) for k in range(count)]
    first = len(c.inputs) - count
    squeeze_axes = c.graph.ints(f"{c.name}/axis0", [0])
    return [c.emit("Squeeze", [c.inputs[first + k], squeeze_axes]) for k in range(count)]


class _Body:
    """The nodes of one time step (a subgraph: names local to it, outer tensors readable)."""

    def __init__(self, c: LayerContext):
        self.c, self.nodes, self.count = c, [], 0

    def __call__(self, op: str, inputs: list[str], **attrs) -> str:
        self.count += 1
        out = f"{self.c.name}/step/{op}{self.count}"
        self.nodes.append(helper.make_node(op, inputs, [out], name=out, **attrs))
        return out

    def graph(self, inputs: list[str], outputs: list[str]):
        def info(name):
            return helper.make_tensor_value_info(name, TensorProto.FLOAT, None)

        renamed = []
        for k, name in enumerate(outputs):  # a subgraph output must be its own tensor
            out = f"{self.c.name}/step/out{k}"
            self.nodes.append(helper.make_node("Identity", [name], [out], name=out))
            renamed.append(out)
        return helper.make_graph(self.nodes, f"{self.c.name}_step", [info(n) for n in inputs],
                                 [info(n) for n in renamed])


def _scan(c: LayerContext, body, states: list[str], scanned: list[str], n_states: int) -> list[str]:
    outputs = [c.graph.fresh(f"{c.name}/state{k}_T") for k in range(n_states)] + [c.graph.fresh(f"{c.name}/steps_out")]
    c.graph.node("Scan", states + scanned, outputs, name=c.name, body=body, num_scan_inputs=len(scanned))
    return outputs


def _expose_final_states(c: LayerContext, finals: list[str]) -> None:
    if not c.param.recurrent_param.expose_hidden:
        return
    axis0 = c.graph.ints(f"{c.name}/unsqueeze0", [0])
    for k, final in enumerate(finals):
        c.emit("Unsqueeze", [final, axis0], output_index=1 + k)


@converter("LSTM")
def lstm(c: LayerContext) -> None:
    static = _static_input(c, 2)
    params = list(c.params)
    w_x, b_x = params[0], params[1]
    w_static = params[2] if static else None
    w_h = params[-1]
    hidden = w_h.shape[1]
    gates = _input_projection(c, w_x, b_x, w_static)
    w_h_name = c.const("W_h", np.ascontiguousarray(w_h.T))

    step = _Body(c)
    h_in, c_in, g_in, cont_in = (f"{c.name}/step/{n}" for n in ("h", "c", "gates", "cont"))
    keep = step("Unsqueeze", [cont_in, c.graph.ints(f"{c.name}/axis1", [1])])
    total = step("Add", [step("MatMul", [step("Mul", [h_in, keep]), w_h_name]), g_in])
    parts = [f"{c.name}/step/{gate}" for gate in "ifog"]
    step.nodes.append(helper.make_node("Split", [total, c.graph.ints(f"{c.name}/split", [hidden] * 4)], parts,
                                       name=f"{c.name}/step/split", axis=1))
    i, f, o = (step("Sigmoid", [p]) for p in parts[:3])
    candidate = step("Tanh", [parts[3]])
    cell = step("Add", [step("Mul", [step("Mul", [f, keep]), c_in]), step("Mul", [i, candidate])])
    h_out = step("Mul", [o, step("Tanh", [cell])])
    body = step.graph([h_in, c_in, g_in, cont_in], [h_out, cell, h_out])

    h_T, c_T, h_all = _scan(c, body, _initial_states(c, 2, hidden), [gates, c.inputs[1]], 2)
    c.emit("Identity", [h_all], output_index=0)
    _expose_final_states(c, [h_T, c_T])


@converter("RNN")
def rnn(c: LayerContext) -> None:
    static = _static_input(c, 1)
    params = list(c.params)
    w_x, b_x = params[0], params[1]
    w_static = params[2] if static else None
    w_hh, w_ho, b_o = params[-3:]
    hidden = w_hh.shape[0]
    inputs = _input_projection(c, w_x, b_x, w_static)
    w_hh_name = c.const("W_hh", np.ascontiguousarray(w_hh.T))

    step = _Body(c)
    h_in, x_in, cont_in = (f"{c.name}/step/{n}" for n in ("h", "x", "cont"))
    keep = step("Unsqueeze", [cont_in, c.graph.ints(f"{c.name}/axis1", [1])])
    h_out = step("Tanh", [step("Add", [step("MatMul", [step("Mul", [h_in, keep]), w_hh_name]), x_in])])
    body = step.graph([h_in, x_in, cont_in], [h_out, h_out])

    h_T, h_all = _scan(c, body, _initial_states(c, 1, hidden), [inputs, c.inputs[1]], 1)
    out = c.emit("Add", [c.emit("MatMul", [h_all, c.const("W_ho", np.ascontiguousarray(w_ho.T))]), c.const("b_o", b_o)])
    c.emit("Tanh", [out], output_index=0)
    _expose_final_states(c, [h_T])


@converter("LSTMUnit")
def lstm_unit(c: LayerContext) -> None:
    """Bottoms c_prev (1, N, H), gate inputs (1, N, 4H) in the order i, f, o, g, cont (1, N):
    c = cont * sigmoid(f) * c_prev + sigmoid(i) * tanh(g), h = sigmoid(o) * tanh(c)."""
    c_prev, gates, cont = c.inputs
    hidden = int(c.bottom_shapes[0][-1])
    g = c.graph
    names = [g.fresh(f"{c.name}/{gate}") for gate in "ifog"]
    g.node("Split", [gates, g.ints(f"{c.name}/split", [hidden] * 4)], names, name=c.name, axis=2)
    i, f, o = (c.emit("Sigmoid", [name]) for name in names[:3])
    candidate = c.emit("Tanh", [names[3]])
    keep = c.emit("Unsqueeze", [cont, g.ints(f"{c.name}/axis2", [2])])
    forget = c.emit("Mul", [f, keep])
    cell = c.emit("Add", [c.emit("Mul", [forget, c_prev]), c.emit("Mul", [i, candidate])], output_index=0)
    c.emit("Mul", [o, c.emit("Tanh", [cell])], output_index=1)
