"""The per-parameter update rules of Caffe's SGD-family solvers (``*Solver::ComputeUpdateValue``).

Each rule turns the (normalised, regularised) gradient in ``diff`` into the step that
``Net::Update`` subtracts, in place, updating its history blobs.  The arithmetic is float32
and follows Caffe's sequence of BLAS-like calls (axpby, powx, div, ...) so results agree with
Caffe's to float rounding.  ``scratch`` is a per-param work array of the param's shape.
"""
from __future__ import annotations

import math

import numpy as np

f32 = np.float32


def decay_squares_into(h: np.ndarray, x: np.ndarray, decay: np.float32, scratch: np.ndarray) -> None:
    """``h = decay * h + (1 - decay) * x^2`` in Caffe's float32 order (powx, axpby)."""
    np.multiply(x, x, out=scratch)
    scratch *= f32(1) - decay
    h *= decay
    h += scratch


class UpdateRule:
    """Base: how many history blobs per learnable param and the update itself."""

    #: history blobs = n_history_sets x learnable params (AdaDelta, Adam: 2)
    n_history_sets = 1

    def __init__(self, param):
        self.param = param

    def apply(self, index: int, diff: np.ndarray, history: list[np.ndarray], scratch: np.ndarray,
              local_rate: np.float32, it: int) -> None:
        raise NotImplementedError


class SGDRule(UpdateRule):
    """V = momentum*V + lr*g; step = V."""

    def apply(self, index, diff, history, scratch, local_rate, it):
        v = history[index]
        momentum = f32(self.param.momentum)
        np.multiply(v, momentum, out=v)
        np.multiply(diff, local_rate, out=scratch)
        v += scratch
        diff[...] = v


class NesterovRule(UpdateRule):
    """V_new = momentum*V + lr*g; step = (1+momentum)*V_new - momentum*V_old."""

    def apply(self, index, diff, history, scratch, local_rate, it):
        v = history[index]
        momentum = f32(self.param.momentum)
        scratch[...] = v  # V_old
        np.multiply(v, momentum, out=v)
        diff *= local_rate
        v += diff
        np.multiply(v, f32(1) + momentum, out=diff)
        scratch *= momentum
        diff -= scratch


class AdaGradRule(UpdateRule):
    """H += g^2; step = lr * g / (sqrt(H) + delta)."""

    def apply(self, index, diff, history, scratch, local_rate, it):
        h = history[index]
        np.multiply(diff, diff, out=scratch)
        h += scratch
        np.sqrt(h, out=scratch)
        scratch += f32(self.param.delta)
        np.divide(diff, scratch, out=diff)
        diff *= local_rate


class RMSPropRule(UpdateRule):
    """H = (1-rms_decay)*g^2 + rms_decay*H; step = lr * g / (sqrt(H) + delta)."""

    def apply(self, index, diff, history, scratch, local_rate, it):
        h = history[index]
        decay_squares_into(h, diff, f32(self.param.rms_decay), scratch)
        np.sqrt(h, out=scratch)
        scratch += f32(self.param.delta)
        np.divide(diff, scratch, out=diff)
        diff *= local_rate


class AdaDeltaRule(UpdateRule):
    """Zeiler's AdaDelta; history = [E[g^2] per param] + [E[dx^2] per param]."""

    n_history_sets = 2

    def apply(self, index, diff, history, scratch, local_rate, it):
        n = len(history) // 2
        g2, dx2 = history[index], history[n + index]
        momentum = f32(self.param.momentum)
        delta = f32(self.param.delta)
        decay_squares_into(g2, diff, momentum, scratch)
        # update = sqrt((E[dx^2] + delta) / (E[g^2] + delta))
        np.add(dx2, delta, out=scratch)
        scratch /= g2 + delta
        np.sqrt(scratch, out=scratch)
        diff *= scratch
        decay_squares_into(dx2, diff, momentum, scratch)
        diff *= local_rate


class AdamRule(UpdateRule):
    """Kingma & Ba; history = [m per param] + [v per param]; t = iter + 1."""

    n_history_sets = 2

    def apply(self, index, diff, history, scratch, local_rate, it):
        n = len(history) // 2
        m, v = history[index], history[n + index]
        beta1 = f32(self.param.momentum)
        beta2 = f32(self.param.momentum2)
        t = it + 1
        # pow(float, int) is double in C++; the quotient is stored as float.
        correction = f32(math.sqrt(1.0 - math.pow(float(beta2), t)) / (1.0 - math.pow(float(beta1), t)))
        m *= beta1
        np.multiply(diff, f32(1) - beta1, out=scratch)
        m += scratch
        decay_squares_into(v, diff, beta2, scratch)
        np.sqrt(v, out=scratch)
        scratch += f32(self.param.delta)
        np.divide(m, scratch, out=diff)
        diff *= f32(local_rate * correction)


RULES = {
    "SGD": SGDRule,
    "Nesterov": NesterovRule,
    "AdaGrad": AdaGradRule,
    "RMSProp": RMSPropRule,
    "AdaDelta": AdaDeltaRule,
    "Adam": AdamRule,
}
