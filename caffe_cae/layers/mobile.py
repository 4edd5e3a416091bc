"""Layers the MobileNet-v2 and ShuffleNet Caffe ports added: ReLU6 and ShuffleChannel.

* ``ReLU6`` (eric612/MobileNet-YOLO ``src/caffe/layers/relu6_layer.cpp`` f36b52b, the layer the
  MobileNet-v2 ports copy): ``y = min(max(x, 0) + negative_slope * min(x, 0), 6)``; backward
  ``dy * ((x > 0) + negative_slope * (x <= 0)) * (x < 6)``.  ``negative_slope`` comes from
  ``relu6_param`` (that port) or ``relu_param`` (NVIDIA's Caffe, same formula).
* ``ShuffleChannel`` (farmingyard/ShuffleNet ``shuffle_channel_layer.cpp``, merged into several
  forks): ``group`` g splits the C channels into g rows of C/g and transposes them: output
  channel ``j * g + i`` is input channel ``i * (C/g) + j``.
"""
from __future__ import annotations

import numpy as np

from caffe_cae.layers.base import Layer, NeuronLayer
from caffe_cae.layers.registry import register


@register("ReLU6")
class ReLU6Layer(NeuronLayer):
    """ReLU clipped at 6 (see the module docstring)."""

    gradient_check = "kink"

    def setup(self, bottom_shapes):
        p = self.param
        slope = p.relu6_param.negative_slope if p.HasField("relu6_param") else p.relu_param.negative_slope
        self.negative_slope = float(slope)
        return []

    def forward(self, bottom, top):
        x = bottom[0].data
        slope = x.dtype.type(self.negative_slope)
        y = np.maximum(x, 0) + slope * np.minimum(x, 0) if self.negative_slope else np.maximum(x, 0)
        np.minimum(y, x.dtype.type(6), out=top[0].data)

    def backward(self, top, propagate_down, bottom):
        if not propagate_down[0]:
            return
        x, dy = bottom[0].data, top[0].diff  # in place x is y; y > 0 and y < 6 as x (slope >= 0)
        slope = dy.dtype.type(self.negative_slope)
        gate = np.where(x > 0, dy.dtype.type(1), slope) * (x < 6)
        np.multiply(dy, gate, out=bottom[0].diff)


@register("ShuffleChannel")
class ShuffleChannelLayer(Layer):
    """ShuffleNet's channel shuffle (see the module docstring)."""

    exact_bottoms = 1
    exact_tops = 1

    def setup(self, bottom_shapes):
        self.group = int(self.param.shuffle_channel_param.group)
        if self.group <= 0:
            raise self.error("group must be greater than 0")
        return []

    def reshape(self, bottom_shapes):
        shape = tuple(bottom_shapes[0])
        if len(shape) < 2 or shape[1] % self.group:
            raise self.error(f"the channels ({shape[1] if len(shape) > 1 else 'none'}) must divide "
                             f"into group {self.group}")
        return [shape]

    def _shuffle(self, source: np.ndarray, target: np.ndarray, rows: int) -> None:
        n, c = source.shape[:2]
        rest = source.shape[2:]
        grid = source.reshape((n, rows, c // rows) + rest)
        np.copyto(target.reshape((n, c // rows, rows) + rest), grid.swapaxes(1, 2))

    def forward(self, bottom, top):
        self._shuffle(bottom[0].data, top[0].data, self.group)

    def backward(self, top, propagate_down, bottom):
        if propagate_down[0]:
            dy = top[0].diff
            self._shuffle(dy, bottom[0].diff, dy.shape[1] // self.group)
