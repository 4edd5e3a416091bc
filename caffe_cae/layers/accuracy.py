"""Accuracy: top-k classification accuracy (not differentiable)."""
from __future__ import annotations

import math

import numpy as np

from caffe_cae.layers.base import Layer
from caffe_cae.layers.registry import register
from caffe_cae.layers.common import canonical_axis


@register("Accuracy")
class AccuracyLayer(Layer):
    """Fraction of positions whose label is among the ``top_k`` highest scores along ``axis``.

    As in Caffe a class scoring *equal* to the true class counts as better, so ties are
    pessimistic. ``ignore_label`` positions are skipped. An optional second top gets the
    per-class accuracy (0 for classes that never occur). Backward is not implemented in Caffe
    and raises here too, so (as in Caffe) a ``force_backward`` net containing Accuracy fails at
    backward.
    """

    is_metric = True

    exact_bottoms = 2
    min_tops = 1
    max_tops = 2

    def setup(self, bottom_shapes):
        p = self.param.accuracy_param
        self.top_k = int(p.top_k)
        self.ignore_label = p.ignore_label if p.HasField("ignore_label") else None
        return []

    def reshape(self, bottom_shapes):
        shape, label_shape = tuple(bottom_shapes[0]), tuple(bottom_shapes[1])
        n_labels = math.prod(label_shape)
        if n_labels == 0 or self.top_k > math.prod(shape) // n_labels:
            raise self.error(f"top_k ({self.top_k}) must be less than or equal to the number of classes "
                             f"(scores {list(shape)}, labels {list(label_shape)})")
        self.axis = canonical_axis(self, self.param.accuracy_param.axis, len(shape))
        self.outer = math.prod(shape[:self.axis])
        self.inner = math.prod(shape[self.axis + 1:])
        if self.outer * self.inner != n_labels:
            raise self.error(
                f"Number of labels must match number of predictions; e.g., if label axis == 1 and prediction shape "
                f"is (N, C, H, W), label count (number of labels) must be N*H*W: prediction {list(shape)}, "
                f"label {list(label_shape)}")
        tops = [()]
        if len(self.param.top) > 1:
            tops.append((shape[self.axis],))
        return tops

    def forward(self, bottom, top):
        scores = bottom[0].data
        n_classes = scores.shape[self.axis]
        s3 = scores.reshape(self.outer, n_classes, self.inner)
        labels = bottom[1].data.reshape(self.outer, self.inner).astype(np.int64)  # static_cast<int>
        valid = np.ones(labels.shape, bool) if self.ignore_label is None else labels != self.ignore_label
        bad = valid & ((labels < 0) | (labels >= n_classes))
        if bad.any():
            raise self.error(f"label value {int(labels[bad][0])} out of range [0, {n_classes})")
        safe = np.where(valid, labels, 0)
        true_score = np.take_along_axis(s3, safe[:, None, :], axis=1)
        better = (s3 >= true_score).sum(axis=1) - 1  # the true class counts itself
        correct = (better < self.top_k) & valid
        count = int(valid.sum())
        dtype = top[0].data.dtype
        top[0].data[...] = dtype.type(0) if count == 0 else dtype.type(correct.sum()) / dtype.type(count)
        if len(top) > 1:
            seen = np.bincount(labels[valid], minlength=n_classes).astype(dtype)
            hits = np.bincount(labels[correct], minlength=n_classes).astype(dtype)
            per_class = np.divide(hits, seen, out=np.zeros_like(hits), where=seen > 0)
            top[1].data[...] = per_class

    def backward(self, top, propagate_down, bottom):
        if any(propagate_down):
            raise self.error("Not Implemented Yet: Accuracy layer cannot backpropagate")
