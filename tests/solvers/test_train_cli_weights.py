"""Audit of ``caffe-cae train`` against Caffe's ``tools/caffe.cpp`` ``train()``: what --weights and
--snapshot do to the solver's own ``weights`` field."""
from __future__ import annotations

import shutil

import pytest

from caffe_cae import cli
from tests.helpers.paths import GOLDEN

CASE = GOLDEN / "sgd_fixed_momentum"


@pytest.fixture
def case_dir(tmp_path, monkeypatch):
    for name in ("net.prototxt", "data.h5", "train_list.txt", "init.caffemodel"):
        shutil.copy(CASE / name, tmp_path / name)
    text = (CASE / "solver.prototxt").read_text().replace("max_iter: 40", "max_iter: 2")
    # A weights entry that does not exist: caffe train --weights / --snapshot never reads it.
    (tmp_path / "solver.prototxt").write_text(text + 'weights: "missing.caffemodel"\n')
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_weights_flag_replaces_the_solver_weights_field(case_dir):
    # caffe.cpp: solver_param.clear_weights(); solver_param.add_weights(FLAGS_weights)
    assert cli.main(["train", "--solver", "solver.prototxt", "--weights", "init.caffemodel"]) == 0
    assert (case_dir / "snapshot_iter_2.caffemodel").exists()


def test_snapshot_flag_ignores_the_solver_weights_field(case_dir):
    # caffe.cpp: with --snapshot, solver_param.clear_weights() before the solver is built.
    text = (case_dir / "solver.prototxt").read_text()
    (case_dir / "first.prototxt").write_text(text.replace('weights: "missing.caffemodel"\n', ""))
    assert cli.main(["train", "--solver", "first.prototxt", "--iterations", "1"]) == 0
    state = case_dir / "snapshot_iter_1.solverstate"
    assert state.exists()
    assert cli.main(["train", "--solver", "solver.prototxt", "--snapshot", str(state)]) == 0
    assert (case_dir / "snapshot_iter_2.caffemodel").exists()


def test_solver_weights_field_is_used_without_flags(case_dir):
    assert cli.main(["train", "--solver", "solver.prototxt"]) == 1  # missing.caffemodel
