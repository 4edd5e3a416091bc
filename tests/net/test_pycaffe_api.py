"""pycaffe conformance: the API exercised the way pycaffe users write it (``import caffe_cae as
caffe``), values checked against real Caffe's golden data (tests/data/golden, README there).

pycaffe reference: BVLC master ``python/caffe/{__init__,pycaffe}.py`` and ``_caffe.cpp``.
"""
from __future__ import annotations

import logging
import shutil

import numpy as np
import pytest

import caffe_cae as caffe
from caffe_cae.errors import CaffeCaeError
from tests.helpers.golden import GoldenCase, assert_close


@pytest.fixture(scope="module")
def model1():
    return GoldenCase("model1")


@pytest.fixture(scope="module")
def chain():
    return GoldenCase("inplace_chain")


def golden_net(case, *args, **kwargs):
    return caffe.Net(str(case.path("net.prototxt")), caffe.TEST,
                     weights=str(case.path("init.caffemodel")), *args, **kwargs)


def params_with_prefix(data, prefix):
    """``{(layer, i): array}`` of the golden keys ``<prefix>/<layer>/<i>``."""
    return {(key[len(prefix) + 1:].rsplit("/", 1)[0], int(key.rsplit("/", 1)[1])): value
            for key, value in data.items() if key.startswith(prefix + "/")}


def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


# ------------------------------------------------------------------------------------------
# module level


def test_module_functions_and_constants(caplog):
    assert (caffe.TRAIN, caffe.TEST) == (0, 1)
    caffe.set_mode_cpu()
    caffe.set_device(0)
    with caplog.at_level(logging.WARNING, logger="caffe_cae"):
        caffe.set_mode_gpu()
    assert [r for r in caplog.records if "CPU" in r.getMessage()], "set_mode_gpu must not be silent"
    types = caffe.layer_type_list()
    assert types == sorted(types) and {"Convolution", "Deconvolution", "Unpooling", "Input"} <= set(types)
    assert (caffe.solver_count(), caffe.solver_rank(), caffe.has_nccl()) == (1, 0, False)
    assert isinstance(caffe.__version__, str)
    caffe.log("a line from a pycaffe script")


def test_set_random_seed_makes_fillers_reproducible(chain):
    path = str(chain.path("net.prototxt"))
    caffe.set_random_seed(7)
    first, second = caffe.Net(path, caffe.TEST), caffe.Net(path, caffe.TEST)
    caffe.set_random_seed(7)
    again = caffe.Net(path, caffe.TEST)
    w = first.params["conv"][0].data
    assert np.array_equal(w, again.params["conv"][0].data)
    assert not np.array_equal(w, second.params["conv"][0].data)  # the generator moves on, as Caffe's


# ------------------------------------------------------------------------------------------
# Net construction


def test_constructor_forms_load_the_same_weights(model1):
    proto, weights = str(model1.path("net.prototxt")), str(model1.path("init.caffemodel"))
    nets = [
        caffe.Net(proto, caffe.TEST, weights=weights),
        caffe.Net(proto, weights, caffe.TEST),                 # legacy Net(file, weights, phase)
        caffe.Net(proto, caffe.TEST, 0, None, weights),        # all positional
        caffe.Net(network_file=proto, phase=caffe.TEST, weights=weights),
    ]
    golden = caffe.Net(proto, caffe.TEST)
    golden.copy_from(weights)
    for net in nets:
        assert net.phase == caffe.TEST
        for name, blobs in golden.params.items():
            for mine, ref in zip(net.params[name], blobs):
                assert np.array_equal(mine.data, ref.data)
    with pytest.raises(TypeError):
        caffe.Net(proto, caffe.TEST, 0, None, weights, "extra")


NET_WITH_RULES = """
name: "rules"
{state}
layer {{ name: "x" type: "Input" top: "x" input_param {{ shape {{ dim: 1 dim: 2 }} }} }}
layer {{ name: "lvl" type: "Sigmoid" bottom: "x" top: "a" include {{ min_level: 1 }} }}
layer {{ name: "stg" type: "TanH" bottom: "x" top: "b" include {{ stage: "deploy" }} }}
layer {{ name: "trn" type: "ReLU" bottom: "x" top: "c" include {{ phase: TRAIN }} }}
"""


def test_phase_level_stages_like_pycaffe(tmp_path):
    path = write(tmp_path, "rules.prototxt", NET_WITH_RULES.format(state=""))
    assert caffe.Net(path, caffe.TEST).layer_names == ["x"]
    assert caffe.Net(path, caffe.TRAIN).layer_names == ["x", "trn"]
    assert caffe.Net(path, caffe.TEST, 1).layer_names == ["x", "lvl"]             # level positional
    assert caffe.Net(path, caffe.TEST, stages=["deploy"]).layer_names == ["x", "stg"]
    both = caffe.Net(path, caffe.TEST, level=1, stages=["deploy"])
    assert both.layer_names == ["x", "x_x_0_split", "lvl", "stg"]
    # Net(file, phase, level=0): the file's own state.level is replaced, as in Caffe
    stated = write(tmp_path, "stated.prototxt", NET_WITH_RULES.format(state="state { level: 1 }"))
    assert caffe.Net(stated, caffe.TEST).layer_names == ["x"]
    assert caffe.Net(stated, caffe.TEST, 1).layer_names == ["x", "lvl"]


# ------------------------------------------------------------------------------------------
# introspection


def test_pycaffe_views_of_the_net(model1):
    net = golden_net(model1)
    info = model1.info
    names = [layer["name"] for layer in info["layers"]]
    assert net._layer_names == names
    assert list(net.blobs) == net._blob_names == list(info["blob_shapes"])
    assert [b.name for b in net._blobs] == net._blob_names
    assert net.inputs == info["inputs"] and net.outputs == info["outputs"]
    assert [net._blob_names[i] for i in net._inputs] == net.inputs
    assert [net._blob_names[i] for i in net._outputs] == net.outputs
    for blob, shape in info["blob_shapes"].items():
        assert list(net.blobs[blob].shape) == list(shape)
        assert net.blobs[blob].data.shape == tuple(shape)
    # blob_loss_weights: every blob, loss weight or 0
    assert {k: v for k, v in net.blob_loss_weights.items() if v} == info["loss_weights"]
    assert net._blob_loss_weights == list(net.blob_loss_weights.values())
    # layers: objects with .type and .blobs; layer_dict / params keyed by layer name
    for layer, entry in zip(net.layers, info["layers"]):
        assert layer.type == entry["type"]
        assert [list(b.shape) for b in layer.blobs] == [list(s) for s in entry["param_shapes"]]
    assert net.layer_dict["conv1"] is net.layers[names.index("conv1")]
    assert net.layer_dict["loss"].type == "EuclideanLoss"  # repeated name: the last one, as pycaffe
    assert list(net.params) == [e["name"] for e in info["layers"] if e["param_shapes"]]
    assert net.params["conv1"][0] is net.layer_dict["conv1"].blobs[0]
    # top_names / bottom_names: by layer name (pycaffe's OrderedDicts) and by index
    for i, entry in enumerate(info["layers"]):
        if names.index(entry["name"]) == i:
            assert net.top_names[entry["name"]] == entry["tops"]
            assert net.bottom_names[entry["name"]] == entry["bottoms"]
        assert net.top_names[i] == entry["tops"] and net.bottom_names[i] == entry["bottoms"]
        assert [net._blob_names[j] for j in net._top_ids(i)] == entry["tops"]
        assert [net._blob_names[j] for j in net._bottom_ids(i)] == entry["bottoms"]
    assert "conv1" in net.top_names and "nope" not in net.top_names
    assert list(net.top_names.keys()) == list(dict.fromkeys(names))
    assert dict(net.top_names.items())["conv2"] == ["conv2"]


def test_blob_objects():
    blob = caffe.Blob((2, 3, 5, 7), name="b")
    assert (blob.num, blob.channels, blob.height, blob.width, blob.count) == (2, 3, 5, 7, 210)
    blob.reshape(7, 1, 28, 28)
    assert blob.shape == (7, 1, 28, 28) and blob.data.shape == blob.diff.shape == (7, 1, 28, 28)
    blob.reshape(4, 10)  # legacy accessors read missing axes as 1 (Blob::LegacyShape)
    assert (blob.num, blob.channels, blob.height, blob.width) == (4, 10, 1, 1)
    blob.reshape((2, 2))
    assert blob.shape == (2, 2) and blob.data.dtype == np.float32
    blob.reshape(1, 1, 1, 1, 2)
    with pytest.raises(CaffeCaeError, match="legacy accessors"):
        blob.num


# ------------------------------------------------------------------------------------------
# forward / backward


def test_forward_with_inputs_returns_the_outputs(model1):
    net = golden_net(model1)
    data = model1.data
    out = net.forward(data=data["in/data"])
    assert set(out) == set(net.outputs)
    tol = model1.tolerance("loss")
    for name in net.outputs:
        assert_close(out[name], data[f"loss/{name}"], tol, name)
    assert_close(net.blobs["ip2encode"].data, data["out/ip2encode"], model1.tolerance("forward"), "code")
    # the pycaffe way of feeding: write into the input blob, then forward()
    net2 = golden_net(model1)
    net2.blobs["data"].data[...] = data["in/data"]
    loss = net2.forward()["cross_entropy_loss"]
    assert_close(loss, data["loss/cross_entropy_loss"], tol, "loss")
    assert_close(net2._forward(0, len(net2.layers) - 1), data["total_loss"], tol, "_forward")


def test_forward_extra_blobs_start_and_end(chain):
    net = golden_net(chain)
    data = chain.data
    tol = chain.tolerance("forward")
    net.blobs["x"].data[...] = data["in/x"]
    out = net.forward(end="relu")  # end: that layer's tops
    assert list(out) == ["y"]
    assert_close(out["y"], data["layer_out/relu/0"], tol, "after relu")
    out = net.forward(start="sig", blobs=["x"])
    assert set(out) == {"y", "x"}
    assert_close(out["y"], data["out/y"], tol, "after sig")
    out = net.forward(x=data["in/x"], blobs=["x"])
    assert_close(out["x"], data["in/x"], tol, "x")


def test_reshape_input_blob_then_net_reshape(model1):
    net = golden_net(model1)
    x = model1.data["in/data"][:3]
    net.blobs["data"].reshape(3, 1, 28, 28)
    net.reshape()
    assert net.blobs["conv1"].data.shape == (3, 8, 20, 20)
    net.blobs["data"].data[...] = x
    out = net.forward(blobs=["deconv1neursig"])
    assert_close(out["deconv1neursig"], model1.data["out/deconv1neursig"][:3],
                 model1.tolerance("forward"), "per-sample output of a batch of 3")
    # our extension: feeding another batch size reshapes the net (pycaffe would refuse)
    out = net.forward(data=model1.data["in/data"])
    assert_close(out["l2_error"], model1.data["loss/l2_error"], model1.tolerance("loss"), "l2")


def test_backward_with_top_diffs(chain):
    net = golden_net(chain)
    data = chain.data
    net.forward(x=data["in/x"])
    grads = net.backward(**{net.outputs[0]: data["top_diff/y"]})
    assert list(grads) == net.inputs == ["x"]
    tol = chain.tolerance("backward")
    assert_close(grads["x"], data["diff/x"], tol, "diff/x")
    assert_close(net.params["conv"][0].diff, data["pdiff/conv/0"], tol, "pdiff w")
    assert_close(net.params["conv"][1].diff, data["pdiff/conv/1"], tol, "pdiff b")
    # end=layer: that layer's bottom diffs, plus the diffs asked for
    net.params["conv"][0].diff[...] = 0
    net.params["conv"][1].diff[...] = 0
    net.forward(x=data["in/x"])
    net.blobs["y"].diff[...] = data["top_diff/y"]
    out = net.backward(start="sig", end="conv", diffs=["y"])
    assert set(out) == {"x", "y"}
    assert_close(out["x"], data["diff/x"], tol, "diff/x again")
    net.blobs["y"].diff[...] = data["top_diff/y"]  # in-place layers overwrote it
    net._backward(len(net.layers) - 1, 0)  # BackwardFromTo accumulates param gradients
    assert_close(net.params["conv"][1].diff, 2 * data["pdiff/conv/1"], tol, "accumulated")


def test_layer_callbacks(chain):
    net = golden_net(chain)
    calls = []
    for when in ("before_forward", "after_forward", "before_backward", "after_backward"):
        getattr(net, when)(lambda i, when=when: calls.append((when, i)))
    out = net.forward(x=chain.data["in/x"])
    assert_close(out["y"], chain.data["out/y"], chain.tolerance("forward"), "y with callbacks")
    n = len(net.layers)
    assert calls == [(w, i) for i in range(n) for w in ("before_forward", "after_forward")]
    calls.clear()
    grads = net.backward(y=chain.data["top_diff/y"])
    assert_close(grads["x"], chain.data["diff/x"], chain.tolerance("backward"), "x with callbacks")
    assert calls == [(w, i) for i in reversed(range(n)) for w in ("before_backward", "after_backward")]


def test_setting_params_in_place(chain):
    net = caffe.Net(str(chain.path("net.prototxt")), caffe.TEST)
    net.params["conv"][0].data[...] = chain.data["param/conv/0"]
    net.params["conv"][1].data[...] = chain.data["param/conv/1"]
    out = net.forward(x=chain.data["in/x"])
    assert_close(out["y"], chain.data["out/y"], chain.tolerance("forward"), "y")


def test_forward_all_and_forward_backward_all(chain):
    net = golden_net(chain)  # batch 2
    data = chain.data
    x = np.concatenate([data["in/x"]] * 3)[:5]  # 5 rows: two full batches and a padded one
    y = np.concatenate([data["out/y"]] * 3)[:5]
    tol = chain.tolerance("forward")
    out = net.forward_all(x=x)
    assert list(out) == ["y"] and out["y"].shape == (5, 3, 4, 4)
    assert_close(out["y"], y, tol, "forward_all")
    outs, diffs = net.forward_backward_all(x=x, y=np.concatenate([data["top_diff/y"]] * 3)[:5])
    assert_close(outs["y"], y, tol, "forward_backward_all data")
    assert_close(diffs["x"], np.concatenate([data["diff/x"]] * 3)[:5], chain.tolerance("backward"),
                 "forward_backward_all diff")


MEMORY_NET = """
name: "mem"
layer { name: "data" type: "MemoryData" top: "data" top: "label"
        memory_data_param { batch_size: 2 channels: 1 height: 2 width: 2 } }
layer { name: "scale" type: "Power" bottom: "data" top: "scaled" power_param { scale: 2 } }
layer { name: "silence" type: "Silence" bottom: "label" }
"""


def test_set_input_arrays(tmp_path, chain):
    net = caffe.Net(write(tmp_path, "mem.prototxt", MEMORY_NET), caffe.TEST)
    data = np.arange(16, dtype=np.float32).reshape(4, 1, 2, 2)
    net.set_input_arrays(data, np.arange(4, dtype=np.float32))
    assert np.array_equal(net.forward()["scaled"], 2 * data[:2])
    assert np.array_equal(net.forward()["scaled"], 2 * data[2:])
    assert np.array_equal(net.blobs["label"].data, [2, 3])
    with pytest.raises(CaffeCaeError, match="MemoryData"):
        golden_net(chain).set_input_arrays(data, np.zeros(4, np.float32))


# ------------------------------------------------------------------------------------------
# weights


def test_save_copy_from_hdf5_and_share_with(tmp_path, chain):
    net = golden_net(chain)
    net.save(str(tmp_path / "w.caffemodel"))
    net.save_hdf5(str(tmp_path / "w.caffemodel.h5"))
    for load in ("copy_from", "load_hdf5"):
        other = caffe.Net(str(chain.path("net.prototxt")), caffe.TEST)
        getattr(other, load)(str(tmp_path / ("w.caffemodel.h5" if load == "load_hdf5" else "w.caffemodel")))
        assert np.array_equal(other.params["conv"][0].data, chain.data["param/conv/0"])
    fresh = caffe.Net(str(chain.path("net.prototxt")), caffe.TEST)
    fresh.share_with(net)
    net.params["conv"][1].data[...] = 3
    assert np.all(fresh.params["conv"][1].data == 3)  # same memory, as ShareTrainedLayersWith
    net.clear_param_diffs()


# ------------------------------------------------------------------------------------------
# solvers


@pytest.fixture
def sgd_case(tmp_path, monkeypatch):
    """A copy of the sgd_fixed_momentum case to run in (train_list.txt is relative)."""
    case = GoldenCase("sgd_fixed_momentum")
    target = tmp_path / case.name
    shutil.copytree(case.dir, target)
    monkeypatch.chdir(target)
    return case


def test_solver_step_callbacks_and_blobs(sgd_case):
    data = sgd_case.data
    solver = caffe.get_solver("solver.prototxt")
    assert isinstance(solver, caffe.SGDSolver)
    solver.net.copy_from("init.caffemodel")
    seen = {"start": 0, "lr": [], "grads": []}

    def on_start():
        seen["start"] += 1

    def on_gradients_ready():  # the golden data recorded solver.lr and the raw gradients here
        seen["lr"].append(solver.lr)
        seen["grads"].append({(k, i): b.diff.copy() for k, bs in solver.net.params.items()
                              for i, b in enumerate(bs)})

    solver.add_callback(on_start, on_gradients_ready)
    solver.step(1)
    assert solver.iter == 1 and seen["start"] == 1
    assert np.float32(seen["lr"][0]) == data["iter_lr"][0]
    for key, golden in params_with_prefix(data, "grad_iter0").items():
        assert_close(seen["grads"][0][key], golden, {"rtol": 1e-4, "atol": 1e-6}, f"grad {key}")
    assert_close(solver.net.blobs["loss"].data, data["iter_loss/loss"][0],
                 {"rtol": 1e-5, "atol": 1e-6}, "loss")
    for (layer, i), golden in params_with_prefix(data, "param_iter1").items():
        assert_close(solver.net.params[layer][i].data, golden, {"rtol": 1e-4, "atol": 1e-6}, "param_iter1")
    solver.step(1)
    assert solver.iter == 2 and seen["start"] == 2 and len(seen["lr"]) == 2
    assert solver.param.base_lr == pytest.approx(0.2)


def test_solver_class_decides_the_update_like_caffe(tmp_path, monkeypatch, caplog):
    case = GoldenCase("adam")
    target = tmp_path / "adam"
    shutil.copytree(case.dir, target)
    monkeypatch.chdir(target)
    text = (target / "solver.prototxt").read_text().replace('type: "Adam"', 'type: "SGD"')
    (target / "solver.prototxt").write_text(text)
    with caplog.at_level(logging.WARNING):
        solver = caffe.AdamSolver("solver.prototxt")  # Caffe's AdamSolver(file) ignores type
    assert "ignored" in caplog.text
    solver.net.copy_from("init.caffemodel")
    solver.step(2)
    for (layer, i), golden in params_with_prefix(case.data, "param_iter2").items():
        assert_close(solver.net.params[layer][i].data, golden, {"rtol": 1e-3, "atol": 1e-5}, "adam step 2")


def test_solver_test_nets_snapshot_restore(sgd_case, tmp_path):
    net_text = open("net.prototxt").read().replace("include {\n    phase: TRAIN\n  }\n", "")
    open("both.prototxt", "w").write(net_text)
    open("with_test.prototxt", "w").write(
        'train_net: "both.prototxt"\ntest_net: "both.prototxt"\ntest_iter: 1\ntest_interval: 1000\n'
        'base_lr: 0.2\nlr_policy: "fixed"\nmomentum: 0.9\nmax_iter: 3\nsnapshot_prefix: "snap"\n'
        'random_seed: 1\n')
    solver = caffe.SGDSolver("with_test.prototxt")
    assert len(solver.test_nets) == 1
    test_net = solver.test_nets[0]
    test_net.share_with(solver.net)
    loss = test_net.forward()["loss"]
    assert loss == pytest.approx(float(solver.net.forward()["loss"]), rel=1e-6)
    solver.solve()
    assert solver.iter == 3
    model, state = solver.snapshot()
    again = caffe.SGDSolver("with_test.prototxt")
    again.restore(state)
    assert again.iter == 3
    assert np.array_equal(again.net.params["ip1"][0].data, solver.net.params["ip1"][0].data)
