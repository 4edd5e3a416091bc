"""Normalisation layers: BatchNorm, LRN (ACROSS_CHANNELS, WITHIN_CHANNEL) and MVN, with the
formulas of Caffe's CPU code (``batch_norm_layer.cpp``, ``lrn_layer.cpp``, ``mvn_layer.cpp``).

Everything is computed in the blobs' dtype (float32 normally); channel and spatial windows are
sums of shifted slices (a loop over the window's offsets, never over channels or pixels).
"""
from __future__ import annotations

import numpy as np

from caffe_cae.layers.base import Layer
from caffe_cae.layers.common import legacy_shape
from caffe_cae.layers.registry import register
from caffe_cae.proto import caffe_pb2

_LRN = caffe_pb2.LRNParameter


@register("BatchNorm")
class BatchNormLayer(Layer):
    """Caffe's BatchNorm: no learned scale or shift (a Scale layer follows it).

    Blobs: 0 = running mean *sum*, 1 = running variance *sum*, 2 = the scale factor s (1,).
    With global statistics it normalises with mean = b0/s and var = b1/s (both 0 while s == 0);
    otherwise with the batch's mean and biased variance over every axis but 1, and updates the
    sums in the forward (also in TEST with ``use_global_stats: false``):
    s <- maf*s + 1, b0 <- mean + maf*b0, b1 <- m/(m-1)*var + maf*b1 (m = count / channels).
    y = (x - mean) / sqrt(var + eps).  ``use_global_stats`` defaults to phase == TEST.

    The layer appends ``param { lr_mult: 0 }`` for each blob without a spec (so the solver never
    moves the statistics and ``to_proto`` shows them, as Caffe's ``ToProto``); a declared spec
    with lr_mult != 0 is refused.  Its backward writes the bottom diff whatever
    ``propagate_down`` says, as Caffe's does.
    """

    exact_bottoms = 1
    exact_tops = 1
    elementwise = True
    backward_ignores_propagate_down = True

    def setup(self, bottom_shapes):
        p = self.param.batch_norm_param
        shape = tuple(bottom_shapes[0])
        if len(shape) < 2:
            raise self.error(f"needs a bottom with at least 2 axes (N, C, ...), got shape "
                             f"{list(shape)}")
        self.moving_average_fraction = float(p.moving_average_fraction)
        self.use_global_stats = (p.use_global_stats if p.HasField("use_global_stats")
                                 else self.phase == caffe_pb2.TEST)
        self.eps = float(p.eps)
        self.channels = shape[1]
        for i in range(3):  # mask the statistics from the solver
            if len(self.param.param) == i:
                self.param.param.add().lr_mult = 0.0
            elif self.param.param[i].lr_mult != 0:
                raise self.error(
                    f"Cannot configure batch normalization statistics as layer parameters "
                    f"(param {i} has lr_mult {self.param.param[i].lr_mult:g}; give lr_mult 0, "
                    "or exactly three param specs: the old definition, rewritten to lr_mult 0)")
        return [(self.channels,), (self.channels,), (1,)]

    def reshape(self, bottom_shapes):
        shape = tuple(bottom_shapes[0])
        if len(shape) < 2 or shape[1] != self.channels:
            raise self.error(f"bottom shape {list(shape)} does not have the {self.channels} "
                             "channels the layer was set up for")
        return [shape]

    def fill_params(self, rng):
        for blob in self.blobs:  # Caffe creates the statistics as zeros
            blob.data[...] = 0

    def _rows(self, array):
        return array.reshape(array.shape[0], self.channels, -1)

    def forward(self, bottom, top):
        x = self._rows(bottom[0].data)
        t = x.dtype.type
        b0, b1, b2 = (blob.data for blob in self.blobs)
        if self.use_global_stats:
            s = b2.reshape(-1)[0]
            factor = t(0) if s == 0 else t(1) / s
            mean, var = factor * b0, factor * b1
        else:
            count = x.shape[0] * x.shape[2]
            mean = (x.sum(axis=(0, 2)) / t(count)).astype(x.dtype)
        centered = x - mean[None, :, None]
        if not self.use_global_stats:
            var = ((centered * centered).sum(axis=(0, 2)) / t(count)).astype(x.dtype)
            maf = t(self.moving_average_fraction)
            m = x.size // self.channels
            correction = t(m) / t(m - 1) if m > 1 else t(1)
            b2 *= maf
            b2 += t(1)
            b0[...] = mean + maf * b0
            b1[...] = correction * var + maf * b1
        self.std = np.sqrt(var + t(self.eps))[None, :, None]
        normalized = centered / self.std
        self.x_norm = normalized  # later in-place layers may overwrite the top: keep a copy
        self._rows(top[0].data)[...] = normalized

    def backward(self, top, propagate_down, bottom):
        dy = self._rows(top[0].diff)
        if self.use_global_stats:
            dx = dy / self.std
        else:
            y = self.x_norm
            t = dy.dtype.type
            count = t(dy.shape[0] * dy.shape[2])
            sum_dy_y = (dy * y).sum(axis=(0, 2))[None, :, None]
            sum_dy = dy.sum(axis=(0, 2))[None, :, None]
            dx = (dy - (sum_dy_y * y + sum_dy) / count) / self.std
        self._rows(bottom[0].diff)[...] = dx


def _window_sum(a: np.ndarray, size: int, axis: int) -> np.ndarray:
    """Sum over a centred window of ``size`` (odd) cells along ``axis``, zero-padded."""
    pad = (size - 1) // 2
    out = a.copy()
    length = a.shape[axis]
    for offset in range(1, min(pad, length - 1) + 1):
        low = [slice(None)] * a.ndim
        high = [slice(None)] * a.ndim
        low[axis], high[axis] = slice(0, length - offset), slice(offset, length)
        out[tuple(low)] += a[tuple(high)]  # the cell `offset` after
        out[tuple(high)] += a[tuple(low)]  # the cell `offset` before
    return out


@register("LRN")
class LRNLayer(Layer):
    """Local response normalisation on (N, C, H, W).

    ACROSS_CHANNELS: y = x / (k + alpha/n * sum of x^2 over n channels)^beta (zero-padded at
    the channel borders).  WITHIN_CHANNEL is Caffe's sub-net of Power, AVE Pooling and Eltwise
    PROD: y = x * (1 + alpha * avg_{n x n} x^2)^-beta, the average always divided by n^2 (padded
    cells count) and **k ignored**.  The backward is that of the sub-net, cell by cell.
    """

    elementwise = True  # no new units (the papers' model size)
    exact_bottoms = 1
    exact_tops = 1

    def setup(self, bottom_shapes):
        p = self.param.lrn_param
        self.size = int(p.local_size)
        if self.size % 2 != 1:
            raise self.error(f"LRN only supports odd values for local_size (got {self.size})")
        self.alpha, self.beta, self.k = float(p.alpha), float(p.beta), float(p.k)
        self.across = p.norm_region == _LRN.ACROSS_CHANNELS
        # Caffe's cross-channel backward writes the bottom diff whatever propagate_down says.
        self.backward_ignores_propagate_down = self.across
        return []

    def reshape(self, bottom_shapes):
        shape = tuple(bottom_shapes[0])
        if len(shape) != 4:
            raise self.error("Input must have 4 axes, corresponding to (num, channels, height, "
                             f"width); got {list(shape)}")
        return [shape]

    def forward(self, bottom, top):
        x = bottom[0].data
        t = x.dtype.type
        squares = x * x
        if self.across:
            scale = _window_sum(squares, self.size, 1)
            scale *= t(self.alpha / self.size)
            scale += t(self.k)
        else:
            pooled = _window_sum(_window_sum(squares, self.size, 2), self.size, 3)
            pooled /= t(self.size * self.size)
            self.pooled = pooled
            scale = pooled * t(self.alpha)
            scale += t(1)
        self.scale = scale
        self.power = np.power(scale, t(-self.beta))  # across: scale^-beta; within: Power's top
        np.multiply(x, self.power, out=top[0].data)

    def backward(self, top, propagate_down, bottom):
        x, y, dy = bottom[0].data, top[0].data, top[0].diff
        t = x.dtype.type
        if self.across:
            ratio = _window_sum(dy * y / self.scale, self.size, 1)
            dx = dy * self.power - t(2.0 * self.alpha * self.beta / self.size) * x * ratio
        elif propagate_down[0]:
            d_power = x * dy  # Eltwise PROD: the other factor times the top diff
            d_pooled = d_power * (t(-self.beta * self.alpha) * (self.power / self.scale))
            d_pooled /= t(self.size * self.size)  # AVE Pooling's backward, window by window
            d_squares = _window_sum(_window_sum(d_pooled, self.size, 2), self.size, 3)
            dx = self.power * dy + t(2) * x * d_squares
        else:
            return
        bottom[0].diff[...] = dx


@register("MVN")
class MVNLayer(Layer):
    """Mean-variance normalisation per (n, c), or per n with ``across_channels``:
    y = (x - mean) / (std + eps) (``normalize_variance``, std biased) or y = x - mean.

    As in Caffe, eps is added to the standard deviation and the backward is
    (dy - mean(dy) - mean(dy*y)*y) / (std + eps), the exact gradient only for eps -> 0; the top
    has Caffe's legacy 4-D shape (num, channels, height, width).  The backward writes the bottom
    diff whatever ``propagate_down`` says.
    """

    elementwise = True  # no new units (the papers' model size)
    exact_bottoms = 1
    exact_tops = 1
    backward_ignores_propagate_down = True

    def setup(self, bottom_shapes):
        p = self.param.mvn_param
        self.normalize_variance = bool(p.normalize_variance)
        self.across_channels = bool(p.across_channels)
        self.eps = float(p.eps)
        return []

    def reshape(self, bottom_shapes):
        num, channels, height, width = legacy_shape(self, bottom_shapes[0])
        self.rows = num if self.across_channels else num * channels
        return [(num, channels, height, width)]

    def forward(self, bottom, top):
        x = bottom[0].data.reshape(self.rows, -1)
        t = x.dtype.type
        dim = t(x.shape[1])
        centered = x - (x.sum(axis=1, keepdims=True) / dim)
        if self.normalize_variance:
            variance = (centered * centered).sum(axis=1, keepdims=True) / dim
            self.std = np.sqrt(variance) + t(self.eps)
            centered /= self.std
        top[0].data.reshape(self.rows, -1)[...] = centered

    def backward(self, top, propagate_down, bottom):
        dy = top[0].diff.reshape(self.rows, -1)
        t = dy.dtype.type
        dim = t(dy.shape[1])
        if self.normalize_variance:
            y = top[0].data.reshape(self.rows, -1)
            sums = (dy * y).sum(axis=1, keepdims=True) * y + dy.sum(axis=1, keepdims=True)
            dx = (dy - sums / dim) / self.std
        else:
            dx = dy - dy.sum(axis=1, keepdims=True) / dim
        bottom[0].diff.reshape(self.rows, -1)[...] = dx
