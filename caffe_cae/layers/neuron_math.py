"""Element-wise neuron layers with a formula: ELU, BNLL, Exp, Log, Threshold, Clip, Swish.

One bottom, one top of the same shape.  Caffe refuses none of them in place; as in Caffe, a
backward that reads the bottom then reads the overwritten values (exact for ELU, whose sign
survives, and for Exp and Swish, whose backward reads only the top).

Where Caffe's C++ evaluates a formula in double (``exp``/``log`` of a promoted float, double
literals such as ``1.``), it is evaluated in float64 here and rounded once to the blob's dtype;
where Caffe runs float BLAS steps (``caffe_scal``, ``caffe_add_scalar``), they are done in the
blob's dtype, step by step.
"""
from __future__ import annotations

import math

import numpy as np

from caffe_cae.elementwise import blockwise, flat_view, sigmoid
from caffe_cae.layers.base import NeuronLayer
from caffe_cae.layers.registry import register

F32 = np.float32


def ieee():
    """inf/nan results without warnings, as in C++."""
    return np.errstate(over="ignore", divide="ignore", invalid="ignore")


def in_double(out: np.ndarray, formula, *inputs: np.ndarray) -> None:
    """``out[...] = formula(*inputs in float64)``, rounded once to ``out``'s dtype, in
    cache-sized blocks shared out to the threads (``out`` may be one of the inputs).
    Overflow, log(0) and the like give inf/nan silently, as in C++."""
    flat = [flat_view(a) for a in (out,) + inputs]
    if any(f is None for f in flat):
        with ieee():
            out[...] = formula(*(a.astype(np.float64) for a in inputs))
        return
    result, *sources = flat

    def kernel(lo, hi):
        with ieee():  # per block: NumPy's error state does not pass on to the worker threads
            result[lo:hi] = formula(*(f[lo:hi].astype(np.float64) for f in sources))

    blockwise(result.size, kernel, [])


def _as(dtype, value) -> np.generic:
    """A Caffe ``Dtype`` member: the float parameter rounded to the blob's dtype."""
    return np.dtype(dtype).type(value)


@register("ELU")
class ELULayer(NeuronLayer):
    """y = max(x, 0) + alpha * (exp(min(x, 0)) - 1); dy/dx = 1 for x > 0, else alpha + y."""

    def setup(self, bottom_shapes):
        self.alpha = float(F32(self.param.elu_param.alpha))
        return []

    def forward(self, bottom, top):
        def elu(x):
            y = np.exp(np.minimum(x, 0.0)) - 1.0  # exp(..) - 1, not expm1: as Caffe
            y *= self.alpha
            y += np.maximum(x, 0.0)
            return y

        in_double(top[0].data, elu, bottom[0].data)

    def backward(self, top, propagate_down, bottom):
        if not propagate_down[0]:
            return
        x, y, dy = bottom[0].data, top[0].data, top[0].diff
        # (x > 0) + (alpha + y) * (x <= 0), in Dtype
        grad = np.where(x > 0, y.dtype.type(1), _as(y.dtype, self.alpha) + y)
        np.multiply(dy, grad, out=bottom[0].diff)


@register("BNLL")
class BNLLLayer(NeuronLayer):
    """y = log(1 + exp(x)), as x + log(1 + exp(-x)) for x > 0; dy/dx = e / (e + 1) with
    e = exp(min(x, 50))."""

    THRESHOLD = 50.0  # Caffe's kBNLL_THRESHOLD

    def forward(self, bottom, top):
        def bnll(x):
            # both branches of Caffe's formula: max(x, 0) + log(1. + exp(-|x|)) (log, not
            # log1p: 1 + exp(x) rounds to 1 below x = -37, so y is 0 there, as in Caffe)
            y = np.log(1.0 + np.exp(-np.abs(x)))
            y += np.maximum(x, 0.0)
            return y

        in_double(top[0].data, bnll, bottom[0].data)

    def backward(self, top, propagate_down, bottom):
        if not propagate_down[0]:
            return

        def grad(x, dy):  # top_diff * expval / (expval + 1.), in double
            e = np.exp(np.minimum(x, self.THRESHOLD))
            dy *= e
            dy /= e + 1.0
            return dy

        in_double(bottom[0].diff, grad, bottom[0].data, top[0].diff)


def _log_of_base(layer: NeuronLayer, base: float) -> float:
    """Caffe's ``log_base`` of Exp/Log: 1 for base -1 (= e), else log(base) > 0 checked."""
    if base == -1.0:
        return 1.0
    if not base > 0:
        raise layer.error(f"base must be strictly positive, got {base:g}")
    log_base = float(F32(math.log(base))) if math.isfinite(base) else math.inf
    if math.isinf(log_base):
        raise layer.error(f"Inf result: log(base) = log({base:g}) = inf")
    return log_base


@register("Exp")
class ExpLayer(NeuronLayer):
    """y = base^(shift + scale * x) computed as outer * exp(inner * x), with inner =
    log(base) * scale and outer = base^shift (e^shift for base -1); dy/dx = inner * y."""

    def setup(self, bottom_shapes):
        p = self.param.exp_param
        base, scale, shift = float(F32(p.base)), float(F32(p.scale)), float(F32(p.shift))
        log_base = _log_of_base(self, base)
        self.inner_scale = float(F32(log_base) * F32(scale))
        if shift == 0:
            self.outer_scale = 1.0
        else:
            with ieee():
                outer = np.exp(shift) if base == -1.0 else np.power(base, shift)
                self.outer_scale = float(F32(outer))
        return []

    def forward(self, bottom, top):
        x = bottom[0].data
        with ieee():
            if self.inner_scale != 1:
                x = x * _as(x.dtype, self.inner_scale)  # caffe_cpu_scale, in Dtype
            in_double(top[0].data, np.exp, x)
            if self.outer_scale != 1:
                top[0].data *= _as(x.dtype, self.outer_scale)

    def backward(self, top, propagate_down, bottom):
        if not propagate_down[0]:
            return
        dx = bottom[0].diff
        with ieee():
            np.multiply(top[0].data, top[0].diff, out=dx)
            if self.inner_scale != 1:
                dx *= _as(dx.dtype, self.inner_scale)


@register("Log")
class LogLayer(NeuronLayer):
    """y = log_base(shift + scale * x) (natural log for base -1); dy/dx = scale / log(base) /
    (shift + scale * x)."""

    def setup(self, bottom_shapes):
        p = self.param.log_param
        base = float(F32(p.base))
        log_base = _log_of_base(self, base)
        if log_base == 0:
            raise self.error(f"Inf result: 1/log(base) = 1/log({base:g}) = inf")
        self.base_scale = float(F32(1) / F32(log_base))
        self.input_scale, self.input_shift = float(F32(p.scale)), float(F32(p.shift))
        self.backward_num_scale = float(F32(self.input_scale) / F32(log_base))
        return []

    def _shifted(self, x):
        """shift + scale * x, in Dtype, the way Caffe's caffe_scal / caffe_add_scalar do."""
        t = x.dtype.type
        if self.input_scale != 1:
            x = x * t(self.input_scale)
        if self.input_shift != 0:
            x = x + t(self.input_shift)
        return x

    def forward(self, bottom, top):
        with ieee():
            x = self._shifted(bottom[0].data)
            in_double(top[0].data, np.log, x)
            if self.base_scale != 1:
                top[0].data *= _as(x.dtype, self.base_scale)

    def backward(self, top, propagate_down, bottom):
        if not propagate_down[0]:
            return
        dx = bottom[0].diff
        with ieee():
            x = self._shifted(bottom[0].data)
            np.divide(x.dtype.type(1), x, out=dx)  # caffe_powx(.., -1)
            if self.backward_num_scale != 1:
                dx *= _as(dx.dtype, self.backward_num_scale)
            dx *= top[0].diff


@register("Threshold")
class ThresholdLayer(NeuronLayer):
    """y = 1 where x > threshold (strictly), else 0.  No backward: Caffe aborts."""

    #: Caffe's Backward_cpu aborts whenever the Net runs it, whatever propagate_down says.
    backward_ignores_propagate_down = True

    def setup(self, bottom_shapes):
        self.threshold = float(F32(self.param.threshold_param.threshold))
        return []

    def forward(self, bottom, top):
        x = bottom[0].data
        np.greater(x, _as(x.dtype, self.threshold), out=top[0].data, casting="unsafe")

    def backward(self, top, propagate_down, bottom):
        raise self.error("Threshold has no backward (Caffe: threshold_layer.hpp Not Implemented "
                         "Yet); remove force_backward or keep the layer off paths to a loss "
                         "that need gradients")


@register("Clip")
class ClipLayer(NeuronLayer):
    """y = max(min, min(x, max)) (std::min/std::max: a NaN input gives min); the diff passes
    where min <= x <= max (inclusive)."""

    gradient_check = "kink"

    def setup(self, bottom_shapes):
        p = self.param.clip_param
        self.min, self.max = float(F32(p.min)), float(F32(p.max))
        return []

    def forward(self, bottom, top):
        x = bottom[0].data
        t = x.dtype.type
        low, high = t(self.min), t(self.max)
        inner = np.where(high < x, high, x)  # std::min(x, max)
        top[0].data[...] = np.where(low < inner, inner, low)  # std::max(min, .)

    def backward(self, top, propagate_down, bottom):
        if not propagate_down[0]:
            return
        x = bottom[0].data
        t = x.dtype.type
        inside = (x >= t(self.min)) & (x <= t(self.max))
        np.multiply(top[0].diff, inside, out=bottom[0].diff)


@register("Swish")
class SwishLayer(NeuronLayer):
    """y = x * sigmoid(beta * x) (Caffe's double sigmoid of the float beta * x);
    dy/dx = beta * y + s * (1 - beta * y) with s = sigmoid(beta * x) kept from the forward."""

    def setup(self, bottom_shapes):
        self.beta = float(F32(self.param.swish_param.beta))
        self.sigmoid_output = None
        return []

    def forward(self, bottom, top):
        x = bottom[0].data
        s = sigmoid(x * _as(x.dtype, self.beta))  # caffe_scal, then the sigmoid layer
        self.sigmoid_output = s
        np.multiply(x, s, out=top[0].data)

    def backward(self, top, propagate_down, bottom):
        if not propagate_down[0]:
            return
        if self.sigmoid_output is None:
            raise self.error("backward before forward")
        y, dy = top[0].data, top[0].diff
        beta_y = _as(y.dtype, self.beta) * y  # float
        grad = np.subtract(1.0, beta_y, dtype=np.float64)  # the double literal 1.
        grad *= self.sigmoid_output
        grad += beta_y
        grad *= dy
        bottom[0].diff[...] = grad
