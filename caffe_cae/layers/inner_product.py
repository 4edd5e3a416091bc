"""InnerProduct (fully connected), as BVLC's InnerProductLayer.

``axis`` (default 1): the bottom is viewed as (M, K) with M = product of the axes before
``axis`` and K = product of the axes from ``axis`` on (row-major, so (C, H, W) flatten as in
Caffe).  Top shape = bottom shape[:axis] + (num_output,) -- so a (N, C, H, W) bottom gives a
2-D (N, num_output) top in BVLC (old 4-D Caffe gave (N, num_output, 1, 1)).

Weight ``(num_output, K)``, or ``(K, num_output)`` with ``transpose: true``; bias
``(num_output,)``.  ``y = x W^T + b`` (``x W + b`` when transposed).  K is fixed at setup: a
later bottom with another K is an "Input size incompatible" error.
"""
from __future__ import annotations

import math

import numpy as np

from caffe_cae.layers.base import Layer
from caffe_cae.layers.common import canonical_axis
from caffe_cae.layers.registry import register
from caffe_cae.parallel import matmul


@register("InnerProduct")
class InnerProductLayer(Layer):
    feature_tops = -1
    exact_bottoms = 1
    exact_tops = 1

    def setup(self, bottom_shapes):
        ip = self.param.inner_product_param
        shape = tuple(bottom_shapes[0])
        self.num_output = int(ip.num_output)
        if self.num_output <= 0:
            raise self.error("num_output must be positive")
        self.bias_term = bool(ip.bias_term)
        self.transpose = bool(ip.transpose)
        self.axis = canonical_axis(self, ip.axis, len(shape))
        self.K = math.prod(shape[self.axis:])
        w = (self.K, self.num_output) if self.transpose else (self.num_output, self.K)
        return [w, (self.num_output,)] if self.bias_term else [w]

    def reshape(self, bottom_shapes):
        shape = tuple(bottom_shapes[0])
        axis = canonical_axis(self, self.param.inner_product_param.axis, len(shape))
        k = math.prod(shape[axis:])
        if k != self.K:
            name = self.param.bottom[0] if self.param.bottom else "bottom0"
            raise self.error(
                f"Input size incompatible with inner product parameters: bottom '{name}' shape "
                f"{list(shape)} gives K={k} from axis {axis}, the layer was set up for K={self.K}")
        self.axis = axis
        self.M = math.prod(shape[:axis])
        return [shape[:axis] + (self.num_output,)]

    def fill_params(self, rng):
        from caffe_cae.fillers import fill  # lazy: fillers are optional for pure inference

        ip = self.param.inner_product_param
        w = self.blobs[0]
        w.data[...] = fill(ip.weight_filler, w.shape, rng, w.dtype)
        if self.bias_term:
            b = self.blobs[1]
            b.data[...] = fill(ip.bias_filler, b.shape, rng, b.dtype)


    def _weight_nk(self, array):
        """The weight (or its diff) as (K, num_output) for x @ W."""
        return array if self.transpose else array.T

    def forward(self, bottom, top):
        x = bottom[0].data.reshape(self.M, self.K)
        y = top[0].data.reshape(self.M, self.num_output)
        matmul(x, self._weight_nk(self.blobs[0].data), y)
        if self.bias_term:
            y += self.blobs[1].data

    def backward(self, top, propagate_down, bottom):
        dy = top[0].diff.reshape(self.M, self.num_output)
        x = bottom[0].data.reshape(self.M, self.K)
        if self.param_needs_gradient(0):
            dw = self.blobs[0].diff
            product = np.empty_like(dw)
            if self.transpose:  # (K, N) += x^T dy
                matmul(x.T, dy, product)
            else:  # (N, K) += dy^T x
                matmul(dy.T, x, product)
            dw += product
        if self.bias_term and self.param_needs_gradient(1):
            self.blobs[1].diff += dy.sum(axis=0, dtype=dy.dtype)
        if propagate_down[0]:
            dx = bottom[0].diff.reshape(self.M, self.K)
            matmul(dy, self._weight_nk(self.blobs[0].data).T, dx)
