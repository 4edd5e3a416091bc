"""Helpers shared by the layer families (each family imports only ``base`` and this module)."""
from __future__ import annotations

import logging
import zlib

import numpy as np

from caffe_cae import engine, tuning
from caffe_cae.layers.base import Layer
from caffe_cae.proto import caffe_pb2

NORMALIZATION = caffe_pb2.LossParameter  # .FULL, .VALID, .BATCH_SIZE, .NONE


def canonical_axis(layer: Layer, axis: int, num_axes: int, what: str = "axis") -> int:
    """Caffe's Blob::CanonicalAxisIndex: negative axes count from the end; range-checked."""
    if not -num_axes <= axis < num_axes:
        raise layer.error(
            f"{what} {axis} out of range for a {num_axes}-D blob (valid: {-num_axes}..{num_axes - 1})"
        )
    return axis + num_axes if axis < 0 else axis


def _per_axis(layer, values, n_spatial, default, what):
    """A repeated field given 0 (default), 1 (all axes) or n_spatial times."""
    values = list(values)
    if len(values) not in (0, 1, n_spatial) or (len(values) == 0 and default is None):
        raise layer.error(
            f"{what} must be specified once, or once per spatial dimension ({what} specified "
            f"{len(values)} times; {n_spatial} spatial dims)")
    if not values:
        return (default,) * n_spatial
    return tuple(int(values[0 if len(values) == 1 else i]) for i in range(n_spatial))


def conv_spatial_params(layer, cp, n_spatial):
    """kernel, stride, pad, dilation per spatial axis from a ConvolutionParameter, with Caffe's
    checks (Convolution, Deconvolution and Im2col read the same fields)."""

    def h_w(name, repeated):
        if cp.HasField(f"{name}_h") or cp.HasField(f"{name}_w"):
            if n_spatial != 2:
                raise layer.error(f"{name}_h & {name}_w can only be used for 2D convolution")
            if len(repeated):
                raise layer.error(f"either {name} or {name}_h/w should be specified; not both")
            return (int(getattr(cp, f"{name}_h")), int(getattr(cp, f"{name}_w")))
        return None

    kernel = h_w("kernel", cp.kernel_size)
    if kernel is None:
        if n_spatial == 0 and len(cp.kernel_size) <= 1:
            kernel = ()
        else:
            kernel = _per_axis(layer, cp.kernel_size, n_spatial, None, "kernel_size")
    if any(k <= 0 for k in kernel):
        raise layer.error(f"filter dimensions must be nonzero, got kernel {list(kernel)}")
    stride = h_w("stride", cp.stride) or _per_axis(layer, cp.stride, n_spatial, 1, "stride")
    if any(s <= 0 for s in stride):
        raise layer.error(f"stride dimensions must be nonzero, got stride {list(stride)}")
    pad = h_w("pad", cp.pad) or _per_axis(layer, cp.pad, n_spatial, 0, "pad")
    dilation = _per_axis(layer, cp.dilation, n_spatial, 1, "dilation")
    if any(d <= 0 for d in dilation):
        raise layer.error(f"dilation must be positive, got {list(dilation)}")
    return kernel, stride, pad, dilation


def refuse_in_place(layer: Layer) -> None:
    for top_name in layer.param.top:
        if top_name in layer.param.bottom:
            raise layer.error(f"{layer.type} layer does not allow in-place computation (blob '{top_name}')")


def share_data_and_diff(top, bottom) -> None:
    top.share_data(bottom)
    top.share_diff(bottom)


def pass_diff_back(top, bottom) -> None:
    """Backward of a memory-sharing layer: copy only if the diffs are not already shared."""
    if not np.shares_memory(top.diff, bottom.diff):
        bottom.diff[...] = top.diff.reshape(bottom.diff.shape)


def loss_normalizer(layer: Layer, mode: int, outer: int, inner: int, valid_count: int) -> float:
    """Caffe's LossLayer::GetNormalizer (at least 1)."""
    if mode == NORMALIZATION.FULL:
        value = outer * inner
    elif mode == NORMALIZATION.VALID:
        value = outer * inner if valid_count == -1 else valid_count
    elif mode == NORMALIZATION.BATCH_SIZE:
        value = outer
    elif mode == NORMALIZATION.NONE:
        value = 1
    else:
        raise layer.error(f"unknown normalization mode {mode}")
    return max(1.0, float(value))


def caffe_loss_sum(terms: np.ndarray, dtype) -> np.generic:
    """Caffe's loss loops: ``Dtype loss = 0; loss += term;`` element by element.

    The running sum rounds to ``dtype`` after every addition -- on thousands of terms that
    differs from a pairwise or double sum in the 6th digit, so the order is reproduced
    (``cumsum`` is sequential).  Double ``terms`` (from C++'s ``::log(double)``) are added to
    the float sum in double and the result rounded to float, ``loss = float(double(loss) +
    term)``, see :func:`_float_sum_of_double_terms` (the reference engine runs that loop)."""
    flat = np.asarray(terms).reshape(-1)
    if flat.size == 0:
        return np.dtype(dtype).type(0)
    if flat.dtype == np.float64 and np.dtype(dtype) == np.float32:
        if engine.reference():
            return _float_sum_of_double_terms_reference(flat)
        return _float_sum_of_double_terms(flat)
    return np.cumsum(flat.astype(dtype), dtype=dtype)[-1]


def _float_sum_of_double_terms_reference(terms: np.ndarray) -> np.float32:
    """Caffe's loop as written: ``loss = float(double(loss) + term)`` term after term."""
    loss = 0.0
    for term in terms.tolist():
        loss = float(np.float32(loss + term))
    return np.float32(loss)


def _float_sum_of_double_terms(terms: np.ndarray) -> np.float32:
    """``for t in terms: loss = float32(float64(loss) + t)``, vectorised.

    A float32 ``cumsum`` of the terms rounded to float first is the same sequence except where
    rounding twice lands on the other side of a midpoint (a few steps in 100 000 for sums in
    the thousands).  So, block by block: take that cumsum from the block's exact start, check
    every step against the exact rule in one vectorised pass, and from the first step that
    differs, correct it and redo the rest of the block."""
    loss = np.float32(0)
    step = tuning.LOSS_SUM_BLOCK
    for block in range(0, terms.size, step):
        chunk = terms[block:block + step]
        rounded = chunk.astype(np.float32)
        start = 0
        while start < chunk.size:
            guess = np.cumsum(np.concatenate(([loss], rounded[start:])), dtype=np.float32)
            exact = (guess[:-1].astype(np.float64) + chunk[start:]).astype(np.float32)
            wrong = np.flatnonzero(exact != guess[1:])
            if wrong.size == 0:
                loss = guess[-1]
                break
            first = int(wrong[0])  # steps up to first-1 were right; step first gives exact[first]
            loss = exact[first]
            start += first + 1
    return np.float32(loss)


class RandomLayerMixin:
    """Layers that draw random numbers while running (Dropout, shuffling data layers).

    The Net hands its seeded ``numpy.random.Generator`` over through ``fill_params(rng)`` (or
    assigns ``layer.rng``); a layer used alone falls back to a generator seeded from its name,
    so results stay reproducible.
    """

    rng: np.random.Generator | None = None
    draws_random_numbers = True

    def fill_params(self, rng: np.random.Generator) -> None:
        self.rng = rng

    def random(self) -> np.random.Generator:
        if self.rng is None:
            self.rng = np.random.default_rng(zlib.crc32(self.name.encode()))
        return self.rng


FLT_MIN = np.finfo(np.float32).tiny


def softmax(x: np.ndarray, axis: int, out: np.ndarray) -> np.ndarray:
    """Numerically stable softmax along ``axis`` written into ``out`` (may alias ``x``)."""
    np.subtract(x, x.max(axis=axis, keepdims=True), out=out)
    if out.dtype == np.float32:
        # glibc's expf is (almost always) correctly rounded, NumPy's SIMD float32 exp is not:
        # exp in double rounded once reproduces Caffe's caffe_exp bit for bit.
        np.copyto(out, np.exp(out, dtype=np.float64), casting="same_kind")
    else:
        np.exp(out, out=out)
    out /= out.sum(axis=axis, keepdims=True)
    return out


def legacy_shape(layer: Layer, shape) -> tuple[int, int, int, int]:
    """Caffe's ``num()``, ``channels()``, ``height()``, ``width()`` of a blob: missing axes
    read as 1; a blob with more than 4 axes aborts."""
    shape = tuple(shape)
    if len(shape) > 4:
        raise layer.error(
            f"Cannot use legacy accessors on Blobs with > 4 axes (bottom shape {list(shape)})")
    return tuple(shape) + (1,) * (4 - len(shape))  # type: ignore[return-value]


class PrefetchingDataLayer(RandomLayerMixin, Layer):
    """Caffe's ``BasePrefetchingDataLayer``: tops ``data`` [, ``label``] filled from batches that
    the layer's ``load_batch()`` reads ahead on a background thread
    (:class:`caffe_cae.data.prefetch.Prefetcher`, ``data_param.prefetch`` batches deep; 0 =
    synchronous), always in the order the records come.  A batch whose images differ in size
    from the last one reshapes the data top, as in Caffe."""

    is_data = True
    exact_bottoms = 0
    #: fields of the layer's own parameter that Caffe's upgrade moves to transform_param and
    #: that it ignores in the current syntax: warned about, since whoever sets them expects an effect
    deprecated_fields: tuple[str, ...] = ()

    def fill_params(self, rng: np.random.Generator) -> None:
        # A generator of the layer's own, seeded from the net's: the loader thread never draws
        # from the generator other layers use, so results do not depend on thread timing.
        self.rng = np.random.default_rng(int(rng.integers(2**63)))

    def start_prefetching(self, own_param: str) -> None:
        """Call at the end of ``setup`` (``own_param``: e.g. "data_param"): warns about the
        ignored fields, makes the prefetcher."""
        from caffe_cae.data.prefetch import Prefetcher

        fields = getattr(self.param, own_param)
        for name in self.deprecated_fields:
            if fields.HasField(name):
                logging.getLogger(__name__).warning(
                    "layer '%s' (%s): %s.%s is ignored (Caffe reads it from transform_param only)",
                    self.name, self.type, own_param, name)
        self.prefetcher = Prefetcher(self.load_batch, self.param.data_param.prefetch, self.name)

    def load_batch(self) -> tuple[np.ndarray, np.ndarray]:
        """The next batch: (data float32 N x C x H x W, labels float32 (N,))."""
        raise NotImplementedError(f"{type(self).__name__}.load_batch")

    def forward(self, bottom, top):
        data, labels = self.prefetcher.next()
        if top[0].shape != data.shape:
            top[0].reshape(data.shape)
        top[0].data[...] = data
        if len(top) > 1:
            top[1].data[...] = labels

    def backward(self, top, propagate_down, bottom):
        pass
