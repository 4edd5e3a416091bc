"""Spatial pyramid pooling (SPP), built as Caffe builds it: one Pooling layer per pyramid level
(created through the registry, so the window rules are Pooling's own), each flattened, then
concatenated along axis 1.

Level l has 2^l bins per side: kernel = ceil(H / bins), pad = (kernel * bins - H + 1) / 2,
stride = kernel, per axis; Pooling's output-size rule then gives the bins (usually 2^l, not
always).  Caffe's Pooling refuses pad >= kernel (e.g. H = 5 at level 2: kernel 2, pad 2), and
padding with STOCHASTIC pooling, which has no CPU implementation anyway: both are refused here
at setup.  pyramid_height 1 gives the pooled (N, C, 1, 1) blob itself; more levels a flat
(N, C * sum of bins).
"""
from __future__ import annotations

import math

import numpy as np

from caffe_cae.blob import Blob
from caffe_cae.layers.base import Layer
from caffe_cae.layers.registry import create_layer, register
from caffe_cae.proto import caffe_pb2

SPP = caffe_pb2.SPPParameter


def level_geometry(level: int, height: int, width: int):
    """(kernel, pad) as (h, w) pairs of pyramid level ``level`` (Caffe's GetPoolingParam)."""
    bins = 2 ** level
    kernel = tuple(math.ceil(size / bins) for size in (height, width))
    pad = tuple((k * bins - size + 1) // 2 for k, size in zip(kernel, (height, width)))
    return kernel, pad


@register("SPP")
class SPPLayer(Layer):
    feature_tops = -1  # pooled maps, as Pooling's
    exact_bottoms = 1
    exact_tops = 1

    def __init__(self, param, phase=caffe_pb2.TEST):
        super().__init__(param, phase)
        self.gradient_check = "kink" if param.spp_param.pool == SPP.MAX else "smooth"

    def setup(self, bottom_shapes):
        p = self.param.spp_param
        if p.pool == SPP.STOCHASTIC:
            raise self.error("pool: STOCHASTIC is not supported (Caffe: Padding implemented only "
                             "for average and max pooling; STOCHASTIC pooling has no CPU "
                             "implementation)")
        self.height = int(p.pyramid_height)
        if self.height < 1:
            raise self.error(f"pyramid_height must be at least 1, got {self.height}")
        self.pools: list[Layer] = []
        self._shape = None
        return []

    def _pooling_param(self, level, height, width) -> caffe_pb2.LayerParameter:
        kernel, pad = level_geometry(level, height, width)
        for axis, k, pd in zip("hw", kernel, pad):
            if pd >= k:
                raise self.error(
                    f"pyramid level {level} ({2 ** level} bins) on a {height}x{width} input "
                    f"needs pad_{axis} {pd} >= kernel_{axis} {k}, which Caffe's Pooling "
                    f"refuses (Check failed: pad_{axis}_ < kernel_{axis}_ ({pd} vs. {k}))")
        param = caffe_pb2.LayerParameter(name=self.name, type="Pooling")
        pp = param.pooling_param
        pp.pool = caffe_pb2.PoolingParameter.AVE if self.param.spp_param.pool == SPP.AVE \
            else caffe_pb2.PoolingParameter.MAX
        pp.kernel_h, pp.kernel_w = kernel
        pp.stride_h, pp.stride_w = kernel
        pp.pad_h, pp.pad_w = pad
        return param

    def reshape(self, bottom_shapes):
        shape = tuple(bottom_shapes[0])
        if len(shape) != 4:
            raise self.error(f"Input must have 4 axes, corresponding to (num, channels, height, "
                             f"width), got {list(shape)}")
        if shape == self._shape:
            return [self._top_shape]
        num, channels, height, width = shape
        if height <= 0 or width <= 0:
            raise self.error(f"Input dimensions cannot be zero: {list(shape)}")
        self.pools, self.pooled_shapes = [], []
        for level in range(self.height):
            pool = create_layer(self._pooling_param(level, height, width), self.phase)
            pool.check_blob_counts(1, 1)
            pool.setup([shape])
            self.pools.append(pool)
            self.pooled_shapes.append(tuple(pool.reshape([shape])[0]))
        self._levels = None
        self._shape = shape
        if self.height == 1:
            self._top_shape = self.pooled_shapes[0]
        else:
            self._top_shape = (num, sum(math.prod(s[1:]) for s in self.pooled_shapes))
        return [self._top_shape]

    def _level_blobs(self, dtype) -> list[Blob]:
        """One (N, C, bins_h, bins_w) scratch blob per level (Caffe's pooling tops)."""
        if self._levels is None or self._levels[0].dtype != dtype:
            self._levels = [Blob(s, dtype) for s in self.pooled_shapes]
        return self._levels

    def _parts(self, array):
        """The top (or its diff) cut into the flattened levels (N, C*bins_h*bins_w) each."""
        bounds = np.cumsum([0] + [math.prod(s[1:]) for s in self.pooled_shapes])
        return [array[:, lo:hi] for lo, hi in zip(bounds[:-1], bounds[1:])]

    def forward(self, bottom, top):
        if self.height == 1:
            self.pools[0].forward(bottom, top)
            return
        levels = self._level_blobs(bottom[0].dtype)
        for pool, level, part in zip(self.pools, levels, self._parts(top[0].data)):
            pool.forward(bottom, [level])
            part[...] = level.data.reshape(part.shape)

    def backward(self, top, propagate_down, bottom):
        if not propagate_down[0]:
            return
        if self.height == 1:
            self.pools[0].backward(top, propagate_down, bottom)
            return
        levels = self._level_blobs(bottom[0].dtype)
        scratch = Blob(bottom[0].shape, bottom[0].dtype)  # a level's diff w.r.t. the bottom
        scratch.data = bottom[0].data
        dx = bottom[0].diff
        for i, (pool, level, part) in enumerate(zip(self.pools, levels, self._parts(top[0].diff))):
            level.diff[...] = part.reshape(level.shape)
            pool.backward([level], [True], [scratch if i else bottom[0]])
            if i:  # Caffe's Split backward: level diffs added in level order
                dx += scratch.diff
