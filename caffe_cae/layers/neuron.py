"""Element-wise neuron layers: Sigmoid, TanH, ReLU, Dropout, Power, AbsVal.

One bottom, one top of the same shape.  All but AbsVal may run in place (top == bottom, the
same Blob), as in Caffe; backward formulas then read the (overwritten) bottom exactly as
Caffe's do.  Sigmoid and TanH have a fast path (cache-sized blocks on
:mod:`caffe_cae.parallel`'s threads) and, under the reference engine, the plain formula.
"""
from __future__ import annotations

import numpy as np

from caffe_cae import engine
from caffe_cae.elementwise import blockwise as _blockwise, flat_view as _flat, sigmoid, sigmoid_grad_reference
from caffe_cae.layers.base import NeuronLayer
from caffe_cae.layers.common import RandomLayerMixin
from caffe_cae.layers.registry import register
from caffe_cae.parallel import split
from caffe_cae.proto import caffe_pb2


def sigmoid_grad(y: np.ndarray, dy: np.ndarray, out: np.ndarray) -> None:
    """Caffe's SigmoidLayer backward ``top_diff * sigmoid_x * (1. - sigmoid_x)``: the first
    product in float, the double ``1.`` makes the last one double, rounded once to float.
    ``out`` may be ``dy`` (in place); the work runs in cache-sized blocks."""
    yf, dyf, of = _flat(y), _flat(dy), _flat(out)
    if engine.reference() or yf is None or dyf is None or of is None:
        sigmoid_grad_reference(y, dy, out)
        return

    def kernel(lo, hi, one_minus, product):
        np.subtract(1.0, yf[lo:hi], out=one_minus, dtype=np.float64)
        np.multiply(dyf[lo:hi], yf[lo:hi], out=product)
        one_minus *= product
        np.copyto(of[lo:hi], one_minus, casting="same_kind")

    _blockwise(yf.size, kernel, [np.float64, y.dtype])


@register("Sigmoid")
class SigmoidLayer(NeuronLayer):
    """y = 1/(1+exp(-x)), computed as Caffe does: 0.5*tanh(0.5*x) + 0.5."""

    def forward(self, bottom, top):
        sigmoid(bottom[0].data, out=top[0].data)

    def backward(self, top, propagate_down, bottom):
        if propagate_down[0]:
            sigmoid_grad(top[0].data, top[0].diff, bottom[0].diff)


@register("TanH")
class TanHLayer(NeuronLayer):
    def forward(self, bottom, top):
        x, y = bottom[0].data, top[0].data
        xf, yf = _flat(x), _flat(y)
        if engine.reference() or xf is None or yf is None:
            np.tanh(x, out=y)
            return
        split(lambda lo, hi: np.tanh(xf[lo:hi], out=yf[lo:hi]), xf.size, xf.size)

    def backward(self, top, propagate_down, bottom):
        if not propagate_down[0]:
            return
        # dx = dy * (1 - y*y) in float (Caffe's int 1), in place (dx may be dy)
        y, dy, dx = top[0].data, top[0].diff, bottom[0].diff
        yf, dyf, dxf = _flat(y), _flat(dy), _flat(dx)
        if engine.reference() or yf is None or dyf is None or dxf is None:
            dx[...] = dy * (1 - y * y)
            return

        def kernel(lo, hi, grad):
            np.multiply(yf[lo:hi], yf[lo:hi], out=grad)
            np.subtract(y.dtype.type(1), grad, out=grad)
            np.multiply(dyf[lo:hi], grad, out=dxf[lo:hi])

        _blockwise(yf.size, kernel, [y.dtype])


@register("ReLU")
class ReLULayer(NeuronLayer):
    """y = max(x, 0) + negative_slope * min(x, 0); the gradient at x == 0 is negative_slope."""

    gradient_check = "kink"

    def setup(self, bottom_shapes):
        self.negative_slope = float(self.param.relu_param.negative_slope)
        return []

    def forward(self, bottom, top):
        x = bottom[0].data
        if self.negative_slope == 0:
            np.maximum(x, 0, out=top[0].data)
        else:
            top[0].data[...] = np.where(x > 0, x, x * x.dtype.type(self.negative_slope))

    def backward(self, top, propagate_down, bottom):
        if propagate_down[0]:
            # In place, bottom.data holds y; y > 0 iff x > 0 (for slope >= 0), as in Caffe.
            x = bottom[0].data
            dy = top[0].diff
            bottom[0].diff[...] = np.where(x > 0, dy, dy * dy.dtype.type(self.negative_slope))


@register("Dropout")
class DropoutLayer(RandomLayerMixin, NeuronLayer):
    """TRAIN: keep each value with probability 1-ratio and scale it by 1/(1-ratio) (a new
    Bernoulli mask every forward, drawn from the net's seeded rng); TEST: identity.

    Two forks' options: ``sample_weights_test`` (Bayesian SegNet, alexgkendall/caffe-segnet
    dropout_layer.cpp a226039) draws the mask in TEST as in TRAIN (Monte-Carlo dropout);
    ``scale_train: false`` (rbgirshick/caffe-fast-rcnn dropout_layer.cpp 3d85336) keeps the
    values unscaled in TRAIN and multiplies them by 1 - ratio in TEST.
    """

    def __init__(self, param, phase=caffe_pb2.TEST):
        super().__init__(param, phase)
        dp = param.dropout_param
        self.random_mask = phase == caffe_pb2.TRAIN or dp.sample_weights_test
        self.scale_train = dp.scale_train
        self.identity_at_inference = not dp.sample_weights_test and dp.scale_train

    def setup(self, bottom_shapes):
        self.ratio = float(self.param.dropout_param.dropout_ratio)
        # Caffe only DCHECKs the ratio (compiled out in release builds): in TEST the layer is a
        # copy whatever the ratio, so only a random mask refuses what would draw an invalid
        # Bernoulli (or, for 1, produce NaN = 0 * inf).
        if self.random_mask and not 0.0 <= self.ratio < 1.0:
            raise self.error(f"dropout_ratio must be in [0, 1), got {self.ratio:g}")
        self.mask = None
        return []

    def factor(self, dtype):
        """What the kept values are multiplied by: Caffe's Dtype scale_ = 1/(1-ratio) with a
        random mask; 1/scale_ in TEST without scale_train; None for the identity."""
        if self.scale_train != self.random_mask:
            return None
        with np.errstate(divide="ignore"):  # ratio 1 in TEST: scale_ = inf, 1/scale_ = 0
            scale = dtype.type(np.float64(1.0) / (1.0 - self.ratio))
            return scale if self.random_mask else dtype.type(np.float64(1.0) / np.float64(scale))

    def forward(self, bottom, top):
        x = bottom[0].data
        factor = self.factor(x.dtype)
        if self.random_mask:
            self.mask = self.random().random(x.shape) >= self.ratio  # Bernoulli(1 - ratio)
            np.multiply(x, self.mask if factor is None else self.mask * factor, out=top[0].data)
        elif factor is not None:
            np.multiply(x, factor, out=top[0].data)
        elif top[0].data is not x:
            top[0].data[...] = x

    def backward(self, top, propagate_down, bottom):
        if not propagate_down[0]:
            return
        dy = top[0].diff
        factor = self.factor(dy.dtype)
        if self.random_mask:
            if self.mask is None:
                raise self.error("backward before forward (no dropout mask)")
            np.multiply(dy, self.mask if factor is None else self.mask * factor, out=bottom[0].diff)
        elif factor is not None:
            np.multiply(dy, factor, out=bottom[0].diff)
        elif bottom[0].diff is not dy:
            bottom[0].diff[...] = dy


@register("Power")
class PowerLayer(NeuronLayer):
    """y = (shift + scale*x)^power, with Caffe's special cases (constant output when
    power*scale == 0; dedicated gradients for power 1, power 2 and shift 0)."""

    def setup(self, bottom_shapes):
        p = self.param.power_param
        self.power, self.scale, self.shift = float(p.power), float(p.scale), float(p.shift)
        self.diff_scale = self.power * self.scale
        return []

    def forward(self, bottom, top):
        x, y = bottom[0].data, top[0].data
        t = x.dtype.type
        if self.diff_scale == 0:
            y[...] = t(1.0) if self.power == 0 else t(self.shift) ** t(self.power)
            return
        base = x if self.scale == 1 else x * t(self.scale)
        if self.shift != 0:
            base = base + t(self.shift)
        if self.power != 1:
            base = np.power(base, t(self.power))
        y[...] = base

    def backward(self, top, propagate_down, bottom):
        if not propagate_down[0]:
            return
        x, dx, dy = bottom[0].data, bottom[0].diff, top[0].diff
        t = x.dtype.type
        if self.diff_scale == 0 or self.power == 1:
            dx[...] = t(self.diff_scale)
        elif self.power == 2:  # dy/dx = diff_scale*scale*x + diff_scale*shift
            # Caffe multiplies the float members: float(float(power*scale) * scale)
            grad = (t(self.diff_scale) * t(self.scale)) * x
            if self.shift != 0:
                grad += t(self.diff_scale) * t(self.shift)
            dx[...] = grad
        elif self.shift == 0:  # dy/dx = power * y / x
            dx[...] = top[0].data / x * t(self.power)
        else:  # dy/dx = diff_scale * y / (shift + scale*x)
            base = x * t(self.scale) if self.scale != 1 else x.copy()
            base += t(self.shift)
            grad = top[0].data / base
            if self.diff_scale != 1:
                grad *= t(self.diff_scale)
            dx[...] = grad
        if self.diff_scale != 0:
            dx *= dy


@register("AbsVal")
class AbsValLayer(NeuronLayer):
    """y = |x|; gradient sign(x) (0 at 0). Caffe refuses in-place AbsVal."""

    gradient_check = "kink"

    def setup(self, bottom_shapes):
        if self.param.top and self.param.bottom and self.param.top[0] == self.param.bottom[0]:
            raise self.error("AbsVal layer does not allow in-place computation")
        return []

    def forward(self, bottom, top):
        np.abs(bottom[0].data, out=top[0].data)

    def backward(self, top, propagate_down, bottom):
        if propagate_down[0]:
            np.multiply(np.sign(bottom[0].data), top[0].diff, out=bottom[0].diff)
