"""Caffe's learning-rate policies (``SGDSolver::GetLearningRate``), computed like Caffe does.

Precision follows C++ overload rules: ``pow(float, int)`` (step, exp, multistep) is a double
and the product with the float ``base_lr`` is rounded once; ``pow(float, float)`` and
``exp(float)`` (inv, poly, sigmoid) are float results multiplied in float.  This reproduces
Caffe's rates bit for bit (checked against the golden ``iter_lr`` of every policy).
"""
from __future__ import annotations

import math

import numpy as np

from caffe_cae.errors import CaffeCaeError

POLICIES = ("fixed", "step", "exp", "inv", "multistep", "poly", "sigmoid")

f32 = np.float32


def _pow(base: float, exponent: float) -> float:
    """C's ``pow``: NaN/inf instead of Python's domain errors (e.g. poly past ``max_iter``)."""
    try:
        return math.pow(base, exponent)
    except (ValueError, OverflowError):
        with np.errstate(all="ignore"):
            return float(np.power(np.float64(base), np.float64(exponent)))


def _exp(x: float) -> float:
    try:
        return math.exp(x)
    except OverflowError:
        return math.inf


def check_policy(param, where: str = "solver") -> None:
    """Refuse an unknown policy or the settings Caffe CHECKs, before training starts."""
    policy = param.lr_policy
    if policy not in POLICIES:
        shown = f"'{policy}'" if policy else "(none given)"
        raise CaffeCaeError(
            f"{where}: unknown lr_policy {shown}; known: {', '.join(POLICIES)}"
        )
    if policy in ("step", "sigmoid") and param.stepsize <= 0:
        raise CaffeCaeError(f"{where}: lr_policy '{policy}' needs stepsize > 0 (got {param.stepsize})")
    if policy in ("step", "exp", "inv", "multistep", "sigmoid") and param.gamma < 0:
        raise CaffeCaeError(f"{where}: lr_policy '{policy}' needs gamma >= 0 (got {param.gamma:g})")
    if policy == "poly" and param.max_iter <= 0:
        raise CaffeCaeError(f"{where}: lr_policy 'poly' needs max_iter > 0")


def multistep_current_step(param, it: int, current_step: int) -> int:
    """Caffe's multistep advance: at most one step per call, when ``it >= stepvalue[step]``."""
    if current_step < len(param.stepvalue) and it >= param.stepvalue[current_step]:
        return current_step + 1
    return current_step


def learning_rate(param, it: int, current_step: int = 0) -> tuple[np.float32, int]:
    """``(rate, current_step)`` for update number ``it`` (0-based), as ``GetLearningRate``.

    ``current_step`` is the solver's state; "step" recomputes it, "multistep" may advance it,
    other policies leave it unchanged.
    """
    with np.errstate(over="ignore", invalid="ignore"):  # NaN/inf rates as in C, no warnings
        return _learning_rate(param, it, current_step)


def _learning_rate(param, it: int, current_step: int) -> tuple[np.float32, int]:
    policy = param.lr_policy
    base_lr = f32(param.base_lr)
    gamma = f32(param.gamma)
    if policy == "fixed":
        rate = base_lr
    elif policy == "step":
        current_step = it // param.stepsize
        rate = float(base_lr) * _pow(float(gamma), current_step)
    elif policy == "exp":
        rate = float(base_lr) * _pow(float(gamma), it)
    elif policy == "inv":
        inner = f32(1) + gamma * f32(it)
        rate = base_lr * f32(_pow(float(inner), -float(f32(param.power))))
    elif policy == "multistep":
        current_step = multistep_current_step(param, it, current_step)
        rate = float(base_lr) * _pow(float(gamma), current_step)
    elif policy == "poly":
        frac = f32(1) - f32(it) / f32(param.max_iter)
        rate = base_lr * f32(_pow(float(frac), float(f32(param.power))))
    elif policy == "sigmoid":
        arg = -gamma * (f32(it) - f32(param.stepsize))
        rate = base_lr * (f32(1) / (f32(1) + f32(_exp(float(arg)))))
    else:
        check_policy(param)
        raise AssertionError("unreachable")
    return f32(rate), current_step
