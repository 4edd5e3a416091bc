"""Softmax and SoftmaxWithLoss (multinomial logistic loss of the softmax)."""
from __future__ import annotations

import math

import numpy as np

from caffe_cae.layers.base import Layer
from caffe_cae.layers.registry import register
from caffe_cae.layers.shape import canonical_axis
from caffe_cae.proto import caffe_pb2

_NORM = caffe_pb2.LossParameter
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


def loss_normalizer(layer: Layer, mode: int, outer: int, inner: int, valid_count: int) -> float:
    """Caffe's LossLayer::GetNormalizer (at least 1)."""
    if mode == _NORM.FULL:
        value = outer * inner
    elif mode == _NORM.VALID:
        value = outer * inner if valid_count == -1 else valid_count
    elif mode == _NORM.BATCH_SIZE:
        value = outer
    elif mode == _NORM.NONE:
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
    term)``, see :func:`_float_sum_of_double_terms`."""
    flat = np.asarray(terms).reshape(-1)
    if flat.size == 0:
        return np.dtype(dtype).type(0)
    if flat.dtype == np.float64 and np.dtype(dtype) == np.float32:
        return _float_sum_of_double_terms(flat)
    return np.cumsum(flat.astype(dtype), dtype=dtype)[-1]


#: Steps per block of :func:`_float_sum_of_double_terms` (a correction redoes at most one block).
LOSS_SUM_BLOCK = 4096


def _float_sum_of_double_terms(terms: np.ndarray) -> np.float32:
    """``for t in terms: loss = float32(float64(loss) + t)``, vectorised.

    A float32 ``cumsum`` of the terms rounded to float first is the same sequence except where
    rounding twice lands on the other side of a midpoint (a few steps in 100 000 for sums in
    the thousands).  So, block by block: take that cumsum from the block's exact start, check
    every step against the exact rule in one vectorised pass, and from the first step that
    differs, correct it and redo the rest of the block."""
    loss = np.float32(0)
    for block in range(0, terms.size, LOSS_SUM_BLOCK):
        chunk = terms[block:block + LOSS_SUM_BLOCK]
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


def check_same_num(layer: Layer, bottom_shapes) -> None:
    """LossLayer::Reshape: data and label share the first dimension."""
    a, b = tuple(bottom_shapes[0]), tuple(bottom_shapes[1])
    if not a or not b or a[0] != b[0]:
        raise layer.error(
            f"The data and label should have the same first dimension: bottom 0 {list(a)}, bottom 1 {list(b)}")


@register("Softmax")
class SoftmaxLayer(Layer):
    """Softmax along ``softmax_param.axis`` (default 1, the channels)."""

    exact_bottoms = 1
    exact_tops = 1

    def reshape(self, bottom_shapes):
        shape = tuple(bottom_shapes[0])
        self.axis = canonical_axis(self, self.param.softmax_param.axis, len(shape))
        return [shape]

    def forward(self, bottom, top):
        softmax(bottom[0].data, self.axis, top[0].data)

    #: Caffe's SoftmaxLayer::Backward_cpu never reads propagate_down: whenever the Net calls it
    #: (the layer needs backward) it writes the bottom diff, even with ``propagate_down: false``.
    backward_ignores_propagate_down = True

    def backward(self, top, propagate_down, bottom):
        y, dy = top[0].data, top[0].diff
        dot = (dy * y).sum(axis=self.axis, keepdims=True)
        np.multiply(dy - dot, y, out=bottom[0].diff)


@register("SoftmaxWithLoss")
class SoftmaxWithLossLayer(Layer):
    """Softmax over ``softmax_param.axis`` then mean negative log-likelihood of the labels.

    Bottoms: scores (..., C at ``axis``, ...) and integer-valued labels with one value per
    position (count = outer*inner). ``loss_param``: ``ignore_label`` (skipped positions, zero
    gradient), ``normalization`` FULL / VALID (default: non-ignored positions) / BATCH_SIZE /
    NONE, or the legacy ``normalize`` (true = VALID, false = BATCH_SIZE). An optional second
    top receives the probabilities.
    """

    exact_bottoms = 2
    min_tops = 1
    max_tops = 2
    is_loss = True

    def setup(self, bottom_shapes):
        lp = self.param.loss_param
        self.ignore_label = lp.ignore_label if lp.HasField("ignore_label") else None
        if not lp.HasField("normalization") and lp.HasField("normalize"):
            self.normalization = _NORM.VALID if lp.normalize else _NORM.BATCH_SIZE
        else:
            self.normalization = lp.normalization
        return []

    def allow_force_backward(self, bottom_index):
        return bottom_index != 1

    def reshape(self, bottom_shapes):
        check_same_num(self, bottom_shapes)
        shape = tuple(bottom_shapes[0])
        self.axis = canonical_axis(self, self.param.softmax_param.axis, len(shape))
        self.outer = math.prod(shape[:self.axis])
        self.inner = math.prod(shape[self.axis + 1:])
        n_labels = math.prod(bottom_shapes[1])
        if self.outer * self.inner != n_labels:
            raise self.error(
                f"Number of labels must match number of predictions; e.g., if softmax axis == 1 and prediction "
                f"shape is (N, C, H, W), label count (number of labels) must be N*H*W, with integer values in "
                f"{{0, 1, ..., C-1}}: prediction {list(shape)}, label {list(bottom_shapes[1])}")
        self.prob = None
        return [()] + ([shape] if len(self.param.top) > 1 else [])

    def _labels(self, label_blob, n_classes):
        labels = label_blob.data.reshape(self.outer, self.inner).astype(np.int64)  # static_cast<int>
        valid = np.ones(labels.shape, bool) if self.ignore_label is None else labels != self.ignore_label
        bad = valid & ((labels < 0) | (labels >= n_classes))
        if bad.any():
            raise self.error(f"label value {int(labels[bad][0])} out of range [0, {n_classes})")
        return np.where(valid, labels, 0), valid

    def forward(self, bottom, top):
        x = bottom[0].data
        if len(top) > 1:  # Caffe: top[1] shares the internal probabilities
            prob = top[1].data
        elif self.prob is not None and self.prob.shape == x.shape and self.prob.dtype == x.dtype:
            prob = self.prob  # reuse the buffer across iterations
        else:
            prob = np.empty_like(x)
        softmax(x, self.axis, prob)
        self.prob = prob
        n_classes = x.shape[self.axis]
        labels, valid = self._labels(bottom[1], n_classes)
        p3 = prob.reshape(self.outer, n_classes, self.inner)
        picked = np.take_along_axis(p3, labels[:, None, :], axis=1)[:, 0, :]
        # loss -= log(std::max(prob, Dtype(FLT_MIN))): log in double, float running sum
        nll = -np.log(np.maximum(picked, picked.dtype.type(FLT_MIN)).astype(np.float64))
        self.valid_count = int(valid.sum())
        loss = caffe_loss_sum(nll[valid], x.dtype)
        norm = loss_normalizer(self, self.normalization, self.outer, self.inner, self.valid_count)
        top[0].data[...] = loss / x.dtype.type(norm)

    def backward(self, top, propagate_down, bottom):
        if len(propagate_down) > 1 and propagate_down[1]:
            raise self.error("SoftmaxWithLoss Layer cannot backpropagate to label inputs.")
        if not propagate_down[0]:
            return
        x = bottom[0].data
        n_classes = x.shape[self.axis]
        labels, valid = self._labels(bottom[1], n_classes)
        grad = self.prob.reshape(self.outer, n_classes, self.inner).copy()
        rows, cols = np.nonzero(valid)
        grad[rows, labels[rows, cols], cols] -= 1
        grad *= valid[:, None, :]
        norm = loss_normalizer(self, self.normalization, self.outer, self.inner, self.valid_count)
        weight = top[0].diff.reshape(-1)[0] / x.dtype.type(norm)
        np.multiply(grad.reshape(x.shape), weight, out=bottom[0].diff)
