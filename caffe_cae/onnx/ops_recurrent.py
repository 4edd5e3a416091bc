"""Recurrent layers: LSTMUnit (one step, element-wise) converts; RNN and LSTM are refused."""
from __future__ import annotations

from caffe_cae.onnx.converters import LayerContext, converter, unexportable

unexportable("RNN", "its time loop with sequence-continuation markers and carried state is not exported; "
                    "export the layers of one time step instead")
unexportable("LSTM", "its time loop with sequence-continuation markers and carried state is not exported; "
                     "export an LSTMUnit step instead")


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
