"""The solver types, one class per Caffe ``type``: its update rule (``ComputeUpdateValue``), its
history count and the settings it refuses (the CHECKs in Caffe's solver constructors).

Each rule turns the (normalised, regularised) gradient in ``diff`` into the step that
``Net::Update`` subtracts, in place, updating its history blobs.  The arithmetic is float32
and follows Caffe's sequence of BLAS-like calls (axpby, powx, div, ...) so results agree with
Caffe's to float rounding.  ``scratch`` is a per-param work array of the param's shape.
"""
from __future__ import annotations

import math

import numpy as np

from caffe_cae.errors import CaffeCaeError
from caffe_cae.solvers.registry import register
from caffe_cae.solvers.solver import Solver

f32 = np.float32


def decay_squares_into(h: np.ndarray, x: np.ndarray, decay: np.float32, scratch: np.ndarray) -> None:
    """``h = decay * h + (1 - decay) * x^2`` in Caffe's float32 order (powx, axpby)."""
    np.multiply(x, x, out=scratch)
    scratch *= f32(1) - decay
    h *= decay
    h += scratch


def refuse_momentum(param, where: str, solver_type: str) -> None:
    """AdaGrad's and RMSProp's ``CHECK_EQ(0, momentum)``."""
    if param.momentum != 0:
        raise CaffeCaeError(f"{where}: momentum cannot be used with {solver_type}")


@register
class SGDSolver(Solver):
    """Stochastic gradient descent with momentum: V = momentum*V + lr*g; step = V."""

    TYPE = "SGD"

    def compute_update_value(self, index, diff, history, scratch, local_rate):
        v = history[index]
        momentum = f32(self.param.momentum)
        np.multiply(v, momentum, out=v)
        np.multiply(diff, local_rate, out=scratch)
        v += scratch
        diff[...] = v


@register
class NesterovSolver(Solver):
    """Nesterov's accelerated gradient: V_new = momentum*V + lr*g;
    step = (1+momentum)*V_new - momentum*V_old."""

    TYPE = "Nesterov"

    def compute_update_value(self, index, diff, history, scratch, local_rate):
        v = history[index]
        momentum = f32(self.param.momentum)
        scratch[...] = v  # V_old
        np.multiply(v, momentum, out=v)
        diff *= local_rate
        v += diff
        np.multiply(v, f32(1) + momentum, out=diff)
        scratch *= momentum
        diff -= scratch


@register
class AdaGradSolver(Solver):
    """AdaGrad (no momentum): H += g^2; step = lr * g / (sqrt(H) + delta)."""

    TYPE = "AdaGrad"

    @classmethod
    def check_param(cls, param, where):
        refuse_momentum(param, where, cls.TYPE)

    def compute_update_value(self, index, diff, history, scratch, local_rate):
        h = history[index]
        np.multiply(diff, diff, out=scratch)
        h += scratch
        np.sqrt(h, out=scratch)
        scratch += f32(self.param.delta)
        np.divide(diff, scratch, out=diff)
        diff *= local_rate


@register
class RMSPropSolver(Solver):
    """RMSProp (no momentum): H = (1-rms_decay)*g^2 + rms_decay*H;
    step = lr * g / (sqrt(H) + delta)."""

    TYPE = "RMSProp"

    @classmethod
    def check_param(cls, param, where):
        refuse_momentum(param, where, cls.TYPE)
        if not 0 <= param.rms_decay < 1:
            raise CaffeCaeError(f"{where}: rms_decay should lie between 0 and 1 (got {param.rms_decay:g})")

    def compute_update_value(self, index, diff, history, scratch, local_rate):
        h = history[index]
        decay_squares_into(h, diff, f32(self.param.rms_decay), scratch)
        np.sqrt(h, out=scratch)
        scratch += f32(self.param.delta)
        np.divide(diff, scratch, out=diff)
        diff *= local_rate


@register
class AdaDeltaSolver(Solver):
    """Zeiler's AdaDelta (``momentum`` is the decay rate); history = [E[g^2] per param] +
    [E[dx^2] per param]."""

    TYPE = "AdaDelta"
    HISTORY_SETS = 2

    def compute_update_value(self, index, diff, history, scratch, local_rate):
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


@register
class AdamSolver(Solver):
    """Kingma & Ba's Adam (``momentum`` = beta1, ``momentum2`` = beta2, ``delta`` = epsilon);
    history = [m per param] + [v per param]; t = iter + 1."""

    TYPE = "Adam"
    HISTORY_SETS = 2

    def compute_update_value(self, index, diff, history, scratch, local_rate):
        n = len(history) // 2
        m, v = history[index], history[n + index]
        beta1 = f32(self.param.momentum)
        beta2 = f32(self.param.momentum2)
        t = self.iter + 1
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
