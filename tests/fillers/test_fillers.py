"""Fillers: Caffe's formulas, checked statistically on our draws and on the weights real Caffe
drew for the golden nets (``init.caffemodel``), plus exact values where the filler is
deterministic and the errors Caffe's CHECKs would raise."""
from __future__ import annotations

import math

import numpy as np
import pytest

from caffe_cae.errors import CaffeCaeError
from caffe_cae.fillers import FILLER_TYPES, fill
from caffe_cae.proto import caffe_pb2
from caffe_cae.prototxt import parse_text, read_net_text
from caffe_cae.weights import read_weights
from tests.helpers.paths import GOLDEN

SIGMAS = 6.0  # statistical bounds: a false failure is a ~1e-9 event


def filler(text: str) -> caffe_pb2.FillerParameter:
    return parse_text(text, caffe_pb2.FillerParameter)


def fan_n(shape, norm: int = caffe_pb2.FillerParameter.FAN_IN) -> float:
    count = math.prod(shape)
    fan_in = count // shape[0]
    fan_out = count // shape[1] if len(shape) > 1 else count
    return {0: fan_in, 1: fan_out, 2: (fan_in + fan_out) / 2}[norm]


# -- statistical checks shared by our draws and Caffe's -------------------------------------


def check_uniform_sample(values: np.ndarray, low: float, high: float) -> None:
    """Bounds, mean and variance of a U[low, high] sample; the extremes must be approached."""
    x = values.astype(np.float64).ravel()
    n = x.size
    assert x.min() >= np.float32(low) and x.max() <= np.float32(high)
    width = high - low
    mean, var = (low + high) / 2, width**2 / 12
    assert abs(x.mean() - mean) <= SIGMAS * math.sqrt(var / n) + 1e-7
    # Var of (x - mu)^2 for a uniform: width^4 / 80 - width^4 / 144 = width^4 / 180.
    assert abs(x.var() - var) <= SIGMAS * width**2 / math.sqrt(180 * n) + 1e-7
    if n >= 200:  # P(all draws inside a band 30/n short of an end) ~ e^-30
        assert x.min() <= low + 30 * width / n and x.max() >= high - 30 * width / n


def check_gaussian_sample(values: np.ndarray, mean: float, std: float) -> None:
    x = values.astype(np.float64).ravel()
    n = x.size
    assert abs(x.mean() - mean) <= SIGMAS * std / math.sqrt(n)
    assert abs(x.var() - std**2) <= SIGMAS * std**2 * math.sqrt(2 / n)


def check_sparse_gaussian_sample(values: np.ndarray, mean: float, std: float, sparse: int):
    """Each element kept with p = sparse / shape[0]; kept elements are N(mean, std)."""
    p = sparse / values.shape[0]
    n = values.size
    kept = values != 0
    if p >= 1:
        assert kept.all()
    elif p == 0:
        assert not kept.any()
    else:
        assert abs(kept.sum() - n * p) <= SIGMAS * math.sqrt(n * p * (1 - p)) + 1
    if kept.sum() >= 30:
        check_gaussian_sample(values[kept], mean, std)


def check_sample(param: caffe_pb2.FillerParameter, values: np.ndarray) -> None:
    """Assert ``values`` is a plausible draw of ``param`` (Caffe's formulas)."""
    shape = values.shape
    if param.type == "constant":
        np.testing.assert_array_equal(values, np.float32(param.value))
    elif param.type == "uniform":
        check_uniform_sample(values, param.min, param.max)
    elif param.type == "xavier":
        scale = math.sqrt(3 / fan_n(shape, param.variance_norm))
        check_uniform_sample(values, -scale, scale)
    elif param.type == "msra":
        check_gaussian_sample(values, 0.0, math.sqrt(2 / fan_n(shape, param.variance_norm)))
    elif param.type == "gaussian" and param.sparse >= 0:
        check_sparse_gaussian_sample(values, param.mean, param.std, param.sparse)
    elif param.type == "gaussian":
        check_gaussian_sample(values, param.mean, param.std)
    else:
        raise AssertionError(f"no statistical check for {param.type}")


# -- our draws --------------------------------------------------------------------------------

SAMPLED = [
    ("constant", "type: 'constant' value: 0.25", (3, 4)),
    ("constant_default", "", (5,)),
    ("uniform", "type: 'uniform' min: -0.5 max: 2", (40, 50)),
    ("uniform_default", "type: 'uniform'", (2000,)),
    ("gaussian", "type: 'gaussian' mean: 1.5 std: 0.3", (50, 40)),
    ("gaussian_sparse", "type: 'gaussian' std: 1 sparse: 25", (250, 64)),
    ("gaussian_sparse_p1", "type: 'gaussian' std: 2 sparse: 10", (10, 250)),
    ("gaussian_sparse_0", "type: 'gaussian' sparse: 0", (10, 30)),
    ("gaussian_sparse_4d", "type: 'gaussian' std: 0.5 sparse: 3", (12, 5, 3, 3)),
    ("xavier_fan_in", "type: 'xavier'", (20, 6, 5, 5)),
    ("xavier_fan_out", "type: 'xavier' variance_norm: FAN_OUT", (20, 6, 5, 5)),
    ("xavier_average", "type: 'xavier' variance_norm: AVERAGE", (20, 6, 5, 5)),
    ("xavier_ip", "type: 'xavier'", (30, 100)),
    ("xavier_1d", "type: 'xavier' variance_norm: FAN_OUT", (500,)),
    ("msra_fan_in", "type: 'msra'", (20, 6, 5, 5)),
    ("msra_fan_out", "type: 'msra' variance_norm: FAN_OUT", (20, 6, 5, 5)),
    ("msra_average", "type: 'msra' variance_norm: AVERAGE", (8, 60, 3, 3)),
]


@pytest.mark.parametrize("text,shape", [s[1:] for s in SAMPLED], ids=[s[0] for s in SAMPLED])
def test_draws_follow_caffe_formulas(text, shape):
    param = filler(text)
    values = fill(param, shape, np.random.default_rng(7))
    assert values.shape == shape and values.dtype == np.float32
    check_sample(param, values)


def test_xavier_variance_norms_give_their_own_scales():
    shape = (20, 6, 5, 5)  # fan_in 150, fan_out 500, average 325
    assert (fan_n(shape, 0), fan_n(shape, 1), fan_n(shape, 2)) == (150, 500, 325)
    maxima = [
        np.abs(fill(filler(f"type: 'xavier' variance_norm: {norm}"), shape,
                    np.random.default_rng(1))).max()
        for norm in ("FAN_IN", "FAN_OUT", "AVERAGE")
    ]
    expected = [math.sqrt(3 / n) for n in (150, 500, 325)]
    np.testing.assert_allclose(maxima, expected, rtol=0.01)


def test_deconvolution_weight_fan_in_is_output_side():
    # Deconvolution weights are (C_in, C_out/group, kh, kw): Caffe's "fan_in" = C_out/g*kh*kw.
    values = fill(filler("type: 'xavier'"), (250, 4, 12, 12), np.random.default_rng(3))
    check_uniform_sample(values, -math.sqrt(3 / 576), math.sqrt(3 / 576))


def test_sparse_keeps_fraction_sparse_over_num_output():
    values = fill(filler("type: 'gaussian' sparse: 25"), (250, 576), np.random.default_rng(5))
    assert abs((values != 0).mean() - 0.1) < 0.005


@pytest.mark.parametrize("size,expected_row", [
    (1, [1.0]),
    (2, [0.5, 0.5]),  # f = 1, c = 0.5
    (3, [0.5, 1.0, 0.5]),  # f = 2, c = 0.5
    (4, [0.25, 0.75, 0.75, 0.25]),  # f = 2, c = 0.75: the x2 upsampling kernel
    (5, [1 / 3, 2 / 3, 1.0, 2 / 3, 1 / 3]),  # f = 3, c = 2/3
])
def test_bilinear_exact_values(size, expected_row):
    values = fill(filler("type: 'bilinear'"), (3, 2, size, size), np.random.default_rng(0))
    row = np.asarray(expected_row, dtype=np.float64)
    expected = np.broadcast_to(np.outer(row, row), (3, 2, size, size))
    np.testing.assert_allclose(values, expected, rtol=1e-6, atol=1e-7)


def test_bilinear_matches_caffe_float32_loop():
    # Caffe's loop, literally, in float32: data[i] = (1-|x/f-c|)*(1-|y/f-c|).
    shape = (2, 1, 6, 6)
    f = math.ceil(6 / 2.0)
    c = np.float32((6 - 1) / (2.0 * f))
    expected = np.empty(math.prod(shape), dtype=np.float32)
    for i in range(expected.size):
        x, y = np.float32(i % 6), np.float32((i // 6) % 6)
        expected[i] = (np.float32(1) - abs(x / np.float32(f) - c)) * (
            np.float32(1) - abs(y / np.float32(f) - c))
    got = fill(filler("type: 'bilinear'"), shape, np.random.default_rng(0))
    np.testing.assert_array_equal(got.ravel(), expected)


def test_positive_unitball_rows_sum_to_one():
    values = fill(filler("type: 'positive_unitball'"), (7, 3, 4), np.random.default_rng(2))
    assert values.min() >= 0
    np.testing.assert_allclose(values.reshape(7, -1).sum(axis=1), 1.0, rtol=1e-5)
    assert len(np.unique(values)) == values.size  # really random, not 1/dim everywhere


def test_deterministic_by_seed_and_dtype():
    for name in FILLER_TYPES:
        param = filler(f"type: '{name}'")
        a = fill(param, (6, 4, 3, 3), np.random.default_rng(11))
        b = fill(param, (6, 4, 3, 3), np.random.default_rng(11))
        np.testing.assert_array_equal(a, b)
        d = fill(param, (6, 4, 3, 3), np.random.default_rng(11), dtype=np.float64)
        assert d.dtype == np.float64
    a = fill(filler("type: 'gaussian'"), (50,), np.random.default_rng(1))
    b = fill(filler("type: 'gaussian'"), (50,), np.random.default_rng(2))
    assert not np.array_equal(a, b)


# -- errors (Caffe's CHECKs) ------------------------------------------------------------------


@pytest.mark.parametrize("text,shape,message", [
    ("type: 'nope'", (2, 2), "unknown filler type 'nope'; known types: bilinear, constant"),
    ("type: 'gaussian' std: 0", (2, 2), "std must be > 0, got 0"),
    ("type: 'gaussian' sparse: 11", (10, 4), "sparse (11) must not exceed num_output"),
    ("type: 'gaussian' sparse: -2", (10, 4), "sparse must be >= -1"),
    ("type: 'xavier' sparse: 3", (10, 4), "only supported by the gaussian filler"),
    ("type: 'constant' sparse: 3", (10, 4), "only supported by the gaussian filler"),
    ("type: 'uniform' min: 2 max: 1", (3,), "min (2) must be <= max (1)"),
    ("type: 'bilinear'", (2, 3, 3), "needs a 4-D blob"),
    ("type: 'bilinear'", (2, 3, 3, 4), "needs a square kernel, got 3x4"),
    ("type: 'xavier'", (0, 3), "no elements"),
])
def test_errors_are_one_line_and_name_the_values(text, shape, message):
    where = "layer 'ip' (InnerProduct): weight_filler"
    with pytest.raises(CaffeCaeError) as info:
        fill(filler(text), shape, np.random.default_rng(0), where=where)
    text_out = str(info.value)
    assert "\n" not in text_out and text_out.startswith(where + ":")
    assert message in text_out


# -- Caffe's own draws (golden init.caffemodel) --------------------------------------------

# Weights Caffe did not take from the prototxt filler (set with pycaffe, see the golden README).
NOT_FROM_FILLER = {("model4_bvlc_equiv", "unpool1"), ("model4_bvlc_equiv", "unpool2"),
                   ("deconv_unpool_fixed_force", "unpool")}


def golden_filled_blobs():
    """(case, layer, blob index, FillerParameter) for every filled blob of the golden nets."""
    cases = []
    for net_file in sorted(GOLDEN.glob("*/net.prototxt")):
        case = net_file.parent.name
        if not (net_file.parent / "init.caffemodel").exists():
            continue
        for layer in read_net_text(net_file).layer:
            if layer.type in ("Convolution", "Deconvolution"):
                p = layer.convolution_param
            elif layer.type == "InnerProduct":
                p = layer.inner_product_param
            else:
                continue
            if (case, layer.name) in NOT_FROM_FILLER:
                continue
            cases.append((case, layer.name, 0, p.weight_filler))
            if p.bias_term:
                cases.append((case, layer.name, 1, p.bias_filler))
    return cases


GOLDEN_BLOBS = golden_filled_blobs()


def test_golden_cover_every_filler_kind_used():
    kinds = {(f.type, f.sparse >= 0) for *_, f in GOLDEN_BLOBS}
    assert {("xavier", False), ("gaussian", True), ("gaussian", False),
            ("constant", False)} <= kinds
    assert len(GOLDEN_BLOBS) > 100


@pytest.mark.parametrize("case", sorted({c for c, *_ in GOLDEN_BLOBS}))
def test_caffe_drawn_weights_follow_the_same_formulas(case):
    weights = read_weights(GOLDEN / case / "init.caffemodel")
    checked = 0
    for blob_case, layer, index, param in GOLDEN_BLOBS:
        if blob_case != case:
            continue
        values = weights[layer][index]
        try:
            check_sample(param, values)
        except AssertionError as err:
            raise AssertionError(f"{case}/{layer}/{index} ({param.type}): {err}") from None
        checked += 1
    assert checked > 0


def test_golden_model1_xavier_bounds_and_sparse_fraction():
    # The numbers that matter for the CAE: conv1 (8,1,9,9) fan_in 81; ip1encode p = 25/250.
    weights = read_weights(GOLDEN / "model1" / "init.caffemodel")
    conv1 = weights["conv1"][0]
    scale = math.sqrt(3 / 81)
    assert np.abs(conv1).max() <= np.float32(scale)
    assert np.abs(conv1).max() > 0.95 * scale
    zero_fraction = (weights["ip1encode"][0] == 0).mean()
    assert abs(zero_fraction - 0.9) < SIGMAS * math.sqrt(0.09 / weights["ip1encode"][0].size)
    assert (weights["ip2encode"][0] != 0).all()  # sparse 10 of num_output 10: p = 1
