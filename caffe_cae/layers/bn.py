"""``BN``: the batch normalisation of Hyeonwoo Noh's fork and of SegNet's (not BVLC's BatchNorm).

Sources: HyeonwooNoh/caffe ``src/caffe/layers/bn_layer.cpp`` (commits bed4a9d, 4584de7: the
``bn_mode`` version's CPU code does not compile in the fork, its GPU code runs the same
arithmetic) and alexgkendall/caffe-segnet ``src/caffe/layers/bn_layer.cpp`` (03d1e9f), one
algorithm.  Two learned blobs of shape (1, C, 1, 1), ``scale`` and ``shift``, filled by
``bn_param.scale_filler`` / ``shift_filler`` (an unset filler is Caffe's default: constant 0).

* ``bn_mode: LEARN`` (the default), in both phases: the statistics of the batch, over N, H, W:
  ``mean = E[x]``, ``var = E[x^2] - mean^2`` (each average taken over H*W, then over N, in
  float), ``x_norm = (x - mean) / sqrt(var + 1e-9)``, ``y = scale * x_norm + shift``.  Extra tops
  1 and 2 (if given) receive the batch mean and variance (1, C, 1, 1).
* ``bn_mode: INFERENCE``: ``y = scale * x + shift`` (the statistics folded into scale/shift by
  SegNet's ``compute_bn_statistics.py`` or Noh's equivalent).

Backward is the forks': LEARN ``dx = (g - (x_norm * sum(g * x_norm) + sum(g)) / M) / std`` with
``g = scale * dy`` and ``M = N*H*W``; INFERENCE ``dx = scale * dy``, and its scale gradient
``sum(bottom * dy)`` reads the bottom blob at backward time -- in place (DeconvNet's
``bottom == top``), that is the layer's output, or what a later in-place ReLU left there, as
in the fork.  The forks *assign* the parameter gradients (``gemv`` with beta 0) instead of
adding them: with ``iter_size > 1`` only the last pass's survive, as in the forks
(``overwrites_param_gradients``).
"""
from __future__ import annotations

import numpy as np

from caffe_cae.fillers import fill
from caffe_cae.layers.base import Layer
from caffe_cae.layers.common import legacy_shape
from caffe_cae.layers.registry import register
from caffe_cae.proto import caffe_pb2

BNMode = caffe_pb2.BNParameter
VAR_EPS = 1e-9


@register("BN")
class BNLayer(Layer):
    """Noh's / SegNet's BN (see the module docstring)."""

    exact_bottoms = 1
    min_tops = 1
    max_tops = 3
    elementwise = True  # like BVLC's BatchNorm: no new units for the model size
    overwrites_param_gradients = True

    def __init__(self, param, phase=caffe_pb2.TEST):
        super().__init__(param, phase)
        self._n_tops = max(1, len(param.top))  # the Net confirms it in check_blob_counts

    def check_blob_counts(self, n_bottom, n_top):
        super().check_blob_counts(n_bottom, n_top)
        self._n_tops = n_top

    def setup(self, bottom_shapes):
        self.mode = self.param.bn_param.bn_mode
        _, self.channels, _, _ = legacy_shape(self, bottom_shapes[0])
        return [(1, self.channels, 1, 1), (1, self.channels, 1, 1)]

    def reshape(self, bottom_shapes):
        shape = tuple(bottom_shapes[0])
        _, channels, _, _ = legacy_shape(self, shape)
        if channels != self.channels:
            raise self.error(f"bottom has {channels} channels, the layer was set up for {self.channels}")
        return [shape] + [(1, channels, 1, 1)] * (self._n_tops - 1)

    def fill_params(self, rng):
        bp = self.param.bn_param
        where = f"layer '{self.name}' (BN)"
        self.blobs[0].data[...] = fill(bp.scale_filler, self.blobs[0].shape, rng, self.blobs[0].dtype,
                                       where=f"{where}: scale_filler")
        self.blobs[1].data[...] = fill(bp.shift_filler, self.blobs[1].shape, rng, self.blobs[1].dtype,
                                       where=f"{where}: shift_filler")

    def _view(self, a: np.ndarray) -> np.ndarray:
        n, c, h, w = legacy_shape(self, a.shape)
        return a.reshape(n, c, h * w)

    def _per_channel(self, index: int, dtype) -> np.ndarray:
        return self.blobs[index].data.reshape(1, -1, 1).astype(dtype, copy=False)

    def forward(self, bottom, top):
        x, y = self._view(bottom[0].data), self._view(top[0].data)
        dtype = x.dtype
        scale, shift = self._per_channel(0, dtype), self._per_channel(1, dtype)
        if self.mode == BNMode.INFERENCE:
            np.multiply(x, scale, out=y)
            y += shift
            return
        n, _, hw = x.shape
        inv_hw, inv_n = dtype.type(1.0 / hw), dtype.type(1.0 / n)
        mean = (x.sum(axis=2, dtype=dtype) * inv_hw).sum(axis=0, dtype=dtype) * inv_n
        mean_sq = ((x * x).sum(axis=2, dtype=dtype) * inv_hw).sum(axis=0, dtype=dtype) * inv_n
        var = mean_sq - mean * mean
        for k, stat in ((1, mean), (2, var)):
            if len(top) > k:
                top[k].data[...] = stat.reshape(top[k].data.shape)
        self.std = np.sqrt(var + dtype.type(VAR_EPS))[None, :, None]
        centred = x - mean[None, :, None]  # in place (y is x) this must be computed first
        self.x_norm = centred / self.std
        np.multiply(self.x_norm, scale, out=y)
        y += shift

    def backward(self, top, propagate_down, bottom):
        dy = self._view(top[0].diff)
        dtype = dy.dtype
        scale = self._per_channel(0, dtype)
        normalized = self.x_norm if self.mode == BNMode.LEARN else self._view(bottom[0].data)
        # the forks assign these (see the module docstring)
        if self.param_needs_gradient(0):
            self.blobs[0].diff[...] = (normalized * dy).sum(axis=(0, 2), dtype=dtype).reshape(self.blobs[0].diff.shape)
        if self.param_needs_gradient(1):
            self.blobs[1].diff[...] = dy.sum(axis=(0, 2), dtype=dtype).reshape(self.blobs[1].diff.shape)
        if not propagate_down[0]:
            return
        dx = self._view(bottom[0].diff)
        if self.mode == BNMode.INFERENCE:
            np.multiply(dy, scale, out=dx)
            return
        g = dy * scale
        count = dtype.type(1.0 / (g.shape[0] * g.shape[2]))
        projected = (self.x_norm * g).sum(axis=(0, 2), dtype=dtype)[None, :, None]
        total = g.sum(axis=(0, 2), dtype=dtype)[None, :, None]
        np.subtract(g, (self.x_norm * projected + total) * count, out=dx)
        dx /= self.std
