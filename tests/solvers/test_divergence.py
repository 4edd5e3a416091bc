"""A non-finite loss stops training with one line: the iteration and the first layer whose output
(or parameters) became non-finite; snapshots written before stay, none is written after."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from caffe_cae import get_solver, weights
from caffe_cae.solvers import TrainingDiverged
from tests.helpers.logs import strip_glog
from tests.helpers.paths import GOLDEN

NET = """name: "diverge"
layer { name: "data" type: "HDF5Data" top: "data" hdf5_data_param { source: "train_list.txt" batch_size: 16 } }
layer { name: "shift" type: "Power" bottom: "data" top: "shifted" power_param { shift: SHIFT power: 0.5 } }
layer { name: "conv" type: "Convolution" bottom: "shifted" top: "conv"
        convolution_param { num_output: 1 kernel_size: 1 weight_filler { type: "constant" value: 0.5 } } }
layer { name: "loss" type: "EuclideanLoss" bottom: "conv" bottom: "data" top: "loss" }
"""

SOLVER = """net: "net.prototxt"
base_lr: BASE_LR
lr_policy: "fixed"
max_iter: 50
snapshot: 1
snapshot_prefix: "snap"
random_seed: 1
"""


@pytest.fixture
def folder(tmp_path, monkeypatch):
    for name in ("data.h5", "train_list.txt"):
        shutil.copy(GOLDEN / "sgd_fixed_momentum" / name, tmp_path / name)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def write(folder, shift, base_lr):
    (folder / "net.prototxt").write_text(NET.replace("SHIFT", str(shift)))
    (folder / "solver.prototxt").write_text(SOLVER.replace("BASE_LR", str(base_lr)))


def test_nan_output_names_the_layer(folder):
    write(folder, shift=-10, base_lr=0.1)  # sqrt of negative numbers: NaN at the first forward
    solver = get_solver("solver.prototxt")
    with pytest.raises(TrainingDiverged) as err:
        solver.solve()
    assert str(err.value) == (
        "iteration 0: loss = nan is not finite; first non-finite layer 'shift' (Power): its output "
        "'shifted' is non-finite; no snapshot written"
    )
    assert err.value.iteration == 0 and err.value.layer == "shift"
    assert not list(folder.glob("snap_*"))


def test_exploding_weights_keep_the_last_good_snapshot(folder):
    write(folder, shift=1, base_lr=1e18)
    solver = get_solver("solver.prototxt")
    with pytest.raises(TrainingDiverged) as err:
        solver.solve()
    message = str(err.value)
    it = err.value.iteration
    assert message.startswith(f"iteration {it}: loss = ")
    # The weights are still finite; the squared error overflows float32 first.
    assert "first non-finite layer 'loss' (EuclideanLoss): its output 'loss' is non-finite" in message
    assert message.endswith(f"last good snapshot: snap_iter_{it}.solverstate")
    last = weights.read_weights(f"snap_iter_{it}.caffemodel")
    assert all(np.isfinite(a).all() for arrays in last.values() for a in arrays)
    assert not os.path.exists(f"snap_iter_{it + 1}.caffemodel")


def test_cli_reports_divergence_in_one_line(folder):
    write(folder, shift=-10, base_lr=0.1)
    result = subprocess.run([sys.executable, "-m", "caffe_cae", "train", "--solver", "solver.prototxt"],
                            capture_output=True, text=True, cwd=folder)
    assert result.returncode == 1
    assert strip_glog(result.stderr).splitlines()[-1] == (
        "caffe-cae train: error: iteration 0: loss = nan is not finite; first non-finite layer 'shift' "
        "(Power): its output 'shifted' is non-finite; no snapshot written"
    )
