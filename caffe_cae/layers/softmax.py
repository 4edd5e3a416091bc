"""Softmax and SoftmaxWithLoss (multinomial logistic loss of the softmax)."""
from __future__ import annotations

import math

import numpy as np

from caffe_cae.layers.base import Layer, LossLayer
from caffe_cae.layers.registry import register
from caffe_cae.layers.common import (FLT_MIN, NORMALIZATION, caffe_loss_sum, canonical_axis,
                                     loss_normalizer, softmax)

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
class SoftmaxWithLossLayer(LossLayer):
    """Softmax over ``softmax_param.axis`` then mean negative log-likelihood of the labels.

    Bottoms: scores (..., C at ``axis``, ...) and integer-valued labels with one value per
    position (count = outer*inner). ``loss_param``: ``ignore_label`` (skipped positions, zero
    gradient), ``normalization`` FULL / VALID (default: non-ignored positions) / BATCH_SIZE /
    NONE, or the legacy ``normalize`` (true = VALID, false = BATCH_SIZE).  Caffe declares an
    optional second top for the probabilities but cannot set it up (see ``setup``).

    SegNet's class weighting (alexgkendall/caffe-segnet softmax_loss_layer.cpp 7e05cab): with
    ``weight_by_label_freqs: true`` each position's loss term and its whole gradient are
    multiplied by ``class_weighting[label]`` (one value per class, axis 1); the normalizer is
    unchanged.
    """

    exact_tops = None
    min_tops = 1
    max_tops = 2

    def setup(self, bottom_shapes):
        if len(self.param.top) > 1:
            # LossLayer::LayerSetUp gives the layer one loss_weight, so SetLossWeights fails on
            # two tops; with two loss_weight values the internal Softmax (a copy of this
            # LayerParameter with one top) fails the same check.
            weights = len(self.param.loss_weight) or 1
            tops = 2 if weights == 1 else 1
            raise self.error(
                f"Check failed: top.size() == num_loss_weights ({tops} vs. {weights}): Caffe's "
                "SoftmaxWithLoss cannot output its probabilities as a second top; add a Softmax layer")
        lp = self.param.loss_param
        self.ignore_label = lp.ignore_label if lp.HasField("ignore_label") else None
        if not lp.HasField("normalization") and lp.HasField("normalize"):
            self.normalization = NORMALIZATION.VALID if lp.normalize else NORMALIZATION.BATCH_SIZE
        else:
            self.normalization = lp.normalization
        self.class_weights = np.array(lp.class_weighting, np.float32) if lp.weight_by_label_freqs else None
        if self.class_weights is not None and self.class_weights.size != bottom_shapes[0][1]:
            raise self.error(f"Number of class weight values does not match the number of classes "
                             f"({self.class_weights.size} class_weighting, {bottom_shapes[0][1]} channels)")
        return []

    def reshape(self, bottom_shapes):
        self.check_same_num(bottom_shapes)
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
        return [()]

    def _labels(self, label_blob, n_classes):
        labels = label_blob.data.reshape(self.outer, self.inner).astype(np.int64)  # static_cast<int>
        valid = np.ones(labels.shape, bool) if self.ignore_label is None else labels != self.ignore_label
        bad = valid & ((labels < 0) | (labels >= n_classes))
        if bad.any():
            raise self.error(f"label value {int(labels[bad][0])} out of range [0, {n_classes})")
        return np.where(valid, labels, 0), valid

    def forward(self, bottom, top):
        x = bottom[0].data
        if self.prob is not None and self.prob.shape == x.shape and self.prob.dtype == x.dtype:
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
        if self.class_weights is not None:  # SegNet: term * float(class_weighting[label])
            nll *= self.class_weights[labels].astype(np.float64)
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
        if self.class_weights is not None:
            grad *= self.class_weights[labels][:, None, :].astype(grad.dtype)
        norm = loss_normalizer(self, self.normalization, self.outer, self.inner, self.valid_count)
        weight = top[0].diff.reshape(-1)[0] / x.dtype.type(norm)
        np.multiply(grad.reshape(x.shape), weight, out=bottom[0].diff)
