"""Test nets: one per test_iter from ``net``, NetState stages per ``test_state``, outputs
averaged over ``test_iter`` batches with the train net's current weights, ``test_compute_loss``,
``test_interval`` / ``test_initialization``; ``average_loss`` smoothing; legacy ``solver_type``."""
from __future__ import annotations

import logging
import shutil

import h5py
import numpy as np
import pytest

from caffe_cae import get_solver, weights
from caffe_cae.proto import caffe_pb2
from tests.helpers.paths import GOLDEN

NET = """name: "staged"
layer { name: "data" type: "HDF5Data" top: "data" include { phase: TRAIN }
        hdf5_data_param { source: "train_list.txt" batch_size: 16 } }
layer { name: "data" type: "HDF5Data" top: "data" include { phase: TEST }
        hdf5_data_param { source: "train_list.txt" batch_size: 8 } }
layer { name: "conv" type: "Convolution" bottom: "data" top: "conv"
        convolution_param { num_output: 1 kernel_size: 1
          weight_filler { type: "constant" value: 0.5 } bias_filler { type: "constant" value: 0.1 } } }
layer { name: "loss" type: "EuclideanLoss" bottom: "conv" bottom: "data" top: "loss" }
layer { name: "err_a" type: "EuclideanLoss" bottom: "conv" bottom: "data" top: "err_a"
        loss_weight: 0 include { stage: "a" } }
layer { name: "neg" type: "Power" bottom: "data" top: "negdata" power_param { scale: -1 }
        include { stage: "b" } }
layer { name: "err_b" type: "EuclideanLoss" bottom: "conv" bottom: "negdata" top: "err_b"
        loss_weight: 0.5 include { stage: "b" } }
"""

SOLVER = """net: "net.prototxt"
test_iter: 2
test_iter: 3
test_state { stage: "a" }
test_state { stage: "b" }
test_interval: 2
test_compute_loss: true
base_lr: 0.05
lr_policy: "fixed"
max_iter: 4
display: 1
average_loss: 3
snapshot_after_train: false
solver_type: NESTEROV
momentum: 0.5
random_seed: 3
"""


@pytest.fixture
def solver(tmp_path, monkeypatch):
    for name in ("data.h5", "train_list.txt"):
        shutil.copy(GOLDEN / "sgd_fixed_momentum" / name, tmp_path / name)
    (tmp_path / "net.prototxt").write_text(NET)
    (tmp_path / "solver.prototxt").write_text(SOLVER)
    monkeypatch.chdir(tmp_path)
    return get_solver("solver.prototxt")


def euclid(a, b):
    return float(np.sum((a - b) ** 2) / (2 * len(a)))


def expected_test(solver, first, batches):
    """Per-batch (err, loss) of the staged nets for test batches ``first``.., in float64 from
    the train net's current weights (batches of 8 rows; 64 rows, so no wrap here)."""
    data = np.asarray(h5py.File("data.h5", "r")["data"], np.float64)
    w, b = (float(p.data.ravel()[0]) for p in solver.net.params["conv"])
    rows = [data[8 * i: 8 * i + 8] for i in range(first, first + batches)]
    return [(euclid(w * x + b, x), euclid(w * x + b, -x)) for x in rows]


def test_legacy_solver_type_is_upgraded(solver):
    assert type(solver).__name__ == "NesterovSolver" and solver.param.type == "Nesterov"


def test_test_nets_follow_test_state_and_share_weights(solver, caplog):
    assert [n.outputs for n in solver.test_nets] == [["err_a", "loss"], ["err_b", "loss"]]
    solver.step(1)  # tests at iteration 0, then changes the weights: the test nets must see them
    caplog.set_level(logging.INFO)
    results = solver.test_all()
    # The test data layers continue where the iteration-0 test left them (as in Caffe).
    a = expected_test(solver, 2, 2)
    np.testing.assert_allclose(results[0]["err_a"], np.mean([e for e, _ in a]), rtol=1e-5)
    np.testing.assert_allclose(results[0]["loss"], np.mean([e for e, _ in a]), rtol=1e-5)
    assert solver.test_losses[0] == pytest.approx(np.mean([e for e, _ in a]), rel=1e-5)  # err_a weight 0
    b = expected_test(solver, 3, 3)
    np.testing.assert_allclose(results[1]["err_b"], np.mean([e for _, e in b]), rtol=1e-5)
    assert solver.test_losses[1] == pytest.approx(np.mean([e + 0.5 * n for e, n in b]), rel=1e-5)
    assert "Iteration 1, Testing net (#1)" in caplog.text
    assert f"    Test net output #0: err_b = {results[1]['err_b']:g} (* 0.5 = " in caplog.text
    assert f"    Test net output #0: err_a = {results[0]['err_a']:g}\n" in caplog.text + "\n"


def test_test_interval_and_smoothed_display(solver, caplog):
    caplog.set_level(logging.INFO)
    losses = []
    solver.add_callback(lambda s, loss: losses.append(loss))
    solver.solve()
    text = caplog.text
    # Tests at 0 (test_initialization), 2, and after training at 4.
    for it in (0, 2, 4):
        assert f"Iteration {it}, Testing net (#0)" in text and f"Iteration {it}, Testing net (#1)" in text
    assert "Iteration 1, Testing net" not in text and "Iteration 3, Testing net" not in text
    # average_loss 3: the displayed loss is the mean of the last (up to) 3 iteration losses.
    for it in range(4):
        window = losses[max(0, it - 2): it + 1]
        assert f"Iteration {it} (" in text
        line = next(l for l in text.splitlines() if f"Iteration {it} (" in l)
        assert float(line.rsplit("loss = ", 1)[1]) == pytest.approx(np.mean(window), rel=1e-5)
    assert "Optimization Done." in text


def test_weights_reach_layers_only_test_nets_have(solver, tmp_path):
    # "caffe train --weights" and the solver's weights field copy into the test nets too.
    net = (tmp_path / "net.prototxt").read_text() + (
        'layer { name: "extra" type: "Convolution" bottom: "data" top: "extra" include { phase: TEST }\n'
        '        convolution_param { num_output: 1 kernel_size: 1 } }\n')
    (tmp_path / "net.prototxt").write_text(net)
    model = caffe_pb2.NetParameter()
    for name, values in (("conv", (0.25, -0.5)), ("extra", (3.0, 4.0))):
        layer = model.layer.add(name=name, type="Convolution")
        layer.blobs.append(weights.array_to_blob(np.full((1, 1, 1, 1), values[0], np.float32)))
        layer.blobs.append(weights.array_to_blob(np.full((1,), values[1], np.float32)))
    weights.write_binary(tmp_path / "w.caffemodel", model)
    (tmp_path / "field.prototxt").write_text(SOLVER + 'weights: "w.caffemodel"\n')
    for made in (get_solver("solver.prototxt", weights="w.caffemodel"), get_solver("field.prototxt")):
        assert float(made.net.params["conv"][1].data[0]) == -0.5
        for test_net in made.test_nets:
            assert float(test_net.params["extra"][0].data.ravel()[0]) == 3.0
            assert float(test_net.params["extra"][1].data[0]) == 4.0


def test_snapshot_diff_writes_gradients(solver, tmp_path):
    solver.param.snapshot_diff = True
    solver.param.test_interval = 0
    solver.step(1)
    model, _ = solver.snapshot()
    saved = {layer.name: layer for layer in weights.read_net_binary(model).layer}
    np.testing.assert_array_equal(np.float32(saved["conv"].blobs[0].diff),
                                  solver.net.params["conv"][0].diff.ravel())
