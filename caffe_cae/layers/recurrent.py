"""Recurrent layers: RNN, LSTM (Caffe's RecurrentLayer family) and LSTMUnit.

Caffe builds RNN and LSTM as an internal "unrolled" net of InnerProduct, Scale, Eltwise, TanH
and LSTMUnit layers (recurrent_layer.cpp, rnn_layer.cpp, lstm_layer.cpp).  The layers here
compute what that net computes, one loop over the time steps, vectorised over the streams:

* bottoms ``x`` (T, N, ...), ``cont`` (T, N) sequence-continuation markers, an optional static
  input ``x_static`` (N, ...), and with ``expose_hidden`` the initial states (1, N, H) (RNN:
  h0; LSTM: h0, c0);
* tops: the outputs (T, N, H) and with ``expose_hidden`` the final states (1, N, H);
* ``cont_t`` multiplies the previous hidden state before it enters step t (0 starts a new
  sequence); the LSTM's forget gate is multiplied by it too;
* without ``expose_hidden`` a forward starts from the state the previous forward ended in
  (zeros at first): that only shows where ``cont[0]`` is not 0.

Backward follows the unrolled net, including where it is not the full gradient: no diff flows
into ``cont``, into the exposed initial states (Caffe shares only their data with the
internal net) or out of the exposed final states (ditto), and the time-varying input ``x``
(and ``x_static``) always gets its diff, as the internal net forces ``propagate_down`` on it.
The parameter gradients are always accumulated (the internal net's own flags are all on).
"""
from __future__ import annotations

import math

import numpy as np

from caffe_cae.layers.base import Layer
from caffe_cae.layers.registry import register
from caffe_cae.proto import caffe_pb2


def sigmoid(x: np.ndarray) -> np.ndarray:
    """LSTMUnit's ``1. / (1. + exp(-x))``: evaluated in double, rounded to the blob type."""
    with np.errstate(over="ignore"):
        return (1.0 / (1.0 + np.exp(-x.astype(np.float64)))).astype(x.dtype)


def unit_tanh(x: np.ndarray) -> np.ndarray:
    """LSTMUnit's own ``tanh(x) = 2. * sigmoid(2. * x) - 1.`` in double, rounded once."""
    with np.errstate(over="ignore"):
        return (2.0 / (1.0 + np.exp(-2.0 * x.astype(np.float64))) - 1.0).astype(x.dtype)


def lstm_gates(gate_input: np.ndarray, cont: np.ndarray):
    """Activations i, f, o, g of an (N, 4H) gate input (order i, f, o, g); f is multiplied by
    cont (exactly 0 where cont == 0)."""
    hidden = gate_input.shape[-1] // 4
    i, f, o, g = (gate_input[..., k * hidden:(k + 1) * hidden] for k in range(4))
    cont = cont.reshape(-1, 1).astype(gate_input.dtype)
    f = np.where(cont == 0, gate_input.dtype.type(0), cont * sigmoid(f))
    return sigmoid(i), f, sigmoid(o), unit_tanh(g)


def lstm_unit_forward(c_prev: np.ndarray, gate_input: np.ndarray, cont: np.ndarray):
    """One LSTMUnit step on (N, H) / (N, 4H) / (N,): returns c, h."""
    i, f, o, g = lstm_gates(gate_input, cont)
    c = f * c_prev + i * g
    return c, o * unit_tanh(c)


def lstm_unit_backward(c_prev, gate_input, cont, c, c_diff, h_diff):
    """LSTMUnit::Backward_cpu: the diffs of c_prev (N, H) and of the gate input (N, 4H).

    Caffe differentiates the forget gate as ``f * (1 - f)`` with f already multiplied by cont:
    the exact derivative for binary cont, used as is for other values."""
    i, f, o, g = lstm_gates(gate_input, cont)
    tanh_c = unit_tanh(c)
    one = c.dtype.type(1)
    c_term = c_diff + h_diff * o * (one - tanh_c * tanh_c)
    gate_diff = np.concatenate([
        c_term * g * i * (one - i),
        c_term * c_prev * f * (one - f),
        h_diff * tanh_c * o * (one - o),
        c_term * i * (one - g * g),
    ], axis=-1)
    return c_term * f, gate_diff


class RecurrentLayer(Layer):
    """What RNN and LSTM share: blob counts, shape checks, input transforms, carried state,
    parameter gradients of the transforms.  Subclasses define the step."""

    #: recurrent states (RNN: h; LSTM: h, c) and gate blocks per state (LSTM: i, f, o, g)
    n_states: int = 1
    n_gates: int = 1
    feature_tops = 1  # the outputs; exposed final states repeat their last step

    def __init__(self, param, phase=caffe_pb2.TEST):
        super().__init__(param, phase)
        exposed = self.n_states if param.recurrent_param.expose_hidden else 0
        self.min_bottoms = 2 + exposed  # x, cont, [x_static], [initial states]
        self.max_bottoms = 3 + exposed
        self.exact_tops = 1 + exposed

    def allow_force_backward(self, bottom_index):
        return bottom_index != 1  # the sequence continuation markers

    # -- setup -------------------------------------------------------------------------------
    def setup(self, bottom_shapes):
        rp = self.param.recurrent_param
        self.hidden = int(rp.num_output)
        if self.hidden <= 0:
            raise self.error("num_output must be positive")
        self.expose_hidden = bool(rp.expose_hidden)
        x = tuple(bottom_shapes[0])
        if len(x) < 2:
            raise self.error(f"bottom[0] must have at least 2 axes -- (#timesteps, #streams, ...); got {list(x)}")
        self.steps = x[0]
        self._check_cont(bottom_shapes[1], x)
        exposed = self.n_states if self.expose_hidden else 0
        self.static = len(bottom_shapes) > 2 + exposed
        self.input_dim = math.prod(x[2:])
        width = self.n_gates * self.hidden
        shapes = [(width, self.input_dim), (width,)]
        if self.static:
            xs = tuple(bottom_shapes[2])
            if len(xs) < 1 or xs[0] != x[1]:
                raise self.error(f"x_static (bottom 2) must be (N, ...) with N = {x[1]} streams; got {list(xs)}")
            self.static_dim = math.prod(xs[1:])
            shapes.append((width, self.static_dim))
        self._carried: list[np.ndarray] = [np.zeros(0, np.float32) for _ in range(self.n_states)]
        return shapes + self.recurrent_param_shapes()

    def recurrent_param_shapes(self) -> list[tuple[int, ...]]:
        raise NotImplementedError

    def _check_cont(self, cont, x):
        cont = tuple(cont)
        if len(cont) != 2:
            raise self.error(f"bottom[1] must have exactly 2 axes -- (#timesteps, #streams); got {list(cont)}")
        if cont != tuple(x[:2]):
            raise self.error(f"cont (bottom 1) must be (T, N) = {list(x[:2])}; got {list(cont)}")

    def reshape(self, bottom_shapes):
        x = tuple(bottom_shapes[0])
        if len(x) < 2:
            raise self.error(f"bottom[0] must have at least 2 axes -- (#timesteps, #streams, ...); got {list(x)}")
        if x[0] != self.steps:
            raise self.error(f"input number of timesteps changed: {self.steps} at setup, now {x[0]}")
        if math.prod(x[2:]) != self.input_dim:
            raise self.error(f"Input size incompatible with inner product parameters: x {list(x)} has "
                             f"{math.prod(x[2:])} values per step and stream, the layer was set up for {self.input_dim}")
        self._check_cont(bottom_shapes[1], x)
        streams = x[1]
        if self.static:
            xs = tuple(bottom_shapes[2])
            if len(xs) < 1 or xs[0] != streams or math.prod(xs[1:]) != self.static_dim:
                raise self.error(f"x_static (bottom 2) must be (N = {streams}, ...) with {self.static_dim} values per "
                                 f"stream; got {list(xs)}")
        state = (1, streams, self.hidden)
        if self.expose_hidden:
            first = 2 + self.static
            for k, shape in enumerate(bottom_shapes[first:]):
                if tuple(shape) != state:
                    raise self.error(f"bottom[{first + k}] shape must match hidden state input shape: "
                                     f"{' '.join(map(str, state))} ({len(state)} axes); got {list(shape)}")
        tops = [(self.steps, streams, self.hidden)]
        return tops + ([state] * self.n_states if self.expose_hidden else [])

    def fill_params(self, rng):
        from caffe_cae.fillers import fill  # lazy: fillers are optional for pure inference

        rp = self.param.recurrent_param
        for blob in self.blobs:  # weights are 2-D, biases 1-D
            which = "bias_filler" if blob.data.ndim == 1 else "weight_filler"
            blob.data[...] = fill(getattr(rp, which), blob.shape, rng, blob.dtype,
                                  where=f"layer '{self.name}' ({self.type}): recurrent_param.{which}")

    # -- forward helpers ---------------------------------------------------------------------
    def _inputs(self, bottom):
        """x (T, N, D), cont (T, N), the transformed input W x + b (T, N, G·H) and the
        transformed static input (N, G·H) or None."""
        x = bottom[0].data
        steps, streams = x.shape[:2]
        flat = x.reshape(steps * streams, self.input_dim)
        projected = (flat @ self.blobs[0].data.T + self.blobs[1].data).reshape(steps, streams, -1)
        static = None
        if self.static:
            static = bottom[2].data.reshape(streams, self.static_dim) @ self.blobs[2].data.T
        return flat, bottom[1].data.reshape(steps, streams), projected, static

    def _initial_states(self, bottom, streams, dtype) -> list[np.ndarray]:
        """(N, H) initial states: the exposed bottoms, or what the previous forward ended in.

        The carried state lives in a flat buffer like Caffe's blob memory: a smaller batch
        reads its prefix, a larger one (new memory) starts from zeros."""
        if self.expose_hidden:
            first = 2 + self.static
            return [bottom[first + k].data.reshape(streams, self.hidden) for k in range(self.n_states)]
        count = streams * self.hidden
        states = []
        for k in range(self.n_states):
            buffer = self._carried[k]
            if buffer.size < count or buffer.dtype != dtype:
                buffer = self._carried[k] = np.zeros(count, dtype)
            states.append(buffer[:count].reshape(streams, self.hidden).copy())
        return states

    def _final_states(self, top, states: list[np.ndarray]) -> None:
        if self.expose_hidden:
            for k, state in enumerate(states):
                top[1 + k].data[...] = state.reshape(top[1 + k].shape)
        else:
            for k, state in enumerate(states):
                self._carried[k][:state.size] = state.reshape(-1)

    # -- backward helpers --------------------------------------------------------------------
    def _input_backward(self, bottom, flat_x, gate_diff: np.ndarray) -> None:
        """Diffs of the input transforms from the diff of the gate inputs (T, N, G·H)."""
        steps, streams = bottom[0].shape[:2]
        width = gate_diff.shape[-1]
        flat = gate_diff.reshape(steps * streams, width)
        self.blobs[0].diff += flat.T @ flat_x
        self.blobs[1].diff += flat.sum(axis=0)
        bottom[0].diff[...] = (flat @ self.blobs[0].data).reshape(bottom[0].shape)
        if self.static:
            xs = bottom[2].data.reshape(streams, self.static_dim)
            static_diff = gate_diff.sum(axis=0)  # the one static transform feeds every step
            self.blobs[2].diff += static_diff.T @ xs
            bottom[2].diff[...] = (static_diff @ self.blobs[2].data).reshape(bottom[2].shape)

    def _check_cont_backward(self, propagate_down):
        if propagate_down[1]:
            raise self.error("Cannot backpropagate to sequence indicators.")


@register("RNN")
class RNNLayer(RecurrentLayer):
    """h_t = tanh(W_xh x_t + b_h [+ W_xh_static x_static] + W_hh (cont_t · h_{t-1})),
    o_t = tanh(W_ho h_t + b_o); top: o.  Params W_xh (H, D), b_h (H), [W_xh_static (H, S)],
    W_hh (H, H), W_ho (H, H), b_o (H)."""

    def recurrent_param_shapes(self):
        h = self.hidden
        return [(h, h), (h, h), (h,)]

    def _recurrent_blobs(self):
        first = 3 if self.static else 2
        return self.blobs[first], self.blobs[first + 1], self.blobs[first + 2]  # W_hh, W_ho, b_o

    def forward(self, bottom, top):
        flat_x, cont, projected, static = self._inputs(bottom)
        steps, streams = cont.shape
        w_hh, w_ho, b_o = (b.data for b in self._recurrent_blobs())
        (h,) = self._initial_states(bottom, streams, projected.dtype)
        hs = np.empty((steps, streams, self.hidden), projected.dtype)
        conted = np.empty_like(hs)  # h_conted_{t-1} = cont_t · h_{t-1}, the input of W_hh
        for t in range(steps):
            np.multiply(h, cont[t][:, None], out=conted[t])
            pre = conted[t] @ w_hh.T + projected[t]
            if static is not None:
                pre += static
            h = hs[t] = np.tanh(pre)
        out = np.tanh(hs.reshape(-1, self.hidden) @ w_ho.T + b_o)
        top[0].data[...] = out.reshape(top[0].shape)
        self._final_states(top, [h])
        self.saved = (flat_x, cont, hs, conted)

    def backward(self, top, propagate_down, bottom):
        self._check_cont_backward(propagate_down)
        flat_x, cont, hs, conted = self.saved
        steps, streams = cont.shape
        hidden = self.hidden
        w_hh, w_ho, b_o = self._recurrent_blobs()
        out = top[0].data.reshape(-1, hidden)
        one = out.dtype.type(1)
        out_diff = top[0].diff.reshape(-1, hidden) * (one - out * out)
        w_ho.diff += out_diff.T @ hs.reshape(-1, hidden)
        b_o.diff += out_diff.sum(axis=0)
        h_diff = (out_diff @ w_ho.data).reshape(steps, streams, hidden)
        pre_diff = np.empty_like(h_diff)
        for t in range(steps - 1, -1, -1):
            pre_diff[t] = h_diff[t] * (one - hs[t] * hs[t])
            if t > 0:  # through h_conted_{t-1} = cont_t · h_{t-1} (h_0 gets no diff)
                h_diff[t - 1] += (pre_diff[t] @ w_hh.data) * cont[t][:, None]
        w_hh.diff += pre_diff.reshape(-1, hidden).T @ conted.reshape(-1, hidden)
        self._input_backward(bottom, flat_x, pre_diff)


@register("LSTM")
class LSTMLayer(RecurrentLayer):
    """Gate input_t = W_xc x_t + b_c [+ W_xc_static x_static] + W_hc (cont_t · h_{t-1}), gates in
    the order i, f, o, g; c_t = cont_t·f_t·c_{t-1} + i_t·g_t, h_t = o_t·tanh(c_t); top: h.
    Params W_xc (4H, D), b_c (4H), [W_xc_static (4H, S)], W_hc (4H, H).  Exposed states and
    final-state tops are ordered h, c."""

    n_states = 2
    n_gates = 4

    def recurrent_param_shapes(self):
        return [(4 * self.hidden, self.hidden)]

    def forward(self, bottom, top):
        flat_x, cont, projected, static = self._inputs(bottom)
        steps, streams = cont.shape
        w_hc = self.blobs[-1].data
        h, c = self._initial_states(bottom, streams, projected.dtype)
        gate_inputs = np.empty_like(projected)
        hs = np.empty((steps, streams, self.hidden), projected.dtype)
        cs = np.empty_like(hs)
        conted = np.empty_like(hs)
        c_prevs = np.empty_like(hs)
        for t in range(steps):
            np.multiply(h, cont[t][:, None], out=conted[t])
            gate_inputs[t] = conted[t] @ w_hc.T + projected[t]
            if static is not None:
                gate_inputs[t] += static
            c_prevs[t] = c
            c, h = lstm_unit_forward(c, gate_inputs[t], cont[t])
            cs[t], hs[t] = c, h
        top[0].data[...] = hs.reshape(top[0].shape)
        self._final_states(top, [h, c])
        self.saved = (flat_x, cont, gate_inputs, c_prevs, cs, conted)

    def backward(self, top, propagate_down, bottom):
        self._check_cont_backward(propagate_down)
        flat_x, cont, gate_inputs, c_prevs, cs, conted = self.saved
        steps, streams = cont.shape
        w_hc = self.blobs[-1]
        h_diff = top[0].diff.reshape(steps, streams, self.hidden).copy()
        c_diff = np.zeros((streams, self.hidden), cs.dtype)  # c_T feeds nothing that back-propagates
        gate_diff = np.empty_like(gate_inputs)
        for t in range(steps - 1, -1, -1):
            c_diff, gate_diff[t] = lstm_unit_backward(c_prevs[t], gate_inputs[t], cont[t], cs[t], c_diff, h_diff[t])
            if t > 0:  # through h_conted_{t-1} = cont_t · h_{t-1} (h_0 and c_0 get no diff)
                h_diff[t - 1] += (gate_diff[t] @ w_hc.data) * cont[t][:, None]
        w_hc.diff += gate_diff.reshape(-1, 4 * self.hidden).T @ conted.reshape(-1, self.hidden)
        self._input_backward(bottom, flat_x, gate_diff)


@register("LSTMUnit")
class LSTMUnitLayer(Layer):
    """One LSTM step: bottoms c_prev (1, N, H), gate input (1, N, 4H) in the order i, f, o, g,
    cont (1, N); tops c, h (1, N, H).  c = cont·f·c_prev + i·g, h = o·tanh(c).  Backward writes
    both diffs when either is needed; cont gets none."""

    exact_bottoms = 3
    exact_tops = 2
    feature_tops = -1

    def allow_force_backward(self, bottom_index):
        return bottom_index != 2

    def reshape(self, bottom_shapes):
        shapes = [tuple(s) for s in bottom_shapes]
        streams = shapes[0][1] if len(shapes[0]) > 1 else None
        for i, shape in enumerate(shapes):
            axes = 2 if i == 2 else 3
            if len(shape) != axes:
                raise self.error(f"Check failed: {axes} == bottom[{i}]->num_axes() ({axes} vs. {len(shape)}): "
                                 f"bottom {i} {list(shape)}")
            if shape[0] != 1 or shape[1] != streams:
                raise self.error(f"bottom {i} must be (1, N = {streams}, ...); got {list(shape)}")
        hidden = shapes[0][2]
        if shapes[1][2] != 4 * hidden:
            raise self.error(f"Check failed: 4 * hidden_dim_ == bottom[1]->shape(2) ({4 * hidden} vs. "
                             f"{shapes[1][2]}): the gate input holds i, f, o, g for {hidden} cells")
        return [shapes[0], shapes[0]]

    def forward(self, bottom, top):
        streams = bottom[0].shape[1]
        c, h = lstm_unit_forward(bottom[0].data[0], bottom[1].data[0], bottom[2].data.reshape(streams))
        top[0].data[0] = c
        top[1].data[0] = h

    def backward(self, top, propagate_down, bottom):
        if propagate_down[2]:
            raise self.error("Cannot backpropagate to sequence indicators.")
        if not (propagate_down[0] or propagate_down[1]):
            return
        streams = bottom[0].shape[1]
        c_prev_diff, gate_diff = lstm_unit_backward(
            bottom[0].data[0], bottom[1].data[0], bottom[2].data.reshape(streams), top[0].data[0],
            top[0].diff[0], top[1].diff[0])
        bottom[0].diff[0] = c_prev_diff
        bottom[1].diff[0] = gate_diff
