"""Eltwise: element-wise PROD, SUM (with per-bottom ``coeff``) or MAX over equal-shape bottoms."""
from __future__ import annotations

import numpy as np

from caffe_cae.layers.base import Layer
from caffe_cae.layers.registry import register
from caffe_cae.proto import caffe_pb2

_OP = caffe_pb2.EltwiseParameter


@register("Eltwise")
class EltwiseLayer(Layer):
    """Caffe's EltwiseLayer.

    MAX keeps the index of the winning bottom. Ties follow Caffe's CPU loop exactly: bottoms 0
    and 1 are compared with ``a > b`` (so a tie between them goes to bottom **1**), later bottoms
    replace the running maximum only when strictly greater (an earlier one keeps a tie).
    PROD's gradient uses ``stable_prod_grad`` (default true): the product of the other bottoms,
    otherwise ``top / bottom``.  In place (top == bottom 0), SUM and MAX first fill the top
    (0 / -FLT_MAX) as Caffe does, so bottom 0 drops out of the result.
    """

    min_bottoms = 2
    exact_tops = 1

    def setup(self, bottom_shapes):
        p = self.param.eltwise_param
        n = len(self.param.bottom) or len(bottom_shapes)
        if len(p.coeff) not in (0, n):
            raise self.error(f"Eltwise Layer takes one coefficient per bottom blob ({len(p.coeff)} coeff for {n} bottoms)")
        if p.operation == _OP.PROD and len(p.coeff):
            raise self.error("Eltwise layer only takes coefficients for summation.")
        self.op = p.operation
        self.coeffs = [float(c) for c in p.coeff] or [1.0] * n
        self.stable_prod_grad = p.stable_prod_grad
        self.gradient_check = "kink" if self.op == _OP.MAX else "smooth"
        return []

    def reshape(self, bottom_shapes):
        first = tuple(bottom_shapes[0])
        for i, s in enumerate(bottom_shapes[1:], 1):
            if tuple(s) != first:
                raise self.error(f"bottom {i} has shape {list(s)} but bottom 0 has shape {list(first)}; Eltwise needs equal shapes")
        return [first]

    def forward(self, bottom, top):
        y = top[0].data
        if self.op == _OP.PROD:
            np.multiply(bottom[0].data, bottom[1].data, out=y)
            for b in bottom[2:]:
                y *= b.data
        elif self.op == _OP.SUM:
            t = y.dtype.type
            if np.shares_memory(y, bottom[0].data):
                # In place (top == bottom 0): Caffe zeroes the top before accumulating
                # coeff_i * bottom_i, which wipes bottom 0 out of the sum. Reproduced.
                total = np.zeros_like(y)
            else:
                total = bottom[0].data * t(self.coeffs[0])
            for c, b in zip(self.coeffs[1:], bottom[1:]):
                total += t(c) * b.data
            y[...] = total
        else:  # MAX
            a, b = bottom[0].data, bottom[1].data
            if np.shares_memory(y, a):
                # In place: Caffe fills the top with -FLT_MAX before comparing, so bottom 0
                # reads as -FLT_MAX (like SUM's zeroing above).  Reproduced.
                a = np.full_like(y, -np.finfo(np.float32).max)
            first_wins = a > b
            self.max_idx = np.where(first_wins, 0, 1).astype(np.int32)
            best = np.where(first_wins, a, b)
            for i, blob in enumerate(bottom[2:], 2):
                better = blob.data > best
                self.max_idx[better] = i
                best = np.where(better, blob.data, best)
            y[...] = best

    def backward(self, top, propagate_down, bottom):
        dy = top[0].diff
        for i, b in enumerate(bottom):
            if not propagate_down[i]:
                continue
            if self.op == _OP.PROD:
                if self.stable_prod_grad:
                    others = [o.data for j, o in enumerate(bottom) if j != i]
                    grad = others[0].copy()
                    for o in others[1:]:
                        grad *= o
                else:
                    grad = top[0].data / b.data
                np.multiply(grad, dy, out=b.diff)
            elif self.op == _OP.SUM:
                c = self.coeffs[i]
                b.diff[...] = dy if c == 1 else dy * dy.dtype.type(c)
            else:
                b.diff[...] = np.where(self.max_idx == i, dy, 0)
