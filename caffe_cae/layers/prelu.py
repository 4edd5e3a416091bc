"""PReLU (``prelu_layer.cpp``): y = max(x, 0) + a_c * min(x, 0) with a learned slope per
channel (axis 1), or one 0-d slope for every channel with ``channel_shared``."""
from __future__ import annotations

import numpy as np

from caffe_cae.layers.base import NeuronLayer
from caffe_cae.layers.common import legacy_shape
from caffe_cae.layers.registry import register
from caffe_cae.proto import caffe_pb2


@register("PReLU")
class PReLULayer(NeuronLayer):
    """Default slope filler: constant 0.25.  In place allowed (the bottom is copied first, for
    the backward).  The gradient at x == 0 takes the slope, as in Caffe (``x <= 0``)."""

    gradient_check = "kink"

    def setup(self, bottom_shapes):
        shape = tuple(bottom_shapes[0])
        if len(shape) < 2:
            raise self.error(f"Number of axes of bottom blob must be >=2 (got shape {list(shape)})")
        self.channels = legacy_shape(self, shape)[1]
        self.channel_shared = bool(self.param.prelu_param.channel_shared)
        return [()] if self.channel_shared else [(self.channels,)]

    def reshape(self, bottom_shapes):
        shape = tuple(bottom_shapes[0])
        if len(shape) < 2:
            raise self.error(f"Number of axes of bottom blob must be >=2 (got shape {list(shape)})")
        if legacy_shape(self, shape)[1] != self.channels and not self.channel_shared:
            raise self.error(f"bottom shape {list(shape)} does not have the {self.channels} channels "
                             "the slopes were set up for")
        return [shape]

    def fill_params(self, rng):
        from caffe_cae.fillers import fill  # lazy: fillers are optional for pure inference

        p = self.param.prelu_param
        default = caffe_pb2.FillerParameter(type="constant", value=0.25)
        filler = p.filler if p.HasField("filler") else default
        slope = self.blobs[0]
        slope.data[...] = fill(filler, slope.shape, rng, slope.dtype,
                               where=f"layer '{self.name}' ({self.type}): filler")

    def _planes(self, array):
        """The array as (N, C, rest); as one row (1, 1, count) for a shared slope."""
        if self.channel_shared:
            return array.reshape(1, 1, -1)
        return array.reshape(array.shape[0], self.channels, -1)

    def _slope(self):
        return self.blobs[0].data.reshape(1, -1, 1)

    def forward(self, bottom, top):
        x = bottom[0].data
        self.saved_bottom = x.copy() if bottom[0] is top[0] else None
        xs = self._planes(x)
        y = np.maximum(xs, 0) + self._slope() * np.minimum(xs, 0)
        self._planes(top[0].data)[...] = y

    def backward(self, top, propagate_down, bottom):
        x = self._planes(self.saved_bottom if bottom[0] is top[0] else bottom[0].data)
        dy = self._planes(top[0].diff)
        negative = x <= 0
        if self.param_needs_gradient(0):
            self.blobs[0].diff.reshape(-1)[...] += (dy * x * negative).sum(axis=(0, 2))
        if propagate_down[0]:
            dx = dy * ((x > 0) + self._slope() * negative)
            self._planes(bottom[0].diff)[...] = dx
