"""Run one layer of a golden Caffe case directly (no Net) and compare with what Caffe recorded."""
from __future__ import annotations

import json

import numpy as np

from caffe_cae.blob import Blob
from caffe_cae.layers import create_layer
from caffe_cae.prototxt import read_net_text
from caffe_cae.proto import caffe_pb2

from tests.helpers.paths import GOLDEN


class Case:
    """A golden case folder: ``net`` (NetParameter), ``npz``, ``info``, ``tol``."""

    def __init__(self, name: str):
        self.name = name
        folder = GOLDEN / name
        self.net = read_net_text(str(folder / "net.prototxt"))
        self.npz = dict(np.load(folder / "data.npz"))
        self.info = json.loads((folder / "info.json").read_text())
        self.tol = json.loads((folder / "case.json").read_text())["tolerance"]

    def layer_param(self, name: str) -> caffe_pb2.LayerParameter:
        return next(layer for layer in self.net.layer if layer.name == name)

    def layer_info(self, name: str) -> dict:
        return next(layer for layer in self.info["layers"] if layer["name"] == name)

    def value_before(self, layer_name: str, blob: str) -> np.ndarray:
        """Value of ``blob`` right before ``layer_name`` ran (last earlier writer's top key)."""
        key = None
        for layer in self.info["layers"]:
            if layer["name"] == layer_name:
                break
            for top, top_key in zip(layer["tops"], layer["top_keys"]):
                if top == blob:
                    key = top_key
        return self.npz[key]


def assert_close(mine, golden, tol: dict, what: str = "") -> None:
    """README rule: |mine - golden| <= atol + rtol*|golden|, atol = max(atol, atol_rel_max*max|golden|)."""
    mine, golden = np.asarray(mine), np.asarray(golden)
    assert mine.shape == golden.shape, f"{what}: shape {mine.shape} != golden {golden.shape}"
    atol = tol.get("atol", 0.0)
    if golden.size:
        atol = max(atol, tol.get("atol_rel_max", 0.0) * float(np.abs(golden).max()))
    err = np.abs(mine.astype(np.float64) - golden) - (atol + tol.get("rtol", 0.0) * np.abs(golden))
    assert (err <= 0).all(), f"{what}: max excess {err.max():.3g} (max |diff| {np.abs(mine - golden).max():.3g})"


def build(param, bottom_arrays, phase=caffe_pb2.TEST, dtype=np.float32):
    """Create the layer and its blobs (in-place tops reuse the bottom Blob); returns (layer, bottom, top)."""
    layer = create_layer(param, phase)
    n_top = len(param.top) or (1 if layer.is_loss else 0)
    layer.check_blob_counts(len(bottom_arrays), n_top)
    shapes = [a.shape for a in bottom_arrays]
    layer.setup(shapes)
    bottom = []
    for name, array in zip(param.bottom, bottom_arrays):
        blob = Blob(array.shape, dtype, name)
        blob.data[...] = array
        bottom.append(blob)
    top = []
    for i, shape in enumerate(layer.reshape(shapes)):
        name = param.top[i] if i < len(param.top) else f"{param.name}_top{i}"
        same = [b for b in bottom if b.name == name]
        top.append(same[0] if same else Blob(shape, dtype, name))
    return layer, bottom, top


def check_golden_layer(case_name: str, layer_name: str) -> None:
    """Forward the layer on Caffe's inputs, compare tops/losses; inject Caffe's top diffs (loss
    weight for loss tops), backward, compare the bottom diffs Caffe wrote."""
    case = Case(case_name)
    param = case.layer_param(layer_name)
    info = case.layer_info(layer_name)
    inputs = [case.value_before(layer_name, b) for b in param.bottom]
    layer, bottom, top = build(param, inputs)
    layer.forward(bottom, top)
    for blob, key in zip(top, info["top_keys"]):
        assert_close(blob.data, case.npz[key], case.tol["forward"], f"{case_name} top {blob.name}")
        if f"loss/{blob.name}" in case.npz:
            assert_close(blob.data, case.npz[f"loss/{blob.name}"], case.tol["loss"], f"{case_name} loss")
    for i, blob in enumerate(top):
        if layer.is_loss and i == 0:
            blob.diff[...] = case.info["loss_weights"].get(blob.name, 0.0)
        elif f"top_diff/{blob.name}" in case.npz:
            blob.diff[...] = case.npz[f"top_diff/{blob.name}"]
    written = set(case.info.get("diff_written", []))
    down = [b.name in written for b in bottom]
    layer.backward(top, down, bottom)
    checked = 0
    for blob, d in zip(bottom, down):
        if d:
            assert_close(blob.diff, case.npz[f"diff/{blob.name}"], case.tol["backward"], f"{case_name} diff {blob.name}")
            checked += 1
    return layer, bottom, top, checked


def numeric_gradient_check(param, bottom_arrays, phase=caffe_pb2.TEST, **options):
    """The shared float64 gradient checker (:func:`caffe_cae.testing.check_gradients`) on
    given bottom values, checking every coordinate."""
    from caffe_cae.testing import check_gradients

    arrays = [np.asarray(a, np.float64) for a in bottom_arrays]
    options.setdefault("max_coords", None)
    return check_gradients(param, [a.shape for a in arrays], arrays, phase=phase, **options)
