"""Scale and Bias: multiply / add a blob broadcast over a run of axes of bottom 0, as Caffe's
``scale_layer.cpp`` and ``bias_layer.cpp``.

The factor (or addend) is a learned parameter, or bottom 1.  With one bottom its shape is
bottom 0's axes ``axis`` .. ``axis + num_axes`` (``num_axes: -1``: to the end; ``0``: a scalar,
a 0-d blob); with two bottoms it is bottom 1's shape.  Bottom 0 is viewed as
(outer, dim, inner) around those axes.
"""
from __future__ import annotations

import math

import numpy as np

from caffe_cae.layers.base import Layer
from caffe_cae.layers.common import canonical_axis
from caffe_cae.layers.registry import register
from caffe_cae.proto import caffe_pb2


def _learned_shape(layer: Layer, bottom_shape, axis: int, num_axes: int, what: str) -> tuple:
    """LayerSetUp of a learned factor: bottom 0's axes from ``axis``, ``num_axes`` of them."""
    ndim = len(bottom_shape)
    axis = canonical_axis(layer, axis, ndim)
    if num_axes < -1:
        raise layer.error("num_axes must be non-negative, or -1 to extend to the end of "
                          f"bottom[0] (got {num_axes})")
    if num_axes >= 0 and ndim < axis + num_axes:
        raise layer.error(
            f"{what} blob's shape extends past bottom[0]'s shape when applied starting with "
            f"bottom[0] axis = {axis} (num_axes {num_axes}, bottom shape {list(bottom_shape)})")
    end = ndim if num_axes == -1 else axis + num_axes
    return tuple(bottom_shape[axis:end])


def _geometry(layer: Layer, bottom_shape, factor_shape, axis: int, what: str) -> tuple[int, int, int]:
    """Reshape: (outer, dim, inner) of bottom 0 around the factor's axes (axis 0 for a scalar)."""
    bottom_shape, factor_shape = tuple(bottom_shape), tuple(factor_shape)
    axis = 0 if not factor_shape else canonical_axis(layer, axis, len(bottom_shape))
    if len(bottom_shape) < axis + len(factor_shape):
        raise layer.error(
            f"{what} blob's shape extends past bottom[0]'s shape when applied starting with "
            f"bottom[0] axis = {axis} ({what} shape {list(factor_shape)}, bottom shape {list(bottom_shape)})")
    for i, d in enumerate(factor_shape):
        if bottom_shape[axis + i] != d:
            raise layer.error(
                f"dimension mismatch between bottom[0]->shape({axis + i}) = {bottom_shape[axis + i]} "
                f"and {what}->shape({i}) = {d}")
    outer = math.prod(bottom_shape[:axis])
    inner = math.prod(bottom_shape[axis + len(factor_shape):])
    return outer, math.prod(factor_shape), inner


def _fill(layer: Layer, filler, blob, rng, what: str) -> None:
    from caffe_cae.fillers import fill  # lazy: fillers are optional for pure inference

    blob.data[...] = fill(filler, blob.shape, rng, blob.dtype,
                          where=f"layer '{layer.name}' ({layer.type}): {what}")


def _reduce(diff: np.ndarray, geometry) -> np.ndarray:
    """Sum a top-shaped array over outer and inner: one value per factor element."""
    return diff.reshape(geometry).sum(axis=(0, 2))


@register("Bias")
class BiasLayer(Layer):
    """y = x + b, b broadcast; in place allowed.  The bias gradient is added into the learned
    blob's diff, or assigned to bottom 1's diff."""

    min_bottoms = 1
    max_bottoms = 2
    exact_tops = 1
    elementwise = True

    def setup(self, bottom_shapes):
        p = self.param.bias_param
        self.axis = p.axis
        if len(bottom_shapes) > 1:
            return []
        self.learned_shape = _learned_shape(self, bottom_shapes[0], p.axis, p.num_axes, "bias")
        return [self.learned_shape]

    def reshape(self, bottom_shapes):
        bias_shape = bottom_shapes[1] if len(bottom_shapes) > 1 else self.learned_shape
        self.geometry = _geometry(self, bottom_shapes[0], bias_shape, self.axis, "bias")
        return [tuple(bottom_shapes[0])]

    def fill_params(self, rng):
        if self.blobs:
            _fill(self, self.param.bias_param.filler, self.blobs[0], rng, "filler")

    def _bias(self, bottom):
        return (bottom[1] if len(bottom) > 1 else self.blobs[0]).data

    def forward(self, bottom, top):
        outer, dim, inner = self.geometry
        y = bottom[0].data.reshape(outer, dim, inner) + self._bias(bottom).reshape(1, dim, 1)
        top[0].data.reshape(outer, dim, inner)[...] = y

    def backward(self, top, propagate_down, bottom):
        dy = top[0].diff
        if propagate_down[0] and bottom[0] is not top[0]:
            bottom[0].diff[...] = dy
        if len(bottom) > 1:
            if propagate_down[1]:
                bottom[1].diff.reshape(-1)[...] = _reduce(dy, self.geometry)
        elif self.param_needs_gradient(0):
            self.blobs[0].diff.reshape(-1)[...] += _reduce(dy, self.geometry)


@register("Scale")
class ScaleLayer(Layer):
    """y = x * s (+ b with ``bias_term``), s learned (default filler constant 1) or bottom 1;
    in place allowed (the bottom is copied first, for the backward).  The bias is the layer's
    last blob (its only one when s is bottom 1), filled by ``bias_filler`` (default 0).

    The backward follows Caffe's buffers: dy*x is formed in bottom 0's diff (scratch left there
    when bottom 0 needs no gradient), or in place in the saved copy of the bottom -- so a second
    backward without a forward in between multiplies by dy again, as Caffe's does (its golden
    parameter diffs show it).  The learned scale's gradient is *assigned*, not added, where
    Caffe's code does so: when s has as many elements as x, or when the axes before ``axis``
    have one element (outer = 1) and s more than one.
    """

    min_bottoms = 1
    max_bottoms = 2
    exact_tops = 1
    elementwise = True

    def setup(self, bottom_shapes):
        p = self.param.scale_param
        self.axis = p.axis
        self.bias_term = bool(p.bias_term)
        shapes = []
        if len(bottom_shapes) == 1:
            self.learned_shape = _learned_shape(self, bottom_shapes[0], p.axis, p.num_axes, "scale")
            shapes.append(self.learned_shape)
        if self.bias_term:
            num_axes = len(bottom_shapes[1]) if len(bottom_shapes) > 1 else p.num_axes
            self.bias_shape = _learned_shape(self, bottom_shapes[0], p.axis, num_axes, "bias")
            shapes.append(self.bias_shape)
        return shapes

    def reshape(self, bottom_shapes):
        scale_shape = bottom_shapes[1] if len(bottom_shapes) > 1 else self.learned_shape
        self.geometry = _geometry(self, bottom_shapes[0], scale_shape, self.axis, "scale")
        if self.bias_term:
            self.bias_geometry = _geometry(self, bottom_shapes[0], self.bias_shape, self.axis, "bias")
        return [tuple(bottom_shapes[0])]

    def fill_params(self, rng):
        p = self.param.scale_param
        if len(self.blobs) > self.bias_term:
            identity = caffe_pb2.FillerParameter(type="constant", value=1)
            _fill(self, p.filler if p.HasField("filler") else identity, self.blobs[0], rng, "filler")
        if self.bias_term:
            _fill(self, p.bias_filler, self.blobs[-1], rng, "bias_filler")

    def _scale(self, bottom):
        return bottom[1] if len(bottom) > 1 else self.blobs[0]

    def forward(self, bottom, top):
        outer, dim, inner = self.geometry
        x = bottom[0].data
        in_place = bottom[0] is top[0]
        self.saved_bottom = x.copy() if in_place else None  # Caffe's temp_
        y = x.reshape(outer, dim, inner) * self._scale(bottom).data.reshape(1, dim, 1)
        if self.bias_term:
            y = y.reshape(self.bias_geometry)
            y += self.blobs[-1].data.reshape(1, -1, 1)
        top[0].data.reshape(-1)[...] = y.reshape(-1)

    def backward(self, top, propagate_down, bottom):
        dy = top[0].diff
        if self.bias_term and self.param_needs_gradient(len(self.blobs) - 1):
            self.blobs[-1].diff.reshape(-1)[...] += _reduce(dy, self.bias_geometry)
        learned = len(bottom) == 1
        scale = self._scale(bottom)
        if (learned and self.param_needs_gradient(0)) or (not learned and propagate_down[1]):
            in_place = bottom[0] is top[0]
            x = self.saved_bottom if in_place else bottom[0].data
            eltwise = x.size == scale.count
            if eltwise:
                product = dy * x
            else:  # Caffe's scratch: bottom 0's diff, or in place the saved bottom itself
                product = np.multiply(dy, x, out=x if in_place else bottom[0].diff)
            outer, dim, inner = self.geometry
            gradient = _reduce(product, self.geometry)
            if learned and not (eltwise or (outer == 1 and dim > 1)):
                scale.diff.reshape(-1)[...] += gradient
            else:
                scale.diff.reshape(-1)[...] = gradient
        if propagate_down[0]:
            outer, dim, inner = self.geometry
            dx = dy.reshape(outer, dim, inner) * scale.data.reshape(1, dim, 1)
            bottom[0].diff.reshape(-1)[...] = dx.reshape(-1)
