"""Every ``layer``/``model`` case of the golden set, run through ``caffe_cae.Net`` and compared
with what real Caffe did: structure (layers after filtering and Split insertion, blob shapes,
loss weights, inputs/outputs), each layer's tops right after it ran, every blob after the full
forward, losses, then the backward (every diff Caffe wrote, every parameter diff) and
``Net::ToProto`` against the Caffe-written ``init.caffemodel``.

Parametrized over the manifest, so new cases are picked up automatically.
"""
from __future__ import annotations

import numpy as np
import pytest

import caffe_cae
from caffe_cae.weights import blob_to_array, read_net_binary
from tests.helpers.golden import GoldenCase, assert_close, case_names

CASES = case_names("layer", "model")


@pytest.fixture(scope="module", params=CASES)
def case(request):
    case = GoldenCase(request.param)
    if case.entry.get("status") != "ok":
        pytest.skip(f"Caffe refused this case: {case.entry.get('error')}")
    return case


def load_net(case: GoldenCase) -> caffe_cae.Net:
    return caffe_cae.Net(str(case.path("net.prototxt")), str(case.path("init.caffemodel")), caffe_cae.TEST)


def feed_inputs(net: caffe_cae.Net, case: GoldenCase) -> None:
    for name in case.keys("in"):
        net.blobs[name].data[...] = case.data[f"in/{name}"]


def test_structure(case):
    net = load_net(case)
    info = case.info
    mine = [(n, layer.type, list(net.bottom_names[i]), list(net.top_names[i]))
            for i, (n, layer) in enumerate(zip(net.layer_names, net.layers))]
    golden = [(layer["name"], layer["type"], layer["bottoms"], layer["tops"]) for layer in info["layers"]]
    assert mine == golden
    for i, layer in enumerate(info["layers"]):
        assert [list(b.shape) for b in net.layers[i].blobs] == layer["param_shapes"], layer["name"]
    assert {k: list(v.shape) for k, v in net.blobs.items()} == info["blob_shapes"]
    assert list(net.blobs) == list(info["blob_shapes"])
    assert {k: w for k, w in net.blob_loss_weights.items() if w} == info["loss_weights"]
    assert net.inputs == info["inputs"]
    assert net.outputs == info["outputs"]


@pytest.mark.usefixtures("each_engine")
def test_forward_backward(case):
    net = load_net(case)
    data, info = case.data, case.info
    fwd, bwd, loss_tol = case.tolerance("forward"), case.tolerance("backward"), case.tolerance("loss")
    keys = case.layer_key_index()
    for key in case.keys("param"):
        layer, i = key.rsplit("/", 1)
        assert_close(net.layers[keys[layer]].blobs[int(i)].data, data[f"param/{key}"], fwd, f"param/{key}")

    # forward, one layer at a time (Net::ForwardFromTo(i, i)), tops checked right after
    feed_inputs(net, case)
    total = 0.0
    for i, layer in enumerate(info["layers"]):
        total += net.forward_from_to(i, i)
        for top, key in zip(layer["tops"], layer["top_keys"]):
            assert_close(net.blobs[top].data, data[key], fwd, f"layer {layer['name']} top {top}")
    for name, blob in net.blobs.items():
        assert_close(blob.data, data[f"out/{name}"], fwd, f"out/{name}")
    for name in case.keys("loss"):
        assert_close(net.blobs[name].data, data[f"loss/{name}"], loss_tol, f"loss/{name}")
    assert_close(total, data["total_loss"], loss_tol, "total_loss")

    # backward: inject top diffs (loss tops keep their loss weight), then Net::Backward
    for name in case.keys("top_diff"):
        net.blobs[name].diff[...] = data[f"top_diff/{name}"]
    net.backward()
    for name in info["diff_written"]:
        assert_close(net.blobs[name].diff, data[f"diff/{name}"], bwd, f"diff/{name}")
    for key in case.keys("pdiff"):
        layer, i = key.rsplit("/", 1)
        assert_close(net.layers[keys[layer]].blobs[int(i)].diff, data[f"pdiff/{key}"], bwd, f"pdiff/{key}")
    for sharer, owner in info["shared_params"].items():
        layer, i = sharer.rsplit("/", 1)
        assert_close(net.layers[keys[layer]].blobs[int(i)].diff, data[f"pdiff/{owner}"], bwd, f"pdiff/{sharer}")


def test_to_proto_matches_init_caffemodel(case):
    """Net::ToProto of the loaded net is byte-identical to the file Caffe wrote."""
    net = load_net(case)
    golden_bytes = case.path("init.caffemodel").read_bytes()
    mine = net.to_proto()
    golden = read_net_binary(case.path("init.caffemodel"))
    for a, b in zip(mine.layer, golden.layer):
        assert (a.name, a.type, list(a.bottom), list(a.top)) == (b.name, b.type, list(b.bottom), list(b.top))
        assert [list(x.shape.dim) for x in a.blobs] == [list(x.shape.dim) for x in b.blobs], a.name
        for x, y in zip(a.blobs, b.blobs):
            np.testing.assert_array_equal(blob_to_array(x), blob_to_array(y))
    assert len(mine.layer) == len(golden.layer)
    assert mine.SerializeToString() == golden_bytes
