"""The papers' era: a V1 net (``layers``, enum types, HDF5 data, ``blobs_lr`` / ``weight_decay``)
with a solver that has no ``type``, started from a V1 caffemodel as Noh's Caffe wrote it (legacy
num/channels/height/width dims, InnerProduct weights 1x1xNxK), trains like the golden
``sgd_lr_mult`` case of BVLC Caffe (same net in the current syntax) - from the API and the CLI."""
from __future__ import annotations

import shutil
import subprocess
import sys

import numpy as np
import pytest

from caffe_cae import get_solver, weights
from caffe_cae.proto import caffe_pb2
from tests.solvers.golden_cases import assert_close, load, loss_tolerance, tolerance

V1_NET = """name: "solver_net"
layers {
  name: "data"
  type: HDF5_DATA
  top: "data"
  hdf5_data_param { source: "train_list.txt" batch_size: 16 }
  include { phase: TRAIN }
}
layers { name: "flatdata" type: FLATTEN bottom: "data" top: "flatdata" }
layers {
  name: "ip1"
  type: INNER_PRODUCT
  bottom: "data"
  top: "ip1"
  blobs_lr: 1
  blobs_lr: 2
  weight_decay: 1
  weight_decay: 0
  inner_product_param { num_output: 12 weight_filler { type: "xavier" } }
}
layers { name: "sig1" type: SIGMOID bottom: "ip1" top: "ip1" }
layers {
  name: "ip2"
  type: INNER_PRODUCT
  bottom: "ip1"
  top: "ip2"
  blobs_lr: 0.5
  blobs_lr: 0
  weight_decay: 2
  weight_decay: 0
  inner_product_param { num_output: 36 weight_filler { type: "gaussian" std: 0.3 } }
}
layers { name: "loss" type: EUCLIDEAN_LOSS bottom: "ip2" bottom: "flatdata" top: "loss" }
"""

# The 2015 solvers: no type (SGD), no snapshot_format, a relative net path.
V1_SOLVER = """net: "v1_net.prototxt"
base_lr: 0.2
lr_policy: "fixed"
momentum: 0.9
weight_decay: 0.01
random_seed: 1
max_iter: 30
display: 1
snapshot: 0
snapshot_prefix: "v1"
solver_mode: CPU
"""


def v1_caffemodel(init_path, out_path):
    """A V1 caffemodel like Noh's Caffe writes: ``layers`` with enum types and 4-D legacy dims."""
    net = caffe_pb2.NetParameter(name="solver_net")
    for name, arrays in weights.read_weights(init_path).items():
        layer = net.layers.add(name=name, type=caffe_pb2.V1LayerParameter.INNER_PRODUCT)
        for array in arrays:
            dims = (1,) * (4 - array.ndim) + array.shape
            blob = layer.blobs.add(num=dims[0], channels=dims[1], height=dims[2], width=dims[3])
            blob.data.extend(array.ravel().tolist())
    out_path.write_bytes(net.SerializeToString())


@pytest.fixture
def legacy_case(tmp_path, monkeypatch):
    folder = load("sgd_lr_mult")[0]
    for name in ("data.h5", "train_list.txt"):
        shutil.copy(folder / name, tmp_path / name)
    (tmp_path / "v1_net.prototxt").write_text(V1_NET)
    (tmp_path / "v1_solver.prototxt").write_text(V1_SOLVER)
    v1_caffemodel(folder / "init.caffemodel", tmp_path / "noh_init.caffemodel")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_v1_caffemodel_has_legacy_dims(legacy_case):
    model = weights.read_net_binary(legacy_case / "noh_init.caffemodel")
    assert not model.layer and weights.blob_has_legacy_dims(model.layers[0].blobs[0])
    assert weights.blob_shape(model.layers[0].blobs[0]) == (1, 1, 12, 36)


def test_legacy_pair_trains_like_caffe(legacy_case):
    _, case_json, info, data = load("sgd_lr_mult")
    solver = get_solver("v1_solver.prototxt", weights="noh_init.caffemodel")
    assert type(solver).__name__ == "SGDSolver"
    losses = []
    for _ in range(info["iters"]):
        solver.step(1)
        losses.append(float(solver.net.blobs["loss"].data))
    assert_close(losses, data["iter_loss/loss"], loss_tolerance(case_json), "iter_loss")
    final_tol = tolerance(case_json, "final", 1e-3, 1e-6)
    for layer in ("ip1", "ip2"):
        for i in range(2):
            assert_close(solver.net.params[layer][i].data, data[f"final/{layer}/{i}"], final_tol,
                         f"final/{layer}/{i}")


def test_legacy_pair_trains_from_the_cli(legacy_case):
    _, case_json, info, data = load("sgd_lr_mult")
    result = subprocess.run(
        [sys.executable, "-m", "caffe_cae", "train", "--solver", "v1_solver.prototxt",
         "--weights", "noh_init.caffemodel"], capture_output=True, text=True, cwd=legacy_case)
    assert result.returncode == 0, result.stderr
    assert "Iteration 29 (" in result.stderr
    final = weights.read_weights(legacy_case / "v1_iter_30.caffemodel")
    assert_close(final["ip2"][0], data["final/ip2/0"], tolerance(case_json, "final", 1e-3, 1e-6), "final/ip2/0")
    np.testing.assert_array_equal(final["ip2"][1], data["init/ip2/1"])  # lr_mult 0: frozen


def test_noh_era_snapshot_resumes(legacy_case):
    # A solverstate as Noh's Caffe writes it: history blobs with legacy 4-D dims, learned_net a
    # V1 caffemodel.  Resuming continues like BVLC Caffe's resume of the same state.
    folder, case_json, info, data = load("sgd_lr_mult")
    v1_caffemodel(folder / "snapshot_iter_30.caffemodel", legacy_case / "noh_iter_30.caffemodel")
    state = weights.read_solverstate(folder / "snapshot_iter_30.solverstate")
    legacy = caffe_pb2.SolverState(iter=state.iter, learned_net="noh_iter_30.caffemodel")
    for blob in state.history:
        array = weights.blob_to_array(blob)
        dims = (1,) * (4 - array.ndim) + array.shape
        legacy.history.add(num=dims[0], channels=dims[1], height=dims[2], width=dims[3]).data.extend(
            array.ravel().tolist())
    (legacy_case / "noh_iter_30.solverstate").write_bytes(legacy.SerializeToString())
    solver = get_solver("v1_solver.prototxt")
    solver.param.max_iter = 35
    solver.solve(resume_file="noh_iter_30.solverstate")
    final_tol = tolerance(case_json, "final", 1e-3, 1e-6)
    for layer in ("ip1", "ip2"):
        for i in range(2):
            assert_close(solver.net.params[layer][i].data, data[f"resume/final/{layer}/{i}"], final_tol,
                         f"resume/final/{layer}/{i}")
