"""The ONNX converters of the BVLC layer types against real Caffe, layer by layer.

For every layer of a golden_bvlc case whose type converts in one of the issue's converter
modules, a one-layer ONNX model is built from what Caffe had at that layer: its bottoms' values
(``data.npz``), its parameter blobs, its prototxt parameters and the net's phase.  onnxruntime's
tops must equal Caffe's within 1e-5 absolute or 1e-4 relative.  No interpreter layer is used,
so a converter is held to Caffe's numbers, not to the interpreter's."""
from __future__ import annotations

import json
import types

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from caffe_cae import prototxt, weights
from caffe_cae.errors import CaffeCaeError
from caffe_cae.onnx import export as _export  # noqa: F401 (registers every converter)
from caffe_cae.onnx.converters import CONVERTERS, LayerContext, convert
from caffe_cae.onnx.graph import DEFAULT_OPSET, GraphBuilder
from caffe_cae.onnx.runtime import make_session
from caffe_cae.proto import caffe_pb2
from tests.helpers.paths import GOLDEN_BVLC

RTOL, ATOL = 1e-4, 1e-5
ISSUE_MODULES = {"ops_math", "ops_normalization", "ops_tensor", "ops_recurrent"}


def _issue_types() -> set[str]:
    return {t for t, f in CONVERTERS.items() if f.__module__.rsplit(".", 1)[-1] in ISSUE_MODULES}


def _layer_cases():
    manifest = json.loads((GOLDEN_BVLC / "manifest.json").read_text())
    issue_types = _issue_types()
    cases = []
    for case in manifest["cases"]:
        if case["kind"] not in ("layer", "model") or case["status"] != "ok":
            continue
        info = json.loads((GOLDEN_BVLC / case["name"] / "info.json").read_text())
        for index, layer in enumerate(info["layers"]):
            if layer["type"] in issue_types:
                cases.append(pytest.param(case["name"], index, id=f"{case['name']}/{layer['name']}"))
    return cases


def _params(folder, data, info, layer) -> list[np.ndarray]:
    keys = [f"param/{layer['key']}/{i}" for i in range(len(layer["param_shapes"]))]
    if all(k in data for k in keys):
        return [np.asarray(data[k], np.float32) for k in keys]
    stored = weights.net_weights(weights.read_net_binary(folder / "init.caffemodel"))
    return [np.asarray(a, np.float32) for a in stored[layer["name"]]]


def _value_info(name, array):
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, list(array.shape))


def _one_layer_model(folder, index, opset=DEFAULT_OPSET):
    info = json.loads((folder / "info.json").read_text())
    data = np.load(folder / "data.npz")
    net_param = prototxt.read_net_text(folder / "net.prototxt")
    layer = info["layers"][index]
    param = next(lp for lp in net_param.layer if lp.name == layer["name"])
    latest: dict[str, str] = {}
    for earlier in info["layers"][:index]:
        for blob, key in zip(earlier["tops"], earlier["top_keys"]):
            latest[blob] = key
    bottoms = [np.asarray(data[latest[b]], np.float32) for b in layer["bottoms"]]
    tops = [np.asarray(data[key], np.float32) for key in layer["top_keys"]]
    fake = types.SimpleNamespace(
        name=layer["name"], type=layer["type"], param=param, phase=caffe_pb2.Phase.Value(info["phase"]),
        error=lambda message: CaffeCaeError(f"layer '{layer['name']}' ({layer['type']}): {message}"))
    graph = GraphBuilder(opset)
    inputs = [graph.reserve(f"in{j}") for j in range(len(bottoms))]
    outputs = [graph.reserve(f"out{j}") for j in range(len(tops))]
    convert(LayerContext(graph=graph, layer=fake, inputs=inputs, outputs=outputs,
                         bottom_shapes=[b.shape for b in bottoms], top_shapes=[t.shape for t in tops],
                         params=_params(folder, data, info, layer)))
    model = helper.make_model(
        helper.make_graph(graph.nodes, "layer", [_value_info(n, a) for n, a in zip(inputs, bottoms)],
                          [_value_info(n, a) for n, a in zip(outputs, tops)], graph.initializers),
        opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = min(helper.find_min_ir_version_for(list(model.opset_import)), 13)
    onnx.checker.check_model(model, full_check=True)
    return model, dict(zip(inputs, bottoms)), tops


@pytest.mark.parametrize("case,index", _layer_cases())
def test_converter_matches_caffe(case, index):
    model, feeds, expected = _one_layer_model(GOLDEN_BVLC / case, index)
    results = make_session(model, "cpu").run(None, feeds)
    for j, (value, want) in enumerate(zip(results, expected)):
        assert value.shape == want.shape, f"top {j}"
        np.testing.assert_allclose(value, want, rtol=RTOL, atol=ATOL, err_msg=f"top {j}")


@pytest.mark.parametrize("opset", [13, 18, 26])
def test_converters_valid_at_every_opset(opset):
    """The reduce ops change from attribute to input axes at opset 18; Scan bodies too."""
    for name in ["reduction_sumsq_axis2", "mvn_across", "bn_train_batch", "argmax_top3_maxval", "lstm_unit",
                 "lstm_expose_hidden", "rnn"]:
        folder = GOLDEN_BVLC / name
        info = json.loads((folder / "info.json").read_text())
        index = next(i for i, l in enumerate(info["layers"]) if l["type"] in _issue_types())
        model, feeds, expected = _one_layer_model(folder, index, opset)
        for value, want in zip(make_session(model, "cpu").run(None, feeds), expected):
            np.testing.assert_allclose(value, want, rtol=RTOL, atol=ATOL)
