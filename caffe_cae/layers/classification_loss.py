"""Classification losses besides SoftmaxWithLoss: InfogainLoss, HingeLoss, MultinomialLogisticLoss.

Each writes a 0-axis scalar top; ``backward`` reads the loss weight from ``top[0].diff``.
Labels are class indices stored as floats (``static_cast<int>``); an index outside the class
range is an error here (Caffe reads memory outside the blob).
"""
from __future__ import annotations

import math

import numpy as np

from caffe_cae.layers.base import LossLayer
from caffe_cae.layers.common import caffe_loss_sum, canonical_axis, loss_normalizer, softmax
from caffe_cae.layers.registry import register
from caffe_cae.proto import caffe_pb2

#: Caffe's kLOG_THRESHOLD: probabilities are clipped below at this value before the log.
LOG_THRESHOLD = 1e-20


def legacy_shape(layer, shape, index) -> tuple[int, ...]:
    """Blob::LegacyShape (num, channels, height, width): missing axes read as 1, > 4 refused."""
    if len(shape) > 4:
        raise layer.error(f"Check failed: num_axes() <= 4 ({len(shape)} vs. 4) Cannot use legacy accessors on "
                          f"Blobs with > 4 axes: bottom {index} {list(shape)}")
    return tuple(shape) + (1,) * (4 - len(shape))


def class_indices(layer, labels: np.ndarray, n_classes: int, valid: np.ndarray | None = None) -> np.ndarray:
    """``static_cast<int>(label)``, checked against [0, n_classes) where ``valid``."""
    indices = labels.astype(np.int64)
    bad = (indices < 0) | (indices >= n_classes)
    if valid is not None:
        bad &= valid
    if bad.any():
        raise layer.error(f"label value {int(indices[bad][0])} out of range [0, {n_classes})")
    return indices if valid is None else np.where(valid, indices, 0)


def log_clipped(p: np.ndarray) -> np.ndarray:
    """``log(std::max(p, Dtype(kLOG_THRESHOLD)))``: the max in the blob's type, the log in double."""
    return np.log(np.maximum(p, p.dtype.type(LOG_THRESHOLD)).astype(np.float64))


@register("InfogainLoss")
class InfogainLossLayer(LossLayer):
    """Softmax along ``infogain_loss_param.axis`` (default 1), then
    ``loss = -sum_positions sum_l H[label, l] * log(max(p_l, 1e-20)) / normaliser``.

    H (K x K, any shape with K^2 values) comes from the BlobProto file
    ``infogain_loss_param.source`` or from a third bottom (re-read at every pass).  An optional
    second top receives the probabilities (it needs its own ``loss_weight``, usually 0).
    ``loss_param``: ``ignore_label``, ``normalization`` (default VALID); the deprecated
    ``normalize`` is refused, as in Caffe.  Diff: ``(p_l * sum_k H[label, k] - H[label, l])``
    times loss weight / normaliser; H gets no diff (force_backward into it aborts at backward).
    """

    exact_bottoms = None
    min_bottoms = 2
    max_bottoms = 3
    exact_tops = None
    min_tops = 1
    max_tops = 2

    def setup(self, bottom_shapes):
        lp = self.param.loss_param
        if lp.HasField("normalize"):
            raise self.error('normalize is deprecated. use "normalization"')
        self.normalization = lp.normalization
        self.ignore_label = lp.ignore_label if lp.HasField("ignore_label") else None
        self.infogain = None
        if len(bottom_shapes) < 3:
            source = self.param.infogain_loss_param
            if not source.HasField("source"):
                raise self.error("Infogain matrix source must be specified.")
            from caffe_cae.weights import blob_to_array, read_binary

            blob = read_binary(source.source, caffe_pb2.BlobProto, "BlobProto (infogain matrix H)")
            self.infogain = blob_to_array(blob)
        self.prob = None
        return []

    def reshape(self, bottom_shapes):
        self.check_same_num(bottom_shapes)
        shape = tuple(bottom_shapes[0])
        self.axis = canonical_axis(self, self.param.infogain_loss_param.axis, len(shape))
        self.outer = math.prod(shape[:self.axis])
        self.inner = math.prod(shape[self.axis + 1:])
        if self.outer * self.inner != math.prod(bottom_shapes[1]):
            raise self.error(
                "Number of labels must match number of predictions; e.g., if infogain axis == 1 and prediction "
                "shape is (N, C, H, W), label count (number of labels) must be N*H*W, with integer values in "
                f"{{0, 1, ..., C-1}}: prediction {list(shape)}, label {list(bottom_shapes[1])}")
        self.num_labels = shape[self.axis]
        h_count = self.infogain.size if self.infogain is not None else math.prod(bottom_shapes[2])
        if h_count != self.num_labels ** 2:
            raise self.error(f"Check failed: infogain->count() == num_labels_*num_labels_ ({h_count} vs. "
                             f"{self.num_labels ** 2}): H must be {self.num_labels}x{self.num_labels}")
        return [()] + ([shape] if len(self.param.top) > 1 else [])

    def _infogain(self, bottom) -> np.ndarray:
        h = self.infogain if self.infogain is not None else bottom[2].data
        return h.reshape(self.num_labels, self.num_labels).astype(bottom[0].dtype, copy=False)

    def _labels(self, bottom):
        labels = bottom[1].data.reshape(self.outer, self.inner)
        valid = None if self.ignore_label is None else labels.astype(np.int64) != self.ignore_label
        return class_indices(self, labels, self.num_labels, valid), valid

    def forward(self, bottom, top):
        x = bottom[0].data
        prob = top[1].data if len(top) > 1 else self.prob  # Caffe: top[1] shares the probabilities
        if prob is None or prob.shape != x.shape or prob.dtype != x.dtype:
            prob = np.empty_like(x)
        self.prob = softmax(x, self.axis, prob)
        labels, valid = self._labels(bottom)
        h = self._infogain(bottom)
        p = prob.reshape(self.outer, self.num_labels, self.inner).transpose(0, 2, 1)  # (outer, inner, K)
        # loss -= H[label, l] * log(max(p_l, 1e-20)): float H times a double log, float running sum
        terms = -(h[labels].astype(np.float64) * log_clipped(p))
        if valid is not None:
            terms = terms[valid]
        self.valid_count = int(valid.sum()) if valid is not None else self.outer * self.inner
        loss = caffe_loss_sum(terms, x.dtype)
        norm = loss_normalizer(self, self.normalization, self.outer, self.inner, self.valid_count)
        top[0].data[...] = loss / x.dtype.type(norm)

    def backward(self, top, propagate_down, bottom):
        if propagate_down[1]:
            raise self.error("InfogainLoss Layer cannot backpropagate to label inputs.")
        if len(propagate_down) > 2 and propagate_down[2]:
            raise self.error("InfogainLoss Layer cannot backpropagate to infogain inputs.")
        if not propagate_down[0]:
            return
        x = bottom[0].data
        h = self._infogain(bottom)
        row_sums = np.cumsum(h, axis=1, dtype=h.dtype)[:, -1]  # Caffe's sequential float sums
        labels, valid = self._labels(bottom)
        p = self.prob.reshape(self.outer, self.num_labels, self.inner).transpose(0, 2, 1)
        grad = p * row_sums[labels][..., None] - h[labels]
        if valid is not None:
            grad[~valid] = 0
        norm = loss_normalizer(self, self.normalization, self.outer, self.inner, self.valid_count)
        weight = x.dtype.type(self.loss_weight(top) / x.dtype.type(norm))
        np.multiply(grad.transpose(0, 2, 1).reshape(x.shape), weight, out=bottom[0].diff)


@register("MultinomialLogisticLoss")
class MultinomialLogisticLossLayer(LossLayer):
    """``loss = -sum_n log(max(p[n, label_n], 1e-20)) / N`` on probabilities (N, C·H·W);
    labels (N[, 1, 1, 1]).  Diff ``-w / (N · max(p, 1e-20))`` at the label, 0 elsewhere."""

    def reshape(self, bottom_shapes):
        self.check_same_num(bottom_shapes)
        legacy_shape(self, bottom_shapes[0], 0)
        label = legacy_shape(self, bottom_shapes[1], 1)
        if label[1:] != (1, 1, 1):
            raise self.error(f"labels must be (N, 1, 1, 1), got {list(bottom_shapes[1])} "
                             "(Check failed: bottom[1]->channels() == 1, height() == 1, width() == 1)")
        return [()]

    def _picked(self, bottom):
        x = bottom[0].data
        n = x.shape[0]
        flat = x.reshape(n, -1)
        labels = class_indices(self, bottom[1].data.reshape(n), flat.shape[1])
        return flat, labels, np.maximum(flat[np.arange(n), labels], x.dtype.type(LOG_THRESHOLD))

    def forward(self, bottom, top):
        x = bottom[0].data
        _, _, prob = self._picked(bottom)
        loss = caffe_loss_sum(-np.log(prob.astype(np.float64)), x.dtype)
        top[0].data[...] = loss / x.dtype.type(x.shape[0])

    def backward(self, top, propagate_down, bottom):
        if propagate_down[1]:
            raise self.error("MultinomialLogisticLoss Layer cannot backpropagate to label inputs.")
        if not propagate_down[0]:
            return
        x = bottom[0].data
        n = x.shape[0]
        flat, labels, prob = self._picked(bottom)
        diff = bottom[0].diff.reshape(n, -1)
        diff[...] = 0
        scale = x.dtype.type(-self.loss_weight(top) / x.dtype.type(n))
        diff[np.arange(n), labels] = scale / prob


@register("HingeLoss")
class HingeLossLayer(LossLayer):
    """One-vs-all hinge loss on scores (N, C·H·W) with labels (N): with d = +1 at the label and
    -1 elsewhere, margins m = max(0, 1 - d·x); L1: sum(m) / N, L2: sum(m²) / N (no 1/2).

    As in Caffe, the forward keeps the margins in the score blob's diff and the backward turns
    that diff into the gradient in place: L1 sign(d·m)·w/N, L2 d·m·2w/N.  Whatever writes that
    diff between the two passes changes the result, exactly as in Caffe."""

    backward_reads_bottom_diff = True

    def setup(self, bottom_shapes):
        self.norm = self.param.hinge_loss_param.norm
        if self.norm not in (caffe_pb2.HingeLossParameter.L1, caffe_pb2.HingeLossParameter.L2):
            raise self.error("Unknown Norm")
        return []

    def reshape(self, bottom_shapes):
        self.check_same_num(bottom_shapes)
        legacy_shape(self, bottom_shapes[0], 0)  # Caffe divides by Blob::num()
        return [()]

    def _flip_labels(self, bottom, values: np.ndarray) -> None:
        """Negate each item's value at its label, in place (values: (N, C·H·W))."""
        n = values.shape[0]
        labels = class_indices(self, bottom[1].data.reshape(-1)[:n], values.shape[1])
        values[np.arange(n), labels] *= -1

    def forward(self, bottom, top):
        x = bottom[0].data
        n = x.shape[0]
        margins = bottom[0].diff.reshape(n, -1)
        margins[...] = x.reshape(n, -1)
        self._flip_labels(bottom, margins)
        np.maximum(x.dtype.type(0), 1 + margins, out=margins)
        flat = margins.reshape(-1).astype(np.float64)  # BLAS asum / dot: accumulated in double
        total = flat.sum() if self.norm == caffe_pb2.HingeLossParameter.L1 else flat @ flat
        top[0].data[...] = x.dtype.type(total) / x.dtype.type(n)

    def backward(self, top, propagate_down, bottom):
        if propagate_down[1]:
            raise self.error("HingeLoss Layer cannot backpropagate to label inputs.")
        if not propagate_down[0]:
            return
        x = bottom[0].data
        n = x.shape[0]
        diff = bottom[0].diff.reshape(n, -1)
        self._flip_labels(bottom, diff)
        weight = self.loss_weight(top)
        if self.norm == caffe_pb2.HingeLossParameter.L1:
            sign = (diff > 0).astype(x.dtype) - (diff < 0)  # caffe_sign: 0 for 0 and NaN
            np.multiply(sign, x.dtype.type(weight / x.dtype.type(n)), out=diff)
        else:
            diff *= x.dtype.type(weight * 2 / x.dtype.type(n))
