"""Fillers in nets created WITHOUT Caffe's weights, against what real Caffe filled in
golden_bvlc's filler cases: deterministic fillers value for value, random ones by their
statistics (``info.json`` ``param_stats``) within sampling error."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest

import caffe_cae
from tests.helpers.paths import GOLDEN_BVLC


def case(name):
    folder = GOLDEN_BVLC / name
    info = json.loads((folder / "info.json").read_text())
    with np.load(folder / "data.npz") as npz:
        data = {key: npz[key] for key in npz.files}
    return folder, info["param_stats"], data


def filled(name, seed):
    folder, stats, data = case(name)
    net = caffe_cae.Net(str(folder / "net.prototxt"), caffe_cae.TEST, seed=seed)
    return {f"{layer}/{i}": blob.data for layer, blobs in net.params.items()
            for i, blob in enumerate(blobs)}, stats, data


@pytest.mark.parametrize("name", ["filler_bilinear_deconv", "filler_constant"])
def test_deterministic_fillers_equal_caffes_values(name):
    mine, stats, data = filled(name, seed=0)
    assert sorted(mine) == sorted(stats)
    for key, values in mine.items():
        np.testing.assert_array_equal(values, data[f"param/{key}"], err_msg=key)
        assert list(values.shape) == stats[key]["shape"]


def sample_stats(values):
    flat = values.astype(np.float64).ravel()
    return flat.mean(), flat.std(), values.reshape(values.shape[0], -1).sum(axis=1)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_msra_matches_caffes_distribution(seed):
    mine, stats, _ = filled("filler_msra", seed)
    weights, golden = mine["conv/0"], stats["conv/0"]
    assert list(weights.shape) == golden["shape"] == [16, 8, 3, 3]
    n = weights.size
    sigma = math.sqrt(2 / (8 * 3 * 3))  # fan_in = C_in * kh * kw
    mean, std, sums = sample_stats(weights)
    for m, s in ((mean, std), (golden["mean"], golden["std"])):  # ours and Caffe's sample
        assert abs(m) < 4 * sigma / math.sqrt(n)
        assert abs(s - sigma) < 4 * sigma / math.sqrt(2 * n)
    assert abs(std - golden["std"]) < 4 * math.sqrt(2) * sigma / math.sqrt(2 * n)
    # each filter sums 72 draws: std sqrt(72) * sigma = 2/sqrt(2) ~ 1.41, over 16 filters
    spread = math.sqrt(72) * sigma
    for filter_sums in (sums, np.asarray(golden["filter_sums"])):
        assert 0.4 * spread < filter_sums.std() < 1.6 * spread
    assert np.abs(sums).max() < 5 * spread
    np.testing.assert_array_equal(mine["conv/1"], np.float32(0.2))
    assert stats["conv/1"]["min"] == stats["conv/1"]["max"] == pytest.approx(0.2)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_positive_unitball_matches_caffes_distribution(seed):
    mine, stats, _ = filled("filler_unitball", seed)
    weights, golden = mine["conv/0"], stats["conv/0"]
    assert list(weights.shape) == golden["shape"] == [5, 6, 3, 3]
    mean, std, sums = sample_stats(weights)
    np.testing.assert_allclose(sums, 1, rtol=1e-6)
    np.testing.assert_allclose(golden["filter_sums"], 1, rtol=1e-6)
    assert mean == pytest.approx(golden["mean"], rel=1e-6)  # 1 / 54 either way
    # uniform [0, 1) over a row of 54 divided by its sum (~27): std ~ (1/sqrt(12)) / 27
    expected_std = 1 / math.sqrt(12) / 27
    for s in (std, golden["std"]):
        assert abs(s - expected_std) < 0.15 * expected_std
    assert weights.min() >= 0 and golden["min"] >= 0
    assert weights.max() < 2.5 / 54 and golden["max"] < 2.5 / 54
    np.testing.assert_array_equal(mine["conv/1"], np.float32(-0.1))
