"""Sparsity and compression measures of Turchenko, Chalmers & Luczak (2019), Sec. 5.1.

Sparsity (their expression (2), after Hurley & Rickard): the percentage of the elements of all
codes together (e.g. 2 x 10000 for the 2-D code of the test set) that are smaller than a
threshold = ``fraction`` (30 %) of the maximum over those same elements.  The comparison is on
the signed values, as the formula ``#{j : c_j < tau}`` reads; a linear code's negative elements
therefore count as sparse.  ``magnitude=True`` reads it on magnitudes instead (``|c_j|`` against
30 % of the largest ``|c_j|``), the usual sense of sparsity (few large coefficients); the paper
does not say which it used (docs/reproduction/README.md compares both with its Table 4).

Compression ratio: ``1 - stored bytes / input bytes`` with a uniform-distribution estimate of the
stored bytes: 4 bytes per single-precision code element plus, for each max-pooling switch the
decoder needs (Model 3), a number of bits for an index into the pooling input plane of ``cells``
positions (a switch is a per-plane index ``h*W + w``).  Input: 784 bytes (28x28 pixels of 8 bits).

Bits per switch, ``rule``:
* ``"paper"`` (default): ``floor(log2(cells))``, the paper's "at least 9 bits" for 576 cells and
  6 bits for 64; reproduces its 4652..4764 bytes and about -490 % for Model 3.
* ``"entropy"``: ``log2(cells)``, the information of a uniform switch (9.17 bits for 576).
* ``"ceil"``: ``ceil(log2(cells))``, what a fixed-width encoding really needs (10 bits for 576).
Codes alone give the paper's 99 % / 95 % / 85 % for 2/10/30-D.
"""
from __future__ import annotations

import math
from typing import Iterable, Sequence

import numpy as np

from caffe_cae.errors import CaffeCaeError

MNIST_INPUT_BYTES = 28 * 28
FLOAT_BYTES = 4


def sparsity(values: np.ndarray, fraction: float = 0.3, magnitude: bool = False) -> float:
    """Percentage of elements of ``values`` smaller than ``fraction * values.max()``.

    ``values``: all codes together (any shape, e.g. N x D) or all trainable parameters.
    ``magnitude``: compare ``|values|`` with ``fraction * |values|.max()`` (see the module doc).
    """
    values = np.asarray(values, dtype=np.float64).ravel()
    if values.size == 0:
        raise CaffeCaeError("sparsity of an empty code is undefined")
    if magnitude:
        values = np.abs(values)
    threshold = fraction * values.max()
    return float(100.0 * np.count_nonzero(values < threshold) / values.size)


SWITCH_BIT_RULES = ("paper", "entropy", "ceil")


def switch_bits(plane_cells: int, rule: str = "paper") -> float:
    """Bits to store one switch addressing one of ``plane_cells`` positions (see module doc)."""
    if plane_cells < 1:
        raise CaffeCaeError(f"a switch must address at least one cell, got {plane_cells}")
    exact = math.log2(plane_cells)
    if rule == "paper":
        return float(math.floor(exact + 1e-12))
    if rule == "entropy":
        return exact
    if rule == "ceil":
        return float(math.ceil(exact - 1e-12))
    raise CaffeCaeError(f"unknown switch bit rule {rule!r} (known: {', '.join(SWITCH_BIT_RULES)})")


def stored_bytes(code_dim: int, switches: Iterable[Sequence[int]] = (), rule: str = "paper") -> float:
    """Bytes of one sample's representation: float32 code + switches ``(count, plane_cells)``."""
    bits = sum(int(count) * switch_bits(int(cells), rule) for count, cells in switches)
    return FLOAT_BYTES * code_dim + bits / 8.0


def compression_ratio(code_dim: int, switches: Iterable[Sequence[int]] = (),
                      input_bytes: int = MNIST_INPUT_BYTES, rule: str = "paper") -> float:
    """Compression ratio in percent (negative = the representation inflates the input).

    ``switches``: ``(count, plane_cells)`` per pooling layer whose switches the decoder uses,
    e.g. Model 3: ``[(3744, 576), (576, 64)]``.
    """
    return 100.0 * (1.0 - stored_bytes(code_dim, switches, rule) / input_bytes)
