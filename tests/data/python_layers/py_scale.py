"""A Python layer with a learned blob, for caffe-cae's Python-layer tests: y = w * x + b with
one (w, b) per channel, parameters given in param_str, e.g. "{'w': 2.0, 'b': 0.5}"."""
import ast

import numpy as np

import caffe


class ScaleShift(caffe.Layer):
    def setup(self, bottom, top):
        params = ast.literal_eval(self.param_str or "{}")
        channels = bottom[0].data.shape[1]
        self.blobs.add_blob(channels)
        self.blobs.add_blob(channels)
        self.blobs[0].data[...] = params.get("w", 1.0) + np.arange(channels)
        self.blobs[1].data[...] = params.get("b", 0.0)

    def reshape(self, bottom, top):
        top[0].reshape(*bottom[0].data.shape)

    def _per_channel(self, index, ndim):
        return self.blobs[index].data.reshape((1, -1) + (1,) * (ndim - 2))

    def forward(self, bottom, top):
        x = bottom[0].data
        top[0].data[...] = self._per_channel(0, x.ndim) * x + self._per_channel(1, x.ndim)

    def backward(self, top, propagate_down, bottom):
        x, dy = bottom[0].data, top[0].diff
        axes = (0,) + tuple(range(2, x.ndim))
        self.blobs[0].diff[...] += (dy * x).sum(axis=axes)
        self.blobs[1].diff[...] += dy.sum(axis=axes)
        if propagate_down[0]:
            bottom[0].diff[...] = self._per_channel(0, x.ndim) * dy


class NoBackward(caffe.Layer):
    def forward(self, bottom, top):
        top[0].reshape(*bottom[0].data.shape)
        top[0].data[...] = bottom[0].data

    def reshape(self, bottom, top):
        top[0].reshape(*bottom[0].data.shape)


class Broken(caffe.Layer):
    def reshape(self, bottom, top):
        top[0].reshape(*bottom[0].data.shape)

    def forward(self, bottom, top):
        raise ValueError("the module failed")
