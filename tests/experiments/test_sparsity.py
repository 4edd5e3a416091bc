"""Sparsity (expression (2), 30 % of the maximum) and compression ratio (Sec. 5.1) on hand-made codes."""
import numpy as np
import pytest

from caffe_cae.errors import CaffeCaeError
from caffe_cae.experiments import sparsity as sp

MODEL3_SWITCHES = [(12 * 12 * 26, 24 * 24), (4 * 4 * 36, 8 * 8)]   # pool1: 3744 in [0,575]; pool2: 576 in [0,63]


def test_sparsity_counts_elements_below_the_threshold_over_all_codes():
    codes = np.array([[10.0, 2.9], [3.0, 0.0], [5.0, -1.0]])   # max 10 -> threshold 3
    # 2.9, 0.0, -1.0 are < 3; 3.0 is not (strict), so 3 of 6 elements.
    assert sp.sparsity(codes) == pytest.approx(50.0)
    assert sp.sparsity(codes, fraction=0.1) == pytest.approx(100 * 2 / 6)   # threshold 1: 0.0, -1.0


def test_sparsity_on_magnitudes_counts_large_negative_elements_as_dense():
    codes = np.array([[10.0, 2.9], [1.0, -2.0], [5.0, -12.0]])   # max 10 -> 3; max |c| 12 -> 3.6
    assert sp.sparsity(codes) == pytest.approx(100 * 4 / 6)                  # signed: 2.9, 1.0, -2.0, -12.0
    assert sp.sparsity(codes, magnitude=True) == pytest.approx(100 * 3 / 6)  # |c|: 2.9, 1.0, 2.0


def test_sparsity_uses_the_global_maximum_not_per_sample():
    codes = np.array([[1.0, 0.5], [100.0, 0.5]])
    assert sp.sparsity(codes) == pytest.approx(75.0)


def test_sparsity_of_empty_code_is_an_error():
    with pytest.raises(CaffeCaeError):
        sp.sparsity(np.zeros((0, 2)))


@pytest.mark.parametrize("dims, paper", [(2, 99), (10, 95), (30, 85)])
def test_compression_of_plain_codes_matches_the_paper(dims, paper):
    # 4 bytes per float32 element vs. 784 bytes of pixels.
    assert sp.compression_ratio(dims) == pytest.approx(100 * (1 - 4 * dims / 784))
    assert round(sp.compression_ratio(dims)) == paper


def test_model3_switches_inflate_the_input():
    # Sec. 5.1: 3744 switches x 9 bits + 576 x 6 bits + code = 4652 (2-D) .. 4764 (30-D) bytes.
    assert sp.stored_bytes(2, MODEL3_SWITCHES) == pytest.approx(4652)
    assert sp.stored_bytes(30, MODEL3_SWITCHES) == pytest.approx(4764)
    assert sp.compression_ratio(2, MODEL3_SWITCHES) == pytest.approx(100 * (1 - 4652 / 784))
    assert -510 < sp.compression_ratio(10, MODEL3_SWITCHES) < -490


def test_switch_bit_rules():
    assert sp.switch_bits(576) == 9 and sp.switch_bits(64) == 6
    assert sp.switch_bits(576, "ceil") == 10 and sp.switch_bits(64, "ceil") == 6
    assert sp.switch_bits(576, "entropy") == pytest.approx(np.log2(576))
    with pytest.raises(CaffeCaeError, match="unknown switch bit rule"):
        sp.switch_bits(4, "nope")
