"""Layers that reduce a blob along trailing axes: Reduction (sums) and ArgMax (top-k indices).

Reduction reduces **every** axis from ``axis`` to the end (Caffe supports no other form), so
``axis: 0`` gives a 0-d top.  ArgMax picks the top_k largest values per item (over the flattened
C*H*W, or along ``axis``); equal values are ordered by **decreasing** index, as Caffe's
``std::partial_sort`` with ``std::greater`` on (value, index) pairs leaves them.
"""
from __future__ import annotations

import math

import numpy as np

from caffe_cae.layers.base import Layer
from caffe_cae.layers.common import canonical_axis
from caffe_cae.layers.registry import register
from caffe_cae.proto import caffe_pb2

OP = caffe_pb2.ReductionParameter  # .SUM, .ASUM, .SUMSQ, .MEAN


@register("Reduction")
class ReductionLayer(Layer):
    """top[i] = coeff * op(bottom[i, ...]) over the trailing axes from ``axis``: SUM, ASUM
    (sum of |x|), SUMSQ (sum of x^2) or MEAN (coeff / count, in float as Caffe divides it)."""

    exact_bottoms = 1
    exact_tops = 1

    def setup(self, bottom_shapes):
        self.op = self.param.reduction_param.operation
        if self.op not in (OP.SUM, OP.ASUM, OP.SUMSQ, OP.MEAN):
            raise self.error(f"Unknown reduction op: {self.op}")
        return []

    def reshape(self, bottom_shapes):
        shape = tuple(bottom_shapes[0])
        p = self.param.reduction_param
        axis = canonical_axis(self, p.axis, len(shape))
        self.num, self.dim = math.prod(shape[:axis]), math.prod(shape[axis:])
        coeff = np.float32(p.coeff)
        if self.op == OP.MEAN:  # Caffe: Dtype coeff_ /= dim_
            coeff = coeff / np.float32(self.dim)
        self.coeff = float(coeff)
        return [shape[:axis]]

    def forward(self, bottom, top):
        x = bottom[0].data.reshape(self.num, self.dim)
        if self.op == OP.ASUM:
            x = np.abs(x)
        elif self.op == OP.SUMSQ:
            x = x.astype(np.float64) ** 2
        y = top[0].data.reshape(self.num)
        y[...] = x.sum(axis=1, dtype=np.float64)
        if self.coeff != 1:
            y *= y.dtype.type(self.coeff)

    def backward(self, top, propagate_down, bottom):
        if not propagate_down[0]:
            return
        dy = top[0].diff.reshape(self.num, 1)
        coeff = dy * dy.dtype.type(self.coeff)  # Caffe's bottom_coeff, per item
        x = bottom[0].data.reshape(self.num, self.dim)
        dx = bottom[0].diff.reshape(self.num, self.dim)
        if self.op in (OP.SUM, OP.MEAN):
            dx[...] = coeff
        elif self.op == OP.ASUM:
            np.multiply(np.sign(x), coeff, out=dx)
        else:  # SUMSQ
            np.multiply(x, 2 * coeff, out=dx)


@register("ArgMax")
class ArgMaxLayer(Layer):
    """Indices (as floats) of the top_k largest values.  Without ``axis``: per item over the
    flattened C*H*W, top (N, 1, top_k) -- or (N, 2, top_k) with ``out_max_val``: indices,
    then values -- padded with 1s to the bottom's axes (at least 3).  With ``axis``: the
    bottom's shape with ``axis`` -> top_k, holding the indices, or with ``out_max_val`` only
    the values.  No backward: Caffe aborts."""

    exact_bottoms = 1
    exact_tops = 1
    #: Caffe's Backward_cpu aborts whenever the Net runs it, whatever propagate_down says.
    backward_ignores_propagate_down = True

    def setup(self, bottom_shapes):
        p = self.param.argmax_param
        self.top_k, self.out_max_val = int(p.top_k), bool(p.out_max_val)
        self.has_axis = p.HasField("axis")
        if self.top_k < 1:
            raise self.error("top k must not be less than 1.")
        return []

    def reshape(self, bottom_shapes):
        shape = tuple(bottom_shapes[0])
        if self.has_axis:
            self.axis = canonical_axis(self, self.param.argmax_param.axis, len(shape))
            self.outer = math.prod(shape[:self.axis])
            self.dim = shape[self.axis]
            self.inner = math.prod(shape[self.axis + 1:])
            if self.top_k > self.dim:
                raise self.error(f"top_k must be less than or equal to the dimension of the axis "
                                 f"(top_k {self.top_k}, axis {self.axis} of {list(shape)})")
            return [shape[:self.axis] + (self.top_k,) + shape[self.axis + 1:]]
        if not shape:
            raise self.error("needs a bottom with at least one axis")
        self.outer, self.dim, self.inner = shape[0], math.prod(shape[1:]), 1
        if self.top_k > self.dim:
            raise self.error(f"top_k must be less than or equal to the number of classes "
                             f"(top_k {self.top_k}, {self.dim} classes in {list(shape)})")
        top = [1] * max(3, len(shape))
        top[0], top[1], top[2] = shape[0], 2 if self.out_max_val else 1, self.top_k
        return [tuple(top)]

    def forward(self, bottom, top):
        x = bottom[0].data.reshape(self.outer, self.dim, self.inner)
        # Stable ascending sort of -x over the reversed axis: largest first, ties by the
        # larger index first -- std::greater on (value, index).
        order = np.argsort(-x[:, ::-1, :], axis=1, kind="stable")[:, :self.top_k, :]
        index = (self.dim - 1) - order
        if self.has_axis:
            y = top[0].data.reshape(self.outer, self.top_k, self.inner)
            if self.out_max_val:
                y[...] = np.take_along_axis(x, index, axis=1)
            else:
                y[...] = index
            return
        y = top[0].data.reshape(self.outer, -1)
        y[:, :self.top_k] = index[:, :, 0]
        if self.out_max_val:
            y[:, self.top_k:] = np.take_along_axis(x, index, axis=1)[:, :, 0]

    def backward(self, top, propagate_down, bottom):
        raise self.error("ArgMax has no backward (Caffe: argmax_layer.hpp Not Implemented Yet); "
                         "remove force_backward or keep the layer off paths to a loss that "
                         "need gradients")
