"""Caffe's weight fillers (``include/caffe/filler.hpp``), drawn from a NumPy Generator.

``fill(filler_param, shape, rng)`` returns a new array filled as Caffe's ``GetFiller(param)->Fill``
would, with the same formulas, shape conventions and checks:

* ``constant``: every element = ``value``.
* ``uniform``: U[min, max] (``min <= max`` required).
* ``gaussian``: N(mean, std), ``std > 0``.  With ``sparse >= 0`` each element is kept with
  probability ``p = sparse / shape[0]`` (``shape[0]`` = num_output for InnerProduct weights) and
  zeroed otherwise; ``p <= 1`` is required.
* ``xavier``: U[-a, a], ``a = sqrt(3 / n)``; ``msra``: N(0, sqrt(2 / n)), where ``n`` follows
  ``variance_norm``: FAN_IN ``count / shape[0]`` (default), FAN_OUT ``count / shape[1]``
  (``count`` for 1-axis blobs), AVERAGE their mean.  These read Caffe's legacy 4-D accessors:
  a 0-d blob has shape[0] = shape[1] = 1, and a blob with more than 4 axes (a 3-D convolution's
  weights) is refused, as Caffe aborts there.  Deconvolution weights are
  ``(C_in, C_out/group, kh, kw)``, so their "fan_in" is ``C_out/group * kh * kw``, as in Caffe.
* ``bilinear``: the upsampling kernel ``(1 - |x/f - c|) * (1 - |y/f - c|)``,
  ``f = ceil(K/2)``, ``c = (K - 1) / (2f)``, for 4-D blobs with square ``K x K`` kernels.
* ``positive_unitball``: U[0, 1], then each of the ``shape[0]`` rows normalised to sum 1.

Only ``gaussian`` accepts ``sparse`` (the others refuse it, as Caffe's CHECKs do).

Random streams: Caffe draws from boost's mt19937 with boost distributions, which NumPy cannot
reproduce bit for bit, so weights drawn here follow Caffe's *distributions*, not its values.
Comparisons with real Caffe (golden data) therefore load the weights Caffe drew
(``init.caffemodel``) instead of re-drawing them.  ``constant`` and ``bilinear`` are deterministic
and match Caffe exactly (``bilinear`` is evaluated in the target dtype like Caffe's ``Dtype``).
"""
from __future__ import annotations

import math
from typing import Callable, Sequence

import numpy as np

from caffe_cae.errors import CaffeCaeError
from caffe_cae.proto import caffe_pb2

_FAN_IN = caffe_pb2.FillerParameter.FAN_IN
_FAN_OUT = caffe_pb2.FillerParameter.FAN_OUT
_AVERAGE = caffe_pb2.FillerParameter.AVERAGE


def fill(
    filler_param: caffe_pb2.FillerParameter,
    shape: Sequence[int],
    rng: np.random.Generator,
    dtype=np.float32,
    *,
    where: str | None = None,
) -> np.ndarray:
    """A new ``dtype`` array of ``shape`` filled like Caffe's filler ``filler_param.type``.

    ``where`` (e.g. ``"layer 'conv1' (Convolution): weight_filler"``) prefixes error messages;
    without it they start with ``filler '<type>'``.  Raises :class:`CaffeCaeError` for an unknown
    type or parameters Caffe would refuse (one line, naming the offending values).
    """
    shape = tuple(int(d) for d in shape)
    name = filler_param.type
    prefix = f"{where}: filler '{name}'" if where else f"filler '{name}'"

    def error(message: str) -> CaffeCaeError:
        return CaffeCaeError(f"{prefix}: {message}")

    try:
        filler = _FILLERS[name]
    except KeyError:
        known = ", ".join(sorted(_FILLERS))
        where_part = f"{where}: " if where else ""
        raise CaffeCaeError(
            f"{where_part}unknown filler type {name!r}; known types: {known}"
        ) from None
    count = math.prod(shape)
    if count == 0:
        raise error(f"cannot fill a blob with no elements (shape {list(shape)})")
    if name != "gaussian" and filler_param.sparse != -1:
        raise error(f"sparse: {filler_param.sparse} is only supported by the gaussian filler")
    dtype = np.dtype(dtype)
    return filler(filler_param, shape, rng, dtype, error)


# -- individual fillers ---------------------------------------------------------------------
# Each takes (param, shape, rng, dtype, error) and returns the filled array.


def _constant(param, shape, rng, dtype, error):
    return np.full(shape, param.value, dtype=dtype)


def _uniform_array(low, high, shape, rng, dtype):
    # Caffe: boost::uniform_real(low, nextafter(high, +inf)), i.e. the closed interval.
    high_closed = np.nextafter(np.asarray(high, dtype), np.asarray(np.inf, dtype))
    values = rng.uniform(float(low), float(high_closed), size=shape).astype(dtype)
    # Rounding to dtype may land on nextafter(high); clamp to the closed interval.
    return np.minimum(values, np.asarray(high, dtype), out=values)


def _uniform(param, shape, rng, dtype, error):
    low, high = dtype.type(param.min), dtype.type(param.max)
    if not low <= high:
        raise error(f"min ({param.min:g}) must be <= max ({param.max:g})")
    return _uniform_array(low, high, shape, rng, dtype)


def _gaussian_array(mean, std, shape, rng, dtype, error):
    if not std > 0:
        raise error(f"std must be > 0, got {std:g}")
    return rng.normal(float(mean), float(std), size=shape).astype(dtype)


def _gaussian(param, shape, rng, dtype, error):
    data = _gaussian_array(param.mean, param.std, shape, rng, dtype, error)
    sparse = param.sparse
    if sparse < -1:
        raise error(f"sparse must be >= -1, got {sparse}")
    if sparse >= 0:
        num_outputs = _legacy_dim(shape, 0, error)
        # Caffe computes the probability in Dtype: Dtype(sparse) / Dtype(num_outputs).
        keep = float(dtype.type(sparse) / dtype.type(num_outputs))
        if keep > 1:
            raise error(
                f"sparse ({sparse}) must not exceed num_output = shape[0] ({num_outputs}): "
                f"keep probability {sparse}/{num_outputs} > 1"
            )
        data *= rng.random(size=shape) < keep
    return data


def _legacy_dim(shape, axis: int, error) -> int:
    """Caffe's ``Blob::LegacyShape`` (``num()``, ``channels()``): a missing axis reads as 1,
    a blob with more than 4 axes aborts."""
    if len(shape) > 4:
        raise error(f"cannot use legacy accessors on blobs with > 4 axes (shape {list(shape)})")
    return shape[axis] if axis < len(shape) else 1


def _fan(param, shape, error) -> float:
    """Caffe's n for xavier/msra: fan_in (count / num()), fan_out (count / channels()) or
    their average, per variance_norm."""
    count = math.prod(shape)
    fan_in = count // _legacy_dim(shape, 0, error)
    fan_out = count // _legacy_dim(shape, 1, error)
    norm = param.variance_norm
    if norm == _AVERAGE:
        return (fan_in + fan_out) / 2.0
    if norm == _FAN_OUT:
        return float(fan_out)
    return float(fan_in)


def _xavier(param, shape, rng, dtype, error):
    n = dtype.type(_fan(param, shape, error))
    scale = np.sqrt(dtype.type(3) / n)
    return _uniform_array(-scale, scale, shape, rng, dtype)


def _msra(param, shape, rng, dtype, error):
    n = dtype.type(_fan(param, shape, error))
    std = np.sqrt(dtype.type(2) / n)
    return _gaussian_array(0.0, std, shape, rng, dtype, error)


def _bilinear(param, shape, rng, dtype, error):
    if len(shape) != 4:
        raise error(f"needs a 4-D blob, got shape {list(shape)}")
    if shape[2] != shape[3]:
        raise error(f"needs a square kernel, got {shape[2]}x{shape[3]}")
    size = shape[3]
    f = math.ceil(size / 2.0)
    c = dtype.type((size - 1) / (2.0 * f))  # double in Caffe, stored in Dtype
    coords = np.arange(size, dtype=dtype)
    factor = dtype.type(1) - np.abs(coords / dtype.type(f) - c)  # same for x and y
    kernel = factor[:, None] * factor[None, :]
    return np.ascontiguousarray(np.broadcast_to(kernel, shape), dtype=dtype)


def _positive_unitball(param, shape, rng, dtype, error):
    num = _legacy_dim(shape, 0, error)
    data = _uniform_array(dtype.type(0), dtype.type(1), shape, rng, dtype)
    rows = data.reshape(num, -1)
    rows /= rows.sum(axis=1, keepdims=True)
    return data


_FILLERS: dict[str, Callable] = {
    "constant": _constant,
    "uniform": _uniform,
    "gaussian": _gaussian,
    "xavier": _xavier,
    "msra": _msra,
    "bilinear": _bilinear,
    "positive_unitball": _positive_unitball,
}

#: Filler type strings Caffe's ``GetFiller`` knows.
FILLER_TYPES = tuple(_FILLERS)
