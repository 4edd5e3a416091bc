"""Every ``layer``/``model`` case of the golden set, run through ``caffe_cae.Net`` and compared
with what real Caffe did: structure (layers after filtering and Split insertion, blob shapes,
loss weights, inputs/outputs), each layer's tops right after it ran, every blob after the full
forward, losses, then the backward (every diff Caffe wrote, every parameter diff) and
``Net::ToProto`` against the Caffe-written ``init.caffemodel``.

Parametrized over the manifests of every golden set (``tests/data/golden``, ``golden_bvlc``), so
new cases are picked up automatically.  Nets that read or write files run in a copy of their
case folder (paths in Caffe prototxts are relative to the working directory).  Cases whose
values come from Caffe's random number generator (Dropout in TRAIN, random mirroring) are
compared by :data:`RANDOM_CASES`' own tests, which check what Caffe's RNG leaves determined.
"""
from __future__ import annotations

import os
import shutil

import numpy as np
import pytest

import caffe_cae
from caffe_cae.weights import blob_to_array, read_net_binary
from tests.helpers.golden import GoldenCase, all_case_names, assert_close, open_case

#: Cases whose tops depend on Caffe's random draws: tested where the draws are known
#: (tests/layers/test_dropout_train.py, the data-layer tests).
RANDOM_CASES = {"bvlc/dropout_train", "bvlc/data_lmdb_mirror_test"}
CASES = [name for name in all_case_names("layer", "model") if name not in RANDOM_CASES]


@pytest.fixture(scope="module", params=CASES)
def case(request, tmp_path_factory):
    case = open_case(request.param)
    if case.entry.get("status") != "ok":
        pytest.skip(f"Caffe refused this case: {case.entry.get('error')}")
    if case.uses_files:  # a private copy: the net reads and writes paths relative to the CWD
        work = tmp_path_factory.mktemp("case") / case.name
        shutil.copytree(case.dir, work)
        case.dir = work
    return case


@pytest.fixture(autouse=True)
def in_case_folder(case):
    """Run every test inside the case folder, as Caffe ran the case."""
    before = os.getcwd()
    os.chdir(case.dir)
    yield
    os.chdir(before)


def load_net(case: GoldenCase) -> caffe_cae.Net:
    phase = caffe_cae.TRAIN if case.phase == "TRAIN" else caffe_cae.TEST
    return caffe_cae.Net(str(case.path("net.prototxt")), str(case.path("init.caffemodel")), phase)


def feed_inputs(net: caffe_cae.Net, case: GoldenCase) -> None:
    for name in case.keys("in"):
        net.blobs[name].data[...] = case.data[f"in/{name}"]


#: The generator's pre-fill of the non-loss diffs in its first backward run (what an in-place
#: Scale's recorded parameter diffs reveal, see :func:`backward_as_recorded`).
FIRST_RUN_PREFILL = 12345.0


def backward_as_recorded(net: caffe_cae.Net, case: GoldenCase) -> None:
    """Net::Backward as the generator recorded it: a first run with every non-loss diff
    pre-filled with :data:`FIRST_RUN_PREFILL` (to find which diffs are written), then -- param
    diffs cleared, the other diffs zeroed, top diffs injected again (loss tops keep their loss
    weight) -- the recorded run.  It matters where a backward changes the layer's own buffers:
    an in-place Scale forms dy*x in its saved bottom, so the recorded run multiplies by the
    first run's dy, which holds the pre-fill wherever a diff is read that no layer writes (the
    Accuracy branch of a Split)."""
    loss_tops = {name for name, weight in net.blob_loss_weights.items() if weight}
    for recorded in (False, True):
        for name, blob in net.blobs.items():
            if name not in loss_tops:
                blob.diff[...] = 0 if recorded else FIRST_RUN_PREFILL
        net.clear_param_diffs()
        for name in case.keys("top_diff"):
            net.blobs[name].diff[...] = case.data[f"top_diff/{name}"]
        net.backward()


def test_structure(case):
    net = load_net(case)
    info = case.info
    mine = [(n, layer.type, list(net.bottom_names[i]), list(net.top_names[i]))
            for i, (n, layer) in enumerate(zip(net.layer_names, net.layers))]
    golden = [(layer["name"], layer["type"], layer["bottoms"], layer["tops"]) for layer in info["layers"]]
    assert mine == golden
    for i, layer in enumerate(info["layers"]):
        assert [list(b.shape) for b in net.layers[i].blobs] == layer["param_shapes"], layer["name"]
    at_setup = info.get("blob_shapes_at_setup", info["blob_shapes"])
    assert {k: list(v.shape) for k, v in net.blobs.items()} == at_setup
    assert list(net.blobs) == list(at_setup)
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
    for key in case.keys("param_fwd"):  # params the forward itself changed (BatchNorm sums)
        layer, i = key.rsplit("/", 1)
        assert_close(net.layers[keys[layer]].blobs[int(i)].data, data[f"param_fwd/{key}"], fwd,
                     f"param_fwd/{key}")
    for file, datasets in info.get("h5_datasets", {}).items():  # what HDF5Output wrote
        import h5py

        with h5py.File(file, "r") as h5:
            for name, shape in datasets.items():
                assert list(h5[name].shape) == shape, f"{file}/{name}"
                assert_close(h5[name][...], data[f"h5out/{file}/{name}"], fwd, f"h5out/{file}/{name}")

    backward_as_recorded(net, case)
    scratch = set(info.get("diff_scratch", ()))  # Caffe's scratch memory, not gradients
    for name in info["diff_written"]:
        if name in scratch:
            continue
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
