"""One numerical gradient checker for every layer, modelled on Caffe's ``GradientChecker``.

``check_gradients(layer_text, bottom_shapes)`` builds the layer from its ``LayerParameter``
text with :func:`caffe_cae.layers.create_layer`, in float64 blobs, runs Caffe's contract
(``check_blob_counts``, ``setup``, ``reshape``, ``fill_params``, ``forward``), and compares the
layer's ``backward`` with central differences of the objective

    E = sum_k sum(top_k * R_k)      (R_k random; for a loss layer's scalar top, R = its weight)

for every bottom the layer accepts a gradient for (``allow_force_backward``) and every
parameter blob.  A mismatch raises :class:`GradientCheckError` (an ``AssertionError``) naming
the layer, the blob, the worst coordinate and both values.

What is verified besides the numbers, because the Net relies on it:

* bottom diffs are *assigned*: they are pre-filled with garbage before ``backward`` (except
  where the layer's backward reads what its forward left there, ``backward_reads_bottom_diff``);
* parameter gradients are *added*: they are pre-filled with a random offset that must survive
  (*assigned* instead for a layer that declares ``overwrites_param_gradients``, a fork's quirk);
* forward leaves its (separate) bottoms untouched.

Kinks (``layer.gradient_check == "kink"``: MAX pooling, Eltwise MAX, ReLU, AbsVal, ...): random
bottoms are drawn as a shuffled grid of distinct values, none closer to another or to 0 than
many steps, so no perturbation crosses a tie or the origin.  As in Caffe's
``CheckGradientExhaustive`` with ``kink_range``, a coordinate whose one-sided differences still
disagree (it sits on a kink of user-given values) is skipped and counted; more than
``max_kink_fraction`` of skipped coordinates is an error.

Random layers (``layer.draws_random_numbers``: Dropout in TRAIN) get a freshly seeded
generator before every forward, so every evaluation uses the same mask.

``check_in_place(layer_text, shape)`` compares a one-in/one-out layer run in place (top is the
bottom Blob) with the same layer run on separate blobs.

Example::

    from caffe_cae.testing import check_gradients
    check_gradients('name: "p" type: "Pooling" bottom: "x" top: "y" '
                    'pooling_param { pool: MAX kernel_size: 3 stride: 2 }', [(2, 3, 7, 7)])
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Sequence, Union

import numpy as np

from caffe_cae.blob import Blob
from caffe_cae.layers import create_layer
from caffe_cae.proto import caffe_pb2
from caffe_cae.prototxt import parse_text

#: A bottom's values: None (random), an array, or ``f(rng, shape) -> array``.
BottomValues = Union[None, np.ndarray, Callable[[np.random.Generator, tuple], np.ndarray]]


class GradientCheckError(AssertionError):
    """The analytic gradient of a layer disagrees with the numerical one."""


@dataclass
class BlobCheck:
    """Result for one checked blob (a bottom or a parameter)."""

    name: str
    checked: int = 0
    skipped_kinks: int = 0
    max_abs_error: float = 0.0
    max_scaled_error: float = 0.0  # |analytic - numeric| / max(1, |analytic|, |numeric|)


@dataclass
class GradientReport:
    """What :func:`check_gradients` compared (returned when everything matched)."""

    layer_type: str
    top_shapes: list
    blobs: list = field(default_factory=list)

    @property
    def max_scaled_error(self) -> float:
        return max((b.max_scaled_error for b in self.blobs), default=0.0)

    @property
    def checked(self) -> int:
        return sum(b.checked for b in self.blobs)


def check_gradients(
    layer_param: Union[str, caffe_pb2.LayerParameter],
    bottom_shapes: Sequence[Sequence[int]],
    bottom_values: Sequence[BottomValues] | None = None,
    *,
    phase: int = caffe_pb2.TEST,
    seed: int = 1701,
    step: float = 1e-4,
    tolerance: float = 1e-6,
    max_coords: int | None = 600,
    check_bottoms: Sequence[int] | None = None,
    ignored_tops: Sequence[int] = (),
    grad_scale: dict | None = None,
    max_kink_fraction: float = 0.05,
) -> GradientReport:
    """Compare a layer's backward with central differences; raise on any mismatch.

    Args:
      layer_param: the ``layer { ... }`` body as prototxt text (or a LayerParameter). Tops must
        be named, except for loss layers (one top is created, as Caffe's AutoTopBlobs does).
      bottom_shapes: one shape per bottom.
      bottom_values: per bottom, None (N(0,1) draws; distinct well-separated values for kink
        layers), a fixed array, or ``f(rng, shape)`` (labels, masks, inputs with constraints).
      phase: the layer's phase (TRAIN for Dropout's random mask).
      step: finite-difference step h (absolute; inputs are O(1)).
      tolerance: accepted ``|analytic - numeric| <= tolerance * max(1, |analytic|, |numeric|)``.
      max_coords: check at most this many coordinates per blob (a random subset of larger
        blobs); None checks them all.
      check_bottoms: bottoms to check (default: every one with ``allow_force_backward``).
      ignored_tops: tops whose diff Caffe's backward ignores by design (a MAX Pooling mask,
        SoftmaxWithLoss's probability top): they get weight 0 in the objective.
      grad_scale: ``{bottom index: s}`` when Caffe's backward is *by design* s times the true
        gradient (a documented Caffe quirk); the numerical value is scaled by s.
      max_kink_fraction: the largest share of coordinates that may be skipped as kinks.
    """
    if isinstance(layer_param, str):
        layer_param = parse_text(layer_param, caffe_pb2.LayerParameter, "<gradient check>")
    rng = np.random.default_rng(seed)
    layer = create_layer(layer_param, phase)
    where = f"layer '{layer.name}' ({layer.type})"
    bottom_shapes = [tuple(int(d) for d in s) for s in bottom_shapes]
    n_tops = len(layer_param.top) or (1 if layer.is_loss else 0)
    layer.check_blob_counts(len(bottom_shapes), n_tops)

    # Build in the Net's order: setup -> param blobs -> reshape -> tops -> fill.
    bottoms = [Blob(s, np.float64, f"bottom{i}") for i, s in enumerate(bottom_shapes)]
    param_shapes = layer.setup([b.shape for b in bottoms])
    layer.blobs = [Blob(s, np.float64, f"param{i}") for i, s in enumerate(param_shapes)]
    top_shapes = layer.reshape([b.shape for b in bottoms])
    if len(top_shapes) != n_tops:
        raise GradientCheckError(f"{where}: reshape returned {len(top_shapes)} top shapes, "
                                 f"expected {n_tops}")
    tops = [Blob(s, np.float64, f"top{i}") for i, s in enumerate(top_shapes)]
    layer.fill_params(np.random.default_rng(seed + 1))
    kinky = layer.gradient_check == "kink"
    _fill_bottoms(bottoms, bottom_values, rng, kinky)

    reseed = layer.draws_random_numbers
    rng_seed = seed + 2

    def forward() -> None:
        if reseed:
            layer.rng = np.random.default_rng(rng_seed)
        layer.forward(bottoms, tops)

    forward()  # a top's shape may depend on the bottom values (Filter): draw R for the real one
    weights = [rng.standard_normal(t.shape) if t.data.ndim else np.float64(rng.uniform(0.5, 2.0))
               for t in tops]
    for i in ignored_tops:
        weights[i] = np.zeros_like(weights[i])

    def objective() -> float:
        forward()
        return float(sum(np.sum(t.data * w) for t, w in zip(tops, weights)))

    if check_bottoms is None:
        check_bottoms = [i for i in range(len(bottoms)) if layer.allow_force_backward(i)]
    propagate_down = [i in check_bottoms for i in range(len(bottoms))]

    # Analytic gradients.  Bottom diffs must be assigned, parameter diffs accumulated.
    inputs = [b.data.copy() for b in bottoms]
    forward()
    for i, (b, before) in enumerate(zip(bottoms, inputs)):
        if not np.array_equal(b.data, before):
            raise GradientCheckError(f"{where}: forward modified bottom {i} (not in place)")
    for i in check_bottoms:
        if not (i == 0 and layer.backward_reads_bottom_diff):
            bottoms[i].diff[...] = rng.uniform(-1e3, 1e3, bottoms[i].shape)
    offsets = [rng.uniform(-10, 10, p.shape) for p in layer.blobs]
    for p, offset in zip(layer.blobs, offsets):
        p.diff[...] = offset
    for t, w in zip(tops, weights):  # after the bottoms: Reshape/Flatten may share the diff
        t.diff[...] = w
    layer.backward(tops, propagate_down, bottoms)
    analytic = {f"bottom {i}": (bottoms[i], bottoms[i].diff.copy()) for i in check_bottoms}
    for k, (p, offset) in enumerate(zip(layer.blobs, offsets)):
        analytic[f"param {k}"] = (p, p.diff.copy() if layer.overwrites_param_gradients else p.diff - offset)

    report = GradientReport(layer.type, [tuple(s) for s in top_shapes])
    base = objective() if kinky else None
    grad_scale = grad_scale or {}
    for name, (blob, grad) in analytic.items():
        scale = grad_scale.get(int(name.split()[1]), 1.0) if name.startswith("bottom") else 1.0
        report.blobs.append(_check_blob(where, name, blob, grad, objective, base, step,
                                        tolerance, max_coords, scale, max_kink_fraction, rng))
    return report


def check_in_place(
    layer_param: Union[str, caffe_pb2.LayerParameter],
    shape: Sequence[int],
    values: BottomValues = None,
    *,
    phase: int = caffe_pb2.TEST,
    seed: int = 1701,
    rtol: float = 1e-12,
) -> None:
    """Run a one-bottom/one-top layer in place (top is the bottom Blob, as Caffe does for
    ``top == bottom``) and with separate blobs; tops and bottom diffs must agree.

    For layers whose in-place backward is exact in Caffe (Sigmoid, TanH, ReLU, Dropout, ...).
    Raises :class:`GradientCheckError` naming the layer on a mismatch.
    """
    if isinstance(layer_param, str):
        layer_param = parse_text(layer_param, caffe_pb2.LayerParameter, "<in-place check>")
    shape = tuple(int(d) for d in shape)
    rng = np.random.default_rng(seed)
    x = np.empty(shape)
    _fill_bottoms([_ArrayBlob(x)], [values], rng, kinky=False)
    dy = rng.standard_normal(shape)
    results = []
    for in_place in (False, True):
        layer = create_layer(layer_param, phase)
        bottom = Blob(shape, np.float64, "bottom")
        layer.blobs = [Blob(s, np.float64) for s in layer.setup([shape])]
        top = bottom if in_place else Blob(layer.reshape([shape])[0], np.float64, "top")
        if in_place:
            layer.reshape([shape])
        layer.fill_params(np.random.default_rng(seed + 1))
        if layer.draws_random_numbers:
            layer.rng = np.random.default_rng(seed + 2)
        bottom.data[...] = x
        layer.forward([bottom], [top])
        out = top.data.copy()
        top.diff[...] = dy
        layer.backward([top], [True], [bottom])
        results.append((out, bottom.diff.copy()))
    where = f"layer '{layer.name}' ({layer.type})"
    for what, separate, shared in zip(("top", "bottom diff"), *results):
        if not np.allclose(separate, shared, rtol=rtol, atol=rtol):
            worst = float(np.max(np.abs(separate - shared)))
            raise GradientCheckError(
                f"{where}: in-place {what} differs from the out-of-place one (max |diff| "
                f"{worst:.3g})"
            )


class _ArrayBlob:
    """A stand-in with ``data``/``count``/``shape`` to reuse the value generators."""

    def __init__(self, array):
        self.data, self.shape, self.count = array, array.shape, array.size


def _fill_bottoms(bottoms, values, rng, kinky: bool) -> None:
    values = list(values or [])
    values += [None] * (len(bottoms) - len(values))
    random_ones = [b for b, v in zip(bottoms, values) if v is None]
    if kinky and random_ones:
        # One shuffled grid over all random bottoms: distinct values (Eltwise MAX compares
        # across bottoms), spaced >= 1e-2 (>> step), |x| >= half a spacing (ReLU/AbsVal at 0).
        total = sum(b.count for b in random_ones)
        spacing = max(1e-2, 4.0 / total)
        grid = (np.arange(total) - (total - 1) / 2.0) * spacing
        if total % 2:  # odd count: shift the grid off zero
            grid += spacing / 2
        grid = rng.permutation(grid)
        start = 0
        for blob in random_ones:
            blob.data[...] = grid[start:start + blob.count].reshape(blob.shape)
            start += blob.count
    for blob, value in zip(bottoms, values):
        if value is None:
            if not kinky:
                blob.data[...] = rng.standard_normal(blob.shape)
        elif callable(value):
            blob.data[...] = value(rng, blob.shape)
        else:
            blob.data[...] = np.asarray(value, dtype=np.float64).reshape(blob.shape)


def _check_blob(where, name, blob, grad, objective, base, step, tolerance, max_coords,
                scale, max_kink_fraction, rng) -> BlobCheck:
    result = BlobCheck(name)
    flat = blob.data.reshape(-1)  # a view: perturbing it perturbs the layer's input
    grad = grad.reshape(-1)
    coords = np.arange(flat.size)
    if max_coords is not None and flat.size > max_coords:
        coords = np.sort(rng.choice(flat.size, max_coords, replace=False))
    worst = None
    for index in coords:
        original = flat[index]
        flat[index] = original + step
        plus = objective()
        flat[index] = original - step
        minus = objective()
        flat[index] = original
        numeric = (plus - minus) / (2 * step) * scale
        if base is not None:
            right, left = (plus - base) / step, (base - minus) / step
            if abs(right - left) > 1e-2 * max(1.0, abs(right), abs(left)):
                result.skipped_kinks += 1
                continue
        analytic = float(grad[index])
        error = abs(analytic - numeric)
        scaled = error / max(1.0, abs(analytic), abs(numeric))
        result.checked += 1
        result.max_abs_error = max(result.max_abs_error, error)
        if scaled > result.max_scaled_error:
            result.max_scaled_error = scaled
            worst = (index, analytic, numeric)
    if base is not None:  # leave the layer in its forward state at the unperturbed point
        objective()
    if result.max_scaled_error > tolerance:
        index, analytic, numeric = worst
        position = tuple(int(i) for i in np.unravel_index(index, blob.shape))
        raise GradientCheckError(
            f"{where}: {name} gradient mismatch at {list(position)}: analytic {analytic:.9g}, "
            f"numeric {numeric:.9g} (scaled error {result.max_scaled_error:.3g} > "
            f"{tolerance:g}; {result.checked} coordinates checked)"
        )
    total = result.checked + result.skipped_kinks
    if total and result.skipped_kinks > max_kink_fraction * total:
        raise GradientCheckError(
            f"{where}: {name}: {result.skipped_kinks} of {total} coordinates sit on a kink "
            f"(one-sided differences disagree); draw inputs away from ties and 0"
        )
    return result


__all__ = ["BlobCheck", "GradientCheckError", "GradientReport", "check_gradients", "check_in_place"]
