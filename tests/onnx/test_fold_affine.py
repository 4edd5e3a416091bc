"""Per-channel Sub/Div/Mul/Add chains (BatchNorm, Scale, Bias at inference) folded into the
Conv/ConvTranspose/Gemm before them: same values in onnxruntime, fewer nodes, and nothing folded
where the constant is not per channel, the linear output has other readers or is an output."""
import numpy as np
import pytest
from onnx import TensorProto, helper

from caffe_cae.onnx.fusion import fold_affine_into_linear
from caffe_cae.onnx.graph import GraphBuilder
from caffe_cae.onnx.runtime import make_session

RNG = np.random.default_rng(3)


def _values(*shape):
    return RNG.standard_normal(shape).astype(np.float32)


def _run(graph, x, output):
    model = helper.make_model(
        helper.make_graph(list(graph.nodes), "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(x.shape))],
                          [helper.make_tensor_value_info(output, TensorProto.FLOAT, None)], list(graph.initializers)),
        opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return make_session(model, "cpu").run(None, {"x": x})[0]


def _chain(op, weight, bias, chain, attrs=None, extra_reader=False):
    graph = GraphBuilder()
    graph.reserve("x")
    inputs = ["x", graph.const("W", weight)] + ([graph.const("b", bias)] if bias is not None else [])
    y = graph.one(op, inputs, name="linear", **(attrs or {}))
    for k, (step, value) in enumerate(chain):
        y = graph.one(step, [y, graph.const(f"c{k}", value)], name=f"step{k}")
    if extra_reader:
        y = graph.one("Add", [y, graph.nodes[0].output[0]], name="reader")
    return graph, y


CASES = {
    "conv_batchnorm_scale": ("Conv", _values(4, 3, 3, 3), _values(4), (2, 3, 6, 6), None,
                             [("Sub", _values(4, 1, 1)), ("Div", np.abs(_values(4, 1, 1)) + 0.5),
                              ("Mul", _values(4, 1, 1)), ("Add", _values(4, 1, 1))]),
    "conv_no_bias_scalar": ("Conv", _values(4, 3, 1, 1), None, (2, 3, 5, 5), None,
                            [("Mul", np.float32(1.5)), ("Add", _values(1, 4, 1, 1))]),
    "deconv_groups": ("ConvTranspose", _values(4, 3, 2, 2), _values(6), (2, 4, 3, 3), {"group": 2, "strides": [2, 2]},
                      [("Mul", _values(6, 1, 1)), ("Add", _values(6, 1, 1))]),
    "gemm_batchnorm": ("Gemm", _values(5, 3), _values(3), (4, 5), None,
                       [("Sub", _values(3)), ("Div", np.abs(_values(3)) + 0.5)]),
}


@pytest.mark.parametrize("name", CASES)
def test_folded_chain_keeps_the_values(name):
    op, weight, bias, x_shape, attrs, chain = CASES[name]
    x = _values(*x_shape)
    graph, y = _chain(op, weight, bias, chain, attrs)
    before = _run(graph, x, y)
    assert fold_affine_into_linear(graph, keep={y}) == len(chain)
    assert [n.op_type for n in graph.nodes] == [op] and graph.nodes[0].name == "linear"
    np.testing.assert_allclose(_run(graph, x, y), before, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("chain,extra_reader,why", [
    ([("Mul", _values(1, 1, 6, 6))], False, "varies along space"),
    ([("Div", np.array([1, 0, 2, 3], np.float32).reshape(4, 1, 1))], False, "division by zero"),
    ([("Mul", _values(4, 1, 1))], True, "the conv output has a second reader"),
])
def test_not_folded(chain, extra_reader, why):
    graph, y = _chain("Conv", _values(4, 3, 1, 1), _values(4), chain, extra_reader=extra_reader)
    assert fold_affine_into_linear(graph, keep={y}) == 0, why


def test_kept_output_is_not_folded_away():
    graph, y = _chain("Conv", _values(4, 3, 1, 1), _values(4), [("Mul", _values(4, 1, 1))])
    assert fold_affine_into_linear(graph, keep={graph.nodes[0].output[0], y}) == 0
