"""Review: Eltwise run in place (top == bottom 0).  Caffe's forward first fills the top (SUM: 0,
MAX: -FLT_MAX), which wipes bottom 0 out before it is read; the interpreter reproduces that and
the ONNX export must agree with the interpreter."""
import numpy as np
import pytest

from caffe_cae.net import Net
from caffe_cae.onnx import export_net, make_session
from caffe_cae.proto import caffe_pb2
from caffe_cae.prototxt import parse_text

NET = """
name: "eltwise_in_place"
layer {{ name: "in" type: "Input" top: "a" top: "b" top: "c" input_param {{ shape {{ dim: 2 dim: 5 }} shape {{ dim: 2 dim: 5 }} shape {{ dim: 2 dim: 5 }} }} }}
layer {{ name: "e" type: "Eltwise" bottom: "a" bottom: "b" bottom: "c" top: "a" eltwise_param {{ operation: {op} {coeff} }} }}
layer {{ name: "s" type: "Sigmoid" bottom: "a" top: "s" }}
"""


def _feeds():
    rng = np.random.default_rng(3)
    return {k: rng.standard_normal((2, 5)).astype(np.float32) for k in "abc"}


@pytest.mark.parametrize("op,coeff,expected", [
    ("SUM", "coeff: 2 coeff: -1 coeff: 0.5", lambda a, b, c: -b + 0.5 * c),
    ("MAX", "", lambda a, b, c: np.maximum(b, c)),
    ("PROD", "", lambda a, b, c: a * b * c),
])
def test_in_place_eltwise_forward_like_caffe_and_onnx_agrees(op, coeff, expected):
    net = Net(parse_text(NET.format(op=op, coeff=coeff), caffe_pb2.NetParameter, "review"), phase=caffe_pb2.TEST)
    feeds = _feeds()
    out = net.forward(**feeds)
    want = 1 / (1 + np.exp(-expected(feeds["a"], feeds["b"], feeds["c"])))
    np.testing.assert_allclose(out["s"], want, rtol=1e-6, atol=1e-6)
    model = export_net(net)
    got = make_session(model, "cpu").run(["s"], _feeds())[0]
    np.testing.assert_allclose(got, out["s"], rtol=0, atol=1e-6)
