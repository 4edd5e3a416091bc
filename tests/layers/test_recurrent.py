"""RNN, LSTM and LSTMUnit beyond the golden cases: the state carried between forwards, the static
input, exposed states, fillers and Caffe's refusals."""
from __future__ import annotations

import numpy as np
import pytest

import caffe_cae
from caffe_cae.errors import CaffeCaeError
from caffe_cae.proto import caffe_pb2
from caffe_cae.prototxt import parse_text
from tests.helpers.golden import open_case

FILLERS = 'weight_filler { type: "uniform" min: -0.5 max: 0.5 } bias_filler { type: "uniform" min: -0.3 max: 0.3 }'


def input_layer(name, shape):
    dims = " ".join(f"dim: {d}" for d in shape)
    return f'layer {{ name: "{name}" type: "Input" top: "{name}" input_param {{ shape {{ {dims} }} }} }}\n'


def recurrent_net(kind, inputs, tops=("y",), extra="", hidden=3, force_backward=False):
    text = "force_backward: true\n" if force_backward else ""
    text += "".join(input_layer(name, shape) for name, shape in inputs)
    bottoms = "".join(f' bottom: "{name}"' for name, _ in inputs)
    top_text = "".join(f' top: "{t}"' for t in tops)
    text += (f'layer {{ name: "r" type: "{kind}"{bottoms}{top_text} '
             f'recurrent_param {{ num_output: {hidden} {FILLERS} {extra} }} }}')
    return caffe_cae.Net(parse_text(text, caffe_pb2.NetParameter, "<test>"), seed=7)


def copy_params(source, target):
    for a, b in zip(source.layers[-1].blobs, target.layers[-1].blobs):
        b.data[...] = a.data


STATES = {"RNN": ("h0",), "LSTM": ("h0", "c0")}


@pytest.mark.parametrize("kind", ["RNN", "LSTM"])
def test_a_forward_continues_from_the_previous_final_state(kind):
    """Without expose_hidden the initial state is where the last forward ended: the same as
    feeding that final state to an expose_hidden layer."""
    rng = np.random.default_rng(1)
    steps, streams, hidden = 3, 2, 3
    x1, x2 = rng.standard_normal((2, steps, streams, 2)).astype(np.float32)
    cont = np.ones((steps, streams), np.float32)
    carried = recurrent_net(kind, [("x", x1.shape), ("cont", cont.shape)], hidden=hidden)
    states = STATES[kind]
    exposed = recurrent_net(
        kind, [("x", x1.shape), ("cont", cont.shape)] + [(s, (1, streams, hidden)) for s in states],
        tops=("y",) + tuple(s.replace("0", "T") for s in states), extra="expose_hidden: true", hidden=hidden)
    copy_params(carried, exposed)
    first = carried.forward(x=x1, cont=cont)["y"]
    zeros = {s: np.zeros((1, streams, hidden), np.float32) for s in states}
    out = exposed.forward(x=x1, cont=cont, **zeros)
    np.testing.assert_allclose(out["y"], first, rtol=1e-6, atol=1e-7)  # the first forward starts at 0
    finals = {s: out[s.replace("0", "T")] for s in states}
    second = carried.forward(x=x2, cont=cont)["y"]
    np.testing.assert_allclose(exposed.forward(x=x2, cont=cont, **finals)["y"], second, rtol=1e-6, atol=1e-7)
    assert not np.allclose(second, carried.forward(x=x2, cont=np.where(np.arange(steps)[:, None] == 0, 0, cont)
                                                   .astype(np.float32))["y"])


def test_cont_zero_at_the_first_step_forgets_the_carried_state():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((3, 2, 2)).astype(np.float32)
    cont = np.array([[0, 0], [1, 1], [1, 0]], np.float32)
    net = recurrent_net("LSTM", [("x", x.shape), ("cont", cont.shape)])
    first = net.forward(x=x, cont=cont)["y"]
    np.testing.assert_array_equal(net.forward(x=x, cont=cont)["y"], first)


def test_carried_state_after_a_batch_size_change():
    """Caffe's state blob keeps its memory while the batch fits in it (a smaller batch reads the
    first streams' state) and gets new zeroed memory when the batch outgrows it."""
    rng = np.random.default_rng(3)
    cont = lambda n: np.ones((2, n), np.float32)  # noqa: E731
    x = rng.standard_normal((2, 4, 2)).astype(np.float32)
    net = recurrent_net("RNN", [("x", (2, 3, 2)), ("cont", (2, 3))])
    net.forward(x=x[:, :3], cont=cont(3))
    shrunk = net.forward(x=x[:, :2], cont=cont(2))["y"]
    same = recurrent_net("RNN", [("x", (2, 3, 2)), ("cont", (2, 3))])
    same.forward(x=x[:, :3], cont=cont(3))
    np.testing.assert_array_equal(shrunk, same.forward(x=x[:, :3], cont=cont(3))["y"][:, :2])
    grown = net.forward(x=x, cont=cont(4))["y"]  # 4 streams outgrow the memory of 3: zero state
    zero_start = recurrent_net("RNN", [("x", (2, 4, 2)), ("cont", (2, 4))]).forward(x=x, cont=cont(4))["y"]
    np.testing.assert_array_equal(grown, zero_start)


@pytest.mark.parametrize("kind, gates", [("RNN", 1), ("LSTM", 4)])
def test_static_input_is_a_tiled_extra_input(kind, gates):
    """x_static (N, S) with W_static acts as x_t' = [x_t; x_static] with W = [W_x, W_static]."""
    rng = np.random.default_rng(4)
    steps, streams, hidden = 4, 3, 2
    x = rng.standard_normal((steps, streams, 2)).astype(np.float32)
    xs = rng.standard_normal((streams, 2, 2)).astype(np.float32)
    cont = np.array([[0, 0, 0], [1, 1, 0], [1, 0, 1], [1, 1, 1]], np.float32)
    static = recurrent_net(kind, [("x", x.shape), ("cont", cont.shape), ("xs", xs.shape)], hidden=hidden)
    tiled_x = np.concatenate([x, np.broadcast_to(xs.reshape(1, streams, 4), (steps, streams, 4))], axis=2)
    plain = recurrent_net(kind, [("x", tiled_x.shape), ("cont", cont.shape)], hidden=hidden)
    s, p = static.layers[-1].blobs, plain.layers[-1].blobs
    assert [b.shape for b in s] == [(gates * hidden, 2), (gates * hidden,), (gates * hidden, 4)] + [b.shape for b in p[2:]]
    p[0].data[...] = np.concatenate([s[0].data, s[2].data], axis=1)
    p[1].data[...] = s[1].data
    for a, b in zip(s[3:], p[2:]):
        b.data[...] = a.data
    np.testing.assert_allclose(static.forward(x=x, cont=cont, xs=xs)["y"],
                               plain.forward(x=tiled_x, cont=cont)["y"], rtol=1e-5, atol=1e-6)


def test_exposed_states_get_no_diff_and_final_state_diffs_are_ignored():
    """Caffe shares only the data of the exposed states with its unrolled net."""
    case = open_case("bvlc/lstm_expose_hidden")
    net = caffe_cae.Net(str(case.path("net.prototxt")), str(case.path("init.caffemodel")))
    inputs = {name: case.data[f"in/{name}"] for name in ("x", "cont", "h0", "c0")}
    net.forward(**inputs)
    dx = net.backward(h=case.data["top_diff/h"], hT=case.data["top_diff/hT"], cT=case.data["top_diff/cT"])["x"]
    np.testing.assert_array_equal(net.blobs["h0"].diff, 0)
    np.testing.assert_array_equal(net.blobs["c0"].diff, 0)
    net.forward(**inputs)
    zeros = np.zeros((1, 2, 3), np.float32)
    np.testing.assert_array_equal(net.backward(h=case.data["top_diff/h"], hT=zeros, cT=zeros)["x"], dx)


def test_fillers_come_from_recurrent_param():
    net = recurrent_net("LSTM", [("x", (2, 3, 5)), ("cont", (2, 3))], hidden=4)
    weights, bias, recurrent = (b.data for b in net.layers[-1].blobs)
    assert weights.shape == (16, 5) and bias.shape == (16,) and recurrent.shape == (16, 4)
    assert np.abs(weights).max() <= 0.5 and np.abs(recurrent).max() <= 0.5 and np.abs(bias).max() <= 0.3
    assert weights.std() > 0.1 and bias.std() > 0.05


def test_x_gets_its_diff_even_without_force_backward():
    """The unrolled net forces propagate_down on x: an Input x still gets its diff."""
    rng = np.random.default_rng(5)
    net = recurrent_net("RNN", [("x", (2, 2, 3)), ("cont", (2, 2))])
    net.forward(x=rng.standard_normal((2, 2, 3)).astype(np.float32), cont=np.zeros((2, 2), np.float32))
    net.layers[-1].backward([net.blobs["y"]], [False, False], [net.blobs["x"], net.blobs["cont"]])
    assert np.abs(net.blobs["x"].diff).max() == 0  # y's diff is 0: x's diff is written as 0 ...
    net.blobs["y"].diff[...] = 1
    net.layers[-1].backward([net.blobs["y"]], [False, False], [net.blobs["x"], net.blobs["cont"]])
    assert np.abs(net.blobs["x"].diff).max() > 0  # ... and as the gradient


def test_cont_refuses_a_diff():
    net = recurrent_net("LSTM", [("x", (2, 2, 3)), ("cont", (2, 2))])
    net.forward()
    with pytest.raises(CaffeCaeError, match=r"layer 'r' \(LSTM\): Cannot backpropagate to sequence indicators"):
        net.layers[-1].backward([net.blobs["y"]], [True, True], [net.blobs["x"], net.blobs["cont"]])


@pytest.mark.parametrize("inputs, extra, message", [
    ([("x", (4,)), ("cont", (4, 1))], "", r"bottom\[0\] must have at least 2 axes"),
    ([("x", (4, 2, 3)), ("cont", (4, 2, 1))], "", r"bottom\[1\] must have exactly 2 axes"),
    ([("x", (4, 2, 3)), ("cont", (4, 3))], "", r"cont \(bottom 1\) must be \(T, N\)"),
    ([("x", (4, 2, 3)), ("cont", (4, 2)), ("xs", (3, 2))], "", r"x_static \(bottom 2\) must be \(N, \.\.\.\)"),
    ([("x", (4, 2, 3)), ("cont", (4, 2)), ("h0", (1, 2, 4))], "expose_hidden: true",
     r"bottom\[2\] shape must match hidden state input shape: 1 2 3"),
    ([("x", (4, 2, 3)), ("cont", (4, 2))], "expose_hidden: true", r"takes at least 3 bottom blob"),
])
def test_setup_refusals(inputs, extra, message):
    with pytest.raises(CaffeCaeError, match=r"layer 'r' \(RNN\): " + message):
        recurrent_net("RNN", inputs, extra=extra, tops=("y", "hT") if extra else ("y",))


def test_num_output_must_be_positive():
    with pytest.raises(CaffeCaeError, match="num_output must be positive"):
        recurrent_net("LSTM", [("x", (2, 2, 3)), ("cont", (2, 2))], hidden=0)


def test_number_of_timesteps_is_fixed_at_setup():
    net = recurrent_net("RNN", [("x", (4, 2, 3)), ("cont", (4, 2))])
    net.forward(x=np.zeros((4, 5, 3), np.float32), cont=np.zeros((4, 5), np.float32))  # N may change
    with pytest.raises(CaffeCaeError, match="input number of timesteps changed: 4 at setup, now 3"):
        net.forward(x=np.zeros((3, 2, 3), np.float32), cont=np.zeros((3, 2), np.float32))


def unit_net(shapes):
    text = "".join(input_layer(name, shape) for name, shape in zip(("c_prev", "xg", "cont"), shapes))
    text += 'layer { name: "u" type: "LSTMUnit" bottom: "c_prev" bottom: "xg" bottom: "cont" top: "c" top: "h" }'
    return caffe_cae.Net(parse_text(text, caffe_pb2.NetParameter, "<test>"))


def test_lstm_unit_uses_non_binary_cont_as_a_forget_gate_factor():
    rng = np.random.default_rng(6)
    c_prev = rng.standard_normal((1, 3, 2)).astype(np.float32)
    xg = rng.standard_normal((1, 3, 8)).astype(np.float32)
    cont = np.array([[0.0, 0.5, 1.0]], np.float32)
    out = unit_net([c_prev.shape, xg.shape, cont.shape]).forward(c_prev=c_prev, xg=xg, cont=cont)
    s = lambda v: 1 / (1 + np.exp(-v.astype(np.float64)))  # noqa: E731
    i, f, o, g = s(xg[0, :, :2]), s(xg[0, :, 2:4]), s(xg[0, :, 4:6]), np.tanh(xg[0, :, 6:].astype(np.float64))
    c = cont[0][:, None] * f * c_prev[0] + i * g
    np.testing.assert_allclose(out["c"][0], c, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(out["h"][0], o * np.tanh(c), rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("shapes, message", [
    ([(3, 4), (1, 3, 16), (1, 3)], r"Check failed: 3 == bottom\[0\]->num_axes\(\) \(3 vs\. 2\)"),
    ([(1, 3, 4), (1, 3, 16), (1, 3, 1)], r"Check failed: 2 == bottom\[2\]->num_axes\(\)"),
    ([(2, 3, 4), (2, 3, 16), (2, 3)], r"bottom 0 must be \(1, N = 3, \.\.\.\)"),
    ([(1, 3, 4), (1, 2, 16), (1, 3)], r"bottom 1 must be \(1, N = 3, \.\.\.\)"),
    ([(1, 3, 4), (1, 3, 12), (1, 3)], r"Check failed: 4 \* hidden_dim_ == bottom\[1\]->shape\(2\) \(16 vs\. 12\)"),
])
def test_lstm_unit_shape_refusals(shapes, message):
    with pytest.raises(CaffeCaeError, match=r"layer 'u' \(LSTMUnit\): " + message):
        unit_net(shapes)
