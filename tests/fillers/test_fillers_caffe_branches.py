"""Audit of the fillers against BVLC Caffe's ``include/caffe/filler.hpp`` (master 9b89154):
the fan computation of xavier/msra for every ``variance_norm`` and blob rank, sparse gaussian's
keep probability and CHECKs, positive_unitball's rows and bilinear's CHECKs."""
from __future__ import annotations

import math

import numpy as np
import pytest

from caffe_cae import prototxt
from caffe_cae.errors import CaffeCaeError
from caffe_cae.fillers import fill
from caffe_cae.proto import caffe_pb2


def filler(text):
    return prototxt.parse_text(text, caffe_pb2.FillerParameter)


def rng():
    return np.random.default_rng(0)


# fan_in = count / shape(0); fan_out = count / shape(1) if num_axes > 1 else count;
# AVERAGE = (fan_in + fan_out) / Dtype(2)
@pytest.mark.parametrize("shape, norm, n", [
    ((50, 40, 3, 3), "FAN_IN", 40 * 9),
    ((50, 40, 3, 3), "FAN_OUT", 50 * 9),
    ((50, 40, 3, 3), "AVERAGE", (40 * 9 + 50 * 9) / 2),
    ((300, 7), "FAN_OUT", 300),
    ((300, 7), "AVERAGE", (7 + 300) / 2),
    ((4000,), "FAN_IN", 1),
    ((4000,), "FAN_OUT", 4000),
    ((4000,), "AVERAGE", (1 + 4000) / 2),
])
def test_xavier_and_msra_fans(shape, norm, n):
    xavier = fill(filler(f'type: "xavier" variance_norm: {norm}'), shape, rng())
    scale = math.sqrt(3 / n)
    assert np.abs(xavier).max() <= np.float32(scale) and np.abs(xavier).max() > 0.99 * scale
    msra = fill(filler(f'type: "msra" variance_norm: {norm}'), shape, rng())
    assert msra.std() == pytest.approx(math.sqrt(2 / n), rel=0.05)


def test_sparse_probability_is_float32_sparse_over_shape0():
    # Dtype(sparse) / Dtype(num_outputs): num_outputs = shape(0), whatever the blob's rank.
    data = fill(filler('type: "gaussian" sparse: 1'), (3, 20000), rng())
    assert (data != 0).mean() == pytest.approx(1 / 3, abs=0.01)
    conv = fill(filler('type: "gaussian" sparse: 2'), (8, 4, 50, 50), rng())
    assert (conv != 0).mean() == pytest.approx(2 / 8, abs=0.01)
    assert not fill(filler('type: "gaussian" sparse: 0'), (5, 5), rng()).any()
    assert fill(filler('type: "gaussian" sparse: 5'), (5, 5), rng()).all()


@pytest.mark.parametrize("text, shape, message", [
    ('type: "gaussian" sparse: 6', (5, 5), "sparse"),           # Bernoulli CHECK_LE(p, 1)
    ('type: "gaussian" sparse: -2', (5, 5), "sparse"),          # CHECK_GE(sparse, -1)
    ('type: "gaussian" std: 0', (5, 5), "std"),                 # CHECK_GT(sigma, 0)
    ('type: "xavier" sparse: 1', (5, 5), "sparse"),             # "Sparsity not supported"
    ('type: "constant" sparse: 0', (5, 5), "sparse"),
    ('type: "uniform" min: 1 max: 0', (5, 5), "min"),           # CHECK_LE(a, b)
    ('type: "bilinear"', (2, 2, 4), "4-D"),                     # "Blob must be 4 dim."
    ('type: "bilinear"', (1, 1, 3, 4), "square"),               # "Filter must be square"
    ('type: "bilinear"', (1, 1, 0, 0), "no elements"),
    ('type: "unknown_one"', (2,), "unknown filler"),            # GetFiller: "Unknown filler name"
])
def test_checks(text, shape, message):
    with pytest.raises(CaffeCaeError, match=message):
        fill(filler(text), shape, rng())


def test_positive_unitball_normalises_shape0_rows():
    data = fill(filler('type: "positive_unitball"'), (4, 3, 2, 2), rng())
    np.testing.assert_allclose(data.reshape(4, -1).sum(axis=1), 1, rtol=1e-6)
    assert (data >= 0).all()


def test_bilinear_equals_caffes_loop_for_odd_and_even_kernels():
    for k in (1, 2, 3, 4, 5, 7):
        shape = (2, 1, k, k)
        f = math.ceil(k / 2.0)
        c = np.float32((k - 1) / (2.0 * f))
        expected = np.empty(int(np.prod(shape)), np.float32)
        for i in range(expected.size):
            x, y = np.float32(i % k), np.float32((i // k) % k)
            expected[i] = (np.float32(1) - abs(x / np.float32(f) - c)) * (np.float32(1) - abs(y / np.float32(f) - c))
        np.testing.assert_array_equal(fill(filler('type: "bilinear"'), shape, rng()).ravel(), expected)


def test_uniform_bounds_inclusive_and_constant_default_zero():
    data = fill(filler('type: "uniform" min: -0.5 max: 0.5'), (10000,), rng())
    assert data.min() >= -0.5 and data.max() <= 0.5
    assert not fill(filler(""), (3, 3), rng()).any()  # type defaults to "constant", value 0


def test_legacy_accessors_for_0d_and_5d_blobs():
    """xavier/msra/positive_unitball/sparse read num() and channels(): 1 for a 0-d blob (a
    Scale num_axes 0 scalar); a blob with more than 4 axes aborts in Caffe."""
    assert fill(filler('type: "xavier"'), (), rng()).shape == ()
    assert abs(fill(filler('type: "xavier"'), (), rng())) <= math.sqrt(3)
    assert fill(filler('type: "positive_unitball"'), (), rng()) == 1
    for text in ('type: "xavier"', 'type: "msra"', 'type: "positive_unitball"',
                 'type: "gaussian" sparse: 1'):
        with pytest.raises(CaffeCaeError, match="legacy accessors"):
            fill(filler(text), (2, 2, 2, 2, 2), rng())
    assert fill(filler('type: "uniform"'), (2, 2, 2, 2, 2), rng()).shape == (2,) * 5
