"""Binary and HDF5 Caffe files: every Caffe-written file reads with the recorded shapes, and
writes back byte for byte."""
import json

import numpy as np
import pytest

from caffe_cae import weights
from caffe_cae.errors import CaffeCaeError
from caffe_cae.proto import caffe_pb2
from tests.helpers.paths import GOLDEN

CAFFEMODELS = sorted(GOLDEN.glob("*/*.caffemodel"))
SOLVERSTATES = sorted(GOLDEN.glob("*/*.solverstate"))


def _ids(paths):
    return [f"{p.parent.name}/{p.name}" for p in paths]


@pytest.mark.parametrize("path", CAFFEMODELS + SOLVERSTATES, ids=_ids(CAFFEMODELS + SOLVERSTATES))
def test_binary_round_trip_is_byte_identical(path, tmp_path):
    reader = weights.read_net_binary if path.suffix == ".caffemodel" else weights.read_solverstate
    message = reader(path)
    copy = tmp_path / path.name
    weights.write_binary(copy, message)
    assert copy.read_bytes() == path.read_bytes()


def _recorded_param_shapes(case_dir):
    """{layer: [shape, ...]} as Caffe recorded it (info.json layers[].param_shapes)."""
    info = json.loads((case_dir / "info.json").read_text())
    shapes = {}
    for layer in info.get("layers", []):
        if layer.get("param_shapes") and layer["name"] not in shapes:
            shapes[layer["name"]] = [tuple(s) for s in layer["param_shapes"]]
    return shapes


# Which data.npz prefix holds each Caffe-written file's arrays (README: large cases omit them).
NPZ_PREFIX = {"init.caffemodel": "param", "in.caffemodel": "legacy", "snapshot": "final"}


@pytest.mark.parametrize("path", CAFFEMODELS, ids=_ids(CAFFEMODELS))
def test_caffemodel_blobs_match_golden_records(path):
    read = weights.read_weights(path)
    data = np.load(path.parent / "data.npz")
    prefix = NPZ_PREFIX.get("snapshot" if path.name.startswith("snapshot_iter") else path.name)
    for layer, arrays in read.items():
        for i, array in enumerate(arrays):
            key = f"{prefix}/{layer}/{i}"
            if key in data.files:
                # legacy files store 4-D dims (e.g. bias 1x1x1xN); compare values there
                expected = data[key] if prefix != "legacy" else data[key].reshape(array.shape)
                assert array.shape == expected.shape, key
                np.testing.assert_array_equal(array, expected)
    if path.name == "init.caffemodel":
        recorded = _recorded_param_shapes(path.parent)
        assert {layer for layer in read} <= set(recorded)
        for layer, arrays in read.items():
            assert [a.shape for a in arrays] == recorded[layer], layer


def test_legacy_dims_are_kept_and_reported():
    net = weights.read_net_binary(GOLDEN / "mig_caffemodel_v1_binary" / "in.caffemodel")
    blob = next(l for l in net.layers if l.blobs).blobs[0]
    assert weights.blob_has_legacy_dims(blob)
    assert len(weights.blob_shape(blob)) == 4


@pytest.mark.parametrize("path", SOLVERSTATES, ids=_ids(SOLVERSTATES))
def test_solverstate_history_matches_records(path):
    state = weights.read_solverstate(path)
    info = json.loads((path.parent / "info.json").read_text())["solverstate"]
    assert state.iter == info["iter"] and state.learned_net == info["learned_net"]
    assert len(state.history) == info["n_history"]
    data = np.load(path.parent / "data.npz")
    for i, blob in enumerate(state.history):
        if f"state/history/{i}" in data.files:
            np.testing.assert_array_equal(weights.blob_to_array(blob), data[f"state/history/{i}"])


def test_array_blob_round_trip():
    array = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    blob = weights.array_to_blob(array)
    assert list(blob.shape.dim) == [2, 3, 4]
    np.testing.assert_array_equal(weights.blob_to_array(blob), array)


def test_blob_with_wrong_count_is_an_error():
    blob = caffe_pb2.BlobProto()
    blob.shape.dim.extend([2, 2])
    blob.data.extend([1.0, 2.0, 3.0])
    with pytest.raises(CaffeCaeError, match=r"shape \[2, 2\] holds 3 data values, expected 4"):
        weights.blob_to_array(blob)


def test_hdf5_caffemodel_round_trip_keeps_layer_order(tmp_path):
    source = weights.read_weights(GOLDEN / "model1" / "init.caffemodel")
    target = tmp_path / "w.caffemodel.h5"
    weights.write_weights_hdf5(target, source)
    back = weights.read_weights(target)
    assert list(back) == list(source)
    for layer in source:
        for a, b in zip(source[layer], back[layer]):
            np.testing.assert_array_equal(a, b)


def test_hdf5_solverstate_round_trip(tmp_path):
    state = weights.read_solverstate(GOLDEN / "sgd_step" / "snapshot_iter_30.solverstate")
    target = tmp_path / "s.solverstate.h5"
    weights.write_solverstate(target, state)
    assert weights.read_solverstate(target) == state


def test_garbage_and_missing_files_are_one_line_errors(tmp_path):
    bad = tmp_path / "bad.caffemodel"
    bad.write_bytes(b"\xff\xff\xff\xff not a protobuf")
    with pytest.raises(CaffeCaeError, match=f"^{bad}: not a binary caffemodel"):
        weights.read_net_binary(bad)
    with pytest.raises(CaffeCaeError, match="no such file"):
        weights.read_weights(tmp_path / "missing.caffemodel.h5")
