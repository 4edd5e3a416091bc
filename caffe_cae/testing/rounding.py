"""How far two float evaluations of the same sums may differ: the one tolerance for comparing
implementations that only reorder additions (fast vs reference engine, split vs unsplit GEMMs,
one column layout vs another, another CPU's BLAS).

A sum of ``n`` products evaluated in floating point in *any* order, with or without FMA, is
within ``gamma_n * sum|x_i y_i|`` of the exact value, ``gamma_n = n u / (1 - n u)`` with ``u``
the unit roundoff (Higham, *Accuracy and Stability of Numerical Algorithms*, 2nd ed., eq. 3.5
and section 3.1).  Two evaluations therefore differ by at most ``2 gamma_n sum|x_i y_i|``:
a bound that scales with the length of the reduction and the magnitude of its terms, so it
holds on every CPU and BLAS, while a slicing or indexing mistake is far larger.

``magnitude`` is ``sum|x_i y_i|`` per element where it is at hand -- the same linear
computation run on absolute values (``|A| @ |B|``, a convolution of ``|x|`` with ``|w|``).  For
whole nets, where nonlinear layers lie between the reductions, pass the longest reduction and
leave ``magnitude`` to its default, the largest ``|desired|`` (a scale, no longer a proof).
"""
from __future__ import annotations

import numpy as np


def rounding_bound(terms: int, magnitude, dtype=np.float32):
    """``2 gamma_terms * magnitude``: the largest difference between two evaluations of sums of
    ``terms`` products whose absolute values add up to ``magnitude`` (scalar or per element)."""
    u = float(np.finfo(dtype).eps) / 2
    n = max(int(terms), 1)
    if n * u >= 0.5:
        raise ValueError(f"{n} terms: no useful rounding bound in {np.dtype(dtype).name}")
    return 2 * (n * u / (1 - n * u)) * np.asarray(magnitude, dtype=np.float64)


def assert_rounding_close(actual, desired, *, terms: int, magnitude=None, dtype=np.float32,
                          err_msg: str = "") -> None:
    """``|actual - desired| <= rounding_bound(terms, magnitude)`` element by element.

    ``terms``: the longest sum behind one element (e.g. C_in / group * kernel size for a
    convolution's output, images * positions for its weight gradient; add 1 for a bias added
    after it).  ``magnitude``: see the module docstring; default ``max|desired|``.
    """
    actual = np.asarray(actual, dtype=np.float64)
    desired = np.asarray(desired, dtype=np.float64)
    if actual.shape != desired.shape:
        raise AssertionError(f"{err_msg}: shape {actual.shape} != {desired.shape}")
    if desired.size == 0:
        return
    if magnitude is None:
        magnitude = np.max(np.abs(desired))
    bound = np.broadcast_to(rounding_bound(terms, magnitude, dtype), desired.shape)
    error = np.abs(actual - desired)
    bad = ~(error <= bound)  # NaN fails too
    if bad.any():
        worst = np.unravel_index(int(np.argmax(np.where(bad, error - bound, -np.inf))),
                                 desired.shape)
        raise AssertionError(
            f"{err_msg + ': ' if err_msg else ''}{int(bad.sum())}/{desired.size} elements "
            f"differ by more than float rounding of {terms}-term sums; worst at "
            f"{tuple(int(i) for i in worst)}: {actual[worst]!r} vs {desired[worst]!r} "
            f"(|diff| {error[worst]:.3g} > bound {bound[worst]:.3g})")
