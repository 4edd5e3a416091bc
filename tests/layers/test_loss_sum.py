"""caffe_loss_sum: Caffe's ``Dtype loss = 0; for (...) loss -= <double expression>;`` --
each step adds a double term to the float sum in double and rounds to float once."""
import numpy as np
import pytest

from caffe_cae.layers.softmax import caffe_loss_sum


def caffe_loop(terms, dtype=np.float32):
    loss = dtype(0)
    for term in terms:
        loss = dtype(np.float64(loss) + term)
    return loss


def _terms(seed):
    rng = np.random.default_rng(seed)
    return rng.random(20000) * rng.choice([0.01, 1, 100]) + rng.standard_normal(20000) * 1e-3


@pytest.mark.parametrize("seed", [5, 7, 25, 33, 34])
def test_double_terms_round_once_per_step_like_cpp(seed):
    terms = _terms(seed)
    assert caffe_loss_sum(terms, np.float32) == caffe_loop(terms)
    # what the test guards against: rounding every term to float first (one more rounding per
    # step) gives another sum for these terms
    assert np.cumsum(terms.astype(np.float32), dtype=np.float32)[-1] != caffe_loop(terms)


def test_float_terms_and_double_nets_are_plain_sequential_sums():
    terms = _terms(5)
    as_float = terms.astype(np.float32)
    assert caffe_loss_sum(as_float, np.float32) == np.cumsum(as_float, dtype=np.float32)[-1]
    assert caffe_loss_sum(terms, np.float64) == caffe_loop(terms, np.float64)
    assert caffe_loss_sum(np.zeros(0), np.float32) == 0


def test_many_corrections_still_exact():
    """Terms chosen so that the float-first shortcut goes wrong often."""
    rng = np.random.default_rng(3)
    terms = np.float64(2.0 ** 20) * (rng.random(3000) + 1) + rng.random(3000) * 2.0 ** -4
    assert caffe_loss_sum(terms, np.float32) == caffe_loop(terms)
