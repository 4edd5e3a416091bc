"""The Parameter layer: a learnable blob offered as a top.

No bottoms; one parameter blob of ``parameter_param.shape``, which has **no filler** (it starts
at 0 unless the caffemodel or the prototxt's ``blobs`` give values).  At every forward the top
shares the blob's data and diff, so the gradients its consumers write land in the parameter's
diff directly and the backward has nothing to do.
"""
from __future__ import annotations

from caffe_cae.layers.base import Layer
from caffe_cae.layers.common import share_data_and_diff
from caffe_cae.layers.registry import register


@register("Parameter")
class ParameterLayer(Layer):
    exact_bottoms = 0
    exact_tops = 1

    def setup(self, bottom_shapes):
        shape = tuple(int(d) for d in self.param.parameter_param.shape.dim)
        if any(d < 0 for d in shape):
            raise self.error(f"negative dimension in parameter_param shape {list(shape)}")
        self.shape = shape
        return [shape]

    def reshape(self, bottom_shapes):
        return [self.shape]

    def forward(self, bottom, top):
        share_data_and_diff(top[0], self.blobs[0])

    def backward(self, top, propagate_down, bottom):
        pass  # the top's diff is the parameter's diff
