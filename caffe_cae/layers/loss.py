"""Loss layers: EuclideanLoss, SigmoidCrossEntropyLoss, ContrastiveLoss.

Each writes a 0-axis scalar top. The loss weight is the Net's business: ``backward`` reads it
from ``top[0].diff`` (Caffe: ``loss_weight = top[0]->cpu_diff()[0]``).
"""
from __future__ import annotations

import math

import numpy as np

from caffe_cae.layers.base import LossLayer
from caffe_cae.elementwise import sigmoid
from caffe_cae.layers.registry import register
from caffe_cae.layers.common import NORMALIZATION, caffe_loss_sum, loss_normalizer


@register("EuclideanLoss")
class EuclideanLossLayer(LossLayer):
    """loss = sum((a - b)^2) / (2N), N = a.shape[0]; both bottoms get gradients (+-(a-b)/N)."""

    compares_like_shaped = True

    def allow_force_backward(self, bottom_index):
        return True

    def reshape(self, bottom_shapes):
        self.check_same_num(bottom_shapes)
        a, b = tuple(bottom_shapes[0]), tuple(bottom_shapes[1])
        for i, shape in enumerate((a, b)):
            if len(shape) > 4:  # Caffe divides by Blob::num(), a legacy (<= 4 axes) accessor
                raise self.error(f"Cannot use legacy accessors on Blobs with > 4 axes: bottom {i} "
                                 f"{list(shape)}")
        if math.prod(a[1:]) != math.prod(b[1:]):
            names = list(self.param.bottom) + ["bottom 0", "bottom 1"]
            raise self.error(
                f"Inputs must have the same dimension: '{names[0]}' {list(a)} ({math.prod(a[1:])} per item) vs "
                f"'{names[1]}' {list(b)} ({math.prod(b[1:])} per item)")
        return [()]

    def forward(self, bottom, top):
        a = bottom[0].data
        self.difference = a - bottom[1].data.reshape(a.shape)
        flat = self.difference.reshape(-1)
        top[0].data[...] = np.dot(flat, flat) / a.dtype.type(a.shape[0]) / a.dtype.type(2)

    def backward(self, top, propagate_down, bottom):
        for i, sign in ((0, 1), (1, -1)):
            if propagate_down[i]:
                b = bottom[i]
                alpha = b.dtype.type(sign * self.loss_weight(top) / b.dtype.type(b.shape[0]))
                b.diff[...] = (alpha * self.difference).reshape(b.shape)


@register("SigmoidCrossEntropyLoss")
class SigmoidCrossEntropyLossLayer(LossLayer):
    """Cross-entropy of sigmoid(x) against targets t in [0, 1], in the stable form
    ``-(x*(t - [x>=0]) - log(1 + exp(x - 2x[x>=0])))``. ``loss_param``: ``ignore_label``;
    ``normalization`` (when unset: legacy ``normalize`` true = VALID / false = BATCH_SIZE,
    otherwise **BATCH_SIZE**, Caffe's historical default, i.e. divide by N). No gradient to t.
    """

    compares_like_shaped = True

    def setup(self, bottom_shapes):
        lp = self.param.loss_param
        self.ignore_label = lp.ignore_label if lp.HasField("ignore_label") else None
        if lp.HasField("normalization"):
            self.normalization = lp.normalization
        elif lp.HasField("normalize"):
            self.normalization = NORMALIZATION.VALID if lp.normalize else NORMALIZATION.BATCH_SIZE
        else:
            self.normalization = NORMALIZATION.BATCH_SIZE
        return []

    def reshape(self, bottom_shapes):
        self.check_same_num(bottom_shapes)
        a, b = tuple(bottom_shapes[0]), tuple(bottom_shapes[1])
        if math.prod(a) != math.prod(b):
            raise self.error(
                f"SIGMOID_CROSS_ENTROPY_LOSS layer inputs must have the same count: bottom 0 {list(a)}, bottom 1 {list(b)}")
        self.outer, self.inner = a[0], math.prod(a[1:])
        return [()]

    def _valid(self, target):
        if self.ignore_label is None:
            return None
        return target.astype(np.int64) != self.ignore_label  # static_cast<int>(target)

    def forward(self, bottom, top):
        x = bottom[0].data
        t = bottom[1].data.reshape(x.shape)
        # Caffe: x*(t - (x>=0)) in float, minus log(1 + exp(x - 2*x*(x>=0))) in double (the
        # exp argument is float: exactly -|x|), each term subtracted from a float running sum.
        linear = np.subtract(t, x >= 0, dtype=x.dtype)
        linear *= x
        negated_terms = np.abs(x).astype(np.float64)
        np.negative(negated_terms, out=negated_terms)
        np.exp(negated_terms, out=negated_terms)
        negated_terms += 1.0
        np.log(negated_terms, out=negated_terms)
        negated_terms -= linear
        valid = self._valid(t)
        if valid is None:
            loss, self.valid_count = caffe_loss_sum(negated_terms, x.dtype), x.size
        else:
            loss, self.valid_count = caffe_loss_sum(negated_terms[valid], x.dtype), int(valid.sum())
        self.normalizer = loss_normalizer(self, self.normalization, self.outer, self.inner, self.valid_count)
        top[0].data[...] = loss / x.dtype.type(self.normalizer)

    def backward(self, top, propagate_down, bottom):
        if propagate_down[1]:
            raise self.error("SigmoidCrossEntropyLoss Layer cannot backpropagate to label inputs.")
        if not propagate_down[0]:
            return
        x = bottom[0].data
        t = bottom[1].data.reshape(x.shape)
        grad = sigmoid(x) - t  # Caffe's SigmoidLayer output
        valid = self._valid(t)
        if valid is not None:
            grad[~valid] = 0
        np.multiply(grad, x.dtype.type(self.loss_weight(top) / x.dtype.type(self.normalizer)), out=bottom[0].diff)


@register("ContrastiveLoss")
class ContrastiveLossLayer(LossLayer):
    """Hadsell et al.'s contrastive loss over pairs (a, b) with similarity labels.

    Bottoms: a, b (N, C[, 1, 1]) and sim (N[, 1, 1, 1]); d^2 = ||a - b||^2. Similar pairs
    (int(sim) != 0) add d^2; dissimilar ones max(margin - d, 0)^2, or with ``legacy_version``
    max(margin - d^2, 0). loss = sum / (2N). No gradient to sim.
    """

    exact_bottoms = 3

    def setup(self, bottom_shapes):
        p = self.param.contrastive_loss_param
        self.margin, self.legacy = float(p.margin), bool(p.legacy_version)
        return []

    def allow_force_backward(self, bottom_index):
        return bottom_index != 2

    def reshape(self, bottom_shapes):
        self.check_same_num(bottom_shapes)
        shapes = [tuple(s) for s in bottom_shapes]

        def legacy(shape, i):  # Blob::LegacyShape: missing axes read as 1, at most 4 axes
            if len(shape) > 4:
                raise self.error(f"bottom {i} has {len(shape)} axes; ContrastiveLoss takes at most 4 {list(shape)}")
            return tuple(shape) + (1,) * (4 - len(shape))

        a, b, s = legacy(shapes[0], 0), legacy(shapes[1], 1), legacy(shapes[2], 2)
        if a[1] != b[1]:
            raise self.error(f"bottoms 0 and 1 need the same channels: {list(shapes[0])} vs {list(shapes[1])}")
        for i, shape in ((0, a), (1, b)):
            if shape[2:] != (1, 1):
                raise self.error(f"bottom {i} must be (N, C, 1, 1), got {list(shapes[i])}")
        if s[1:] != (1, 1, 1) or s[0] != a[0]:
            raise self.error(f"similarity bottom must be (N, 1, 1, 1) with N = {a[0]}, got {list(shapes[2])}")
        return [()]

    def forward(self, bottom, top):
        a = bottom[0].data
        n = a.shape[0]
        t = a.dtype.type
        self.difference = (a - bottom[1].data).reshape(n, -1)
        # caffe_cpu_dot = OpenBLAS sdot: float products summed in a double (exact for the
        # short rows of a contrastive loss), rounded to float
        squares = self.difference * self.difference
        self.dist_sq = squares.sum(axis=1, dtype=np.float64).astype(a.dtype)
        self.similar = bottom[2].data.reshape(n).astype(np.int64) != 0  # static_cast<int>(sim)
        if self.legacy:
            dissimilar = np.maximum(t(self.margin) - self.dist_sq, t(0))
        else:  # max<Dtype>(margin - sqrt(d2), 0): ::sqrt(double), then rounded to float
            dist = np.maximum(self.margin - np.sqrt(self.dist_sq.astype(np.float64)), 0.0)
            dist = dist.astype(a.dtype)
            dissimilar = dist * dist
        terms = np.where(self.similar, self.dist_sq, dissimilar)
        top[0].data[...] = caffe_loss_sum(terms, a.dtype) / t(n) / t(2)

    def backward(self, top, propagate_down, bottom):
        # Caffe never looks at propagate_down[2]: a similarity bottom that "needs" backward
        # (e.g. under force_backward) is silently left alone, not an error.
        t = bottom[0].dtype.type
        for i, sign in ((0, 1), (1, -1)):
            if not propagate_down[i]:
                continue
            b = bottom[i]
            alpha = t(sign * self.loss_weight(top) / t(b.shape[0]))
            if self.legacy:
                mdist = t(self.margin) - self.dist_sq
                beta = np.full_like(mdist, -alpha)
            else:
                dist = np.sqrt(self.dist_sq)
                mdist = t(self.margin) - dist
                beta = -alpha * mdist / (dist + t(1e-4))
            scale = np.where(self.similar, alpha, np.where(mdist > 0, beta, t(0)))
            b.diff[...] = (scale[:, None] * self.difference).reshape(b.shape)
