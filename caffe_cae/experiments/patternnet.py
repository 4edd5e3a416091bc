"""Matlab's ``patternnet`` as the 2019 paper used it (Sec. 4.2), in NumPy.

The paper: ``patternnet()`` with one hidden layer (14 / 42 / 66 units for 2- / 10- / 30-D codes),
``train()`` with ``trainscg``, goal 1e-10, min_grad 1e-10, 6000 epochs, 6000 validation checks.
Everything it did not set is patternnet's default, and this module follows those defaults:

* inputs: ``removeconstantrows`` then ``mapminmax`` to [-1, 1], both configured on the data
  handed to ``train`` (the fold's training codes); other data is mapped with those settings;
* ``dividerand`` 70 / 15 / 15: only 70 % of the codes handed to ``train`` train the weights, 15 %
  validate, 15 % are Matlab's own test subset (unused here);
* hidden layer ``tansig`` (= tanh; the paper's "sigmoid" is Matlab's name for the family),
  output ``softmax``, performance ``crossentropy`` = sum(-t log y) over the N x K target elements
  divided by their number;
* weights: ``initnw`` (Nguyen-Widrow) for the tansig layer, uniform [-1, 1] (``rands``) for the
  softmax layer, whose active input range is unbounded;
* training stops at ``epochs``, ``goal``, ``min_grad`` or ``max_fail`` consecutive validation
  failures, and returns the weights of the epoch with the lowest validation performance (Matlab
  returns that network, not the last one).  With max_fail = epochs = 6000 the training runs its
  6000 epochs (early stopping is off) but the returned network is still the validation-best one.

``trainscg`` is Moller's (1993) scaled conjugate gradient with Matlab's sigma = 5e-5 and
lambda = 5e-7; scikit-learn has no SCG, so it is implemented here (:func:`scg`).  ``trainer=
"lbfgs"`` swaps in SciPy's L-BFGS-B with the same validation bookkeeping (one L-BFGS iteration
counts as one epoch); it converges in fewer epochs but to a different point, so errors differ.
Matlab's random streams cannot be reproduced: the initial weights and the 70/15/15 division are
drawn from NumPy's generator, seeded.
"""
from __future__ import annotations

import dataclasses
import time

import numpy as np

from caffe_cae.errors import CaffeCaeError

TRAINERS = ("scg", "lbfgs")


@dataclasses.dataclass(frozen=True)
class TrainParam:
    """``net.trainParam`` as the paper set it (defaults otherwise)."""

    epochs: int = 6000
    goal: float = 1e-10
    min_grad: float = 1e-10
    max_fail: int = 6000
    sigma: float = 5e-5        # trainscg: weight change for the second-derivative estimate
    lam: float = 5e-7          # trainscg: lambda, regulates the indefiniteness of the Hessian
    divide: tuple = (0.70, 0.15, 0.15)


# ------------------------------------------------------------------------------------------
# input processing


@dataclasses.dataclass
class MapMinMax:
    """``removeconstantrows`` + ``mapminmax`` settings: features kept and their [min, max]."""

    keep: np.ndarray
    low: np.ndarray
    high: np.ndarray

    @classmethod
    def fit(cls, x: np.ndarray) -> "MapMinMax":
        low, high = x.min(axis=0), x.max(axis=0)
        keep = high > low
        if not keep.any():
            raise CaffeCaeError("every code feature is constant: nothing for the MLP to learn from")
        return cls(keep, low[keep], high[keep])

    def apply(self, x: np.ndarray) -> np.ndarray:
        """Map each kept feature's [min, max] onto [-1, 1] (values outside map outside)."""
        x = x[:, self.keep]
        return 2.0 * (x - self.low) / (self.high - self.low) - 1.0


def divide_rand(n: int, ratios, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``dividerand``: a random permutation cut into train / validation / test by ``ratios``."""
    order = rng.permutation(n)
    n_val = int(round(ratios[1] * n))
    n_test = int(round(ratios[2] * n))
    n_train = n - n_val - n_test
    return order[:n_train], order[n_train:n_train + n_val], order[n_train + n_val:]


# ------------------------------------------------------------------------------------------
# the two-layer network on a flat parameter vector


class Network:
    """tansig hidden layer, softmax output; parameters packed as [W1, b1, W2, b2] in one vector."""

    def __init__(self, inputs: int, hidden: int, classes: int):
        self.shapes = [(inputs, hidden), (hidden,), (hidden, classes), (classes,)]
        self.sizes = [int(np.prod(s)) for s in self.shapes]
        self.size = sum(self.sizes)

    def unpack(self, w: np.ndarray) -> list[np.ndarray]:
        parts, start = [], 0
        for shape, size in zip(self.shapes, self.sizes):
            parts.append(w[start:start + size].reshape(shape))
            start += size
        return parts

    def init(self, rng: np.random.Generator) -> np.ndarray:
        """``initnw`` for the tansig layer (inputs in [-1, 1]), ``rands`` for the softmax layer."""
        inputs, hidden = self.shapes[0]
        directions = rng.uniform(-1.0, 1.0, size=(hidden, inputs))
        directions /= np.linalg.norm(directions, axis=1, keepdims=True)
        magnitude = 0.7 * hidden ** (1.0 / inputs)
        w1 = magnitude * directions
        b1 = magnitude * np.linspace(-1.0, 1.0, hidden) * np.sign(w1[:, 0]) if hidden > 1 else np.zeros(1)
        # tansig's active input range [-2, 2]: scale by its half width 2, centre 0.
        w1, b1 = 2.0 * w1, 2.0 * b1
        classes = self.shapes[2][1]
        w2 = rng.uniform(-1.0, 1.0, size=(classes, hidden))
        b2 = rng.uniform(-1.0, 1.0, size=classes)
        return np.concatenate([w1.T.ravel(), b1, w2.T.ravel(), b2])

    def forward(self, w: np.ndarray, x: np.ndarray):
        w1, b1, w2, b2 = self.unpack(w)
        h = np.tanh(x @ w1 + b1)
        z = h @ w2 + b2
        z -= z.max(axis=1, keepdims=True)
        e = np.exp(z)
        return h, e / e.sum(axis=1, keepdims=True)

    def predict_proba(self, w: np.ndarray, x: np.ndarray) -> np.ndarray:
        return self.forward(w, x)[1]

    @staticmethod
    def perf(y: np.ndarray, t: np.ndarray) -> float:
        """Matlab's ``crossentropy``: mean of -t log(y) over all N x K target elements."""
        return float(-(t * np.log(np.maximum(y, np.finfo(float).tiny))).sum() / t.size)

    def perf_grad(self, w: np.ndarray, x: np.ndarray, t: np.ndarray) -> tuple[float, np.ndarray]:
        w1, b1, w2, b2 = self.unpack(w)
        h, y = self.forward(w, x)
        dz = (y - t) / t.size                   # softmax + cross-entropy, per target element
        dh = (dz @ w2.T) * (1.0 - h * h)
        grad = np.concatenate([(x.T @ dh).ravel(), dh.sum(axis=0), (h.T @ dz).ravel(), dz.sum(axis=0)])
        return self.perf(y, t), grad


# ------------------------------------------------------------------------------------------
# training


@dataclasses.dataclass
class TrainRecord:
    """What ``train`` returns in Matlab's ``tr``: epochs run, best epoch, why it stopped."""

    epochs: int
    best_epoch: int
    best_vperf: float
    perf: float
    stop: str
    seconds: float


class _Validation:
    """Matlab's validation bookkeeping: best network so far and consecutive failures."""

    def __init__(self, vperf_fn, w0):
        self.vperf_fn = vperf_fn
        self.best_w, self.best_vperf, self.best_epoch = w0.copy(), vperf_fn(w0), 0
        self.fails = 0

    def check(self, w: np.ndarray, epoch: int) -> None:
        vperf = self.vperf_fn(w)
        if vperf < self.best_vperf:
            self.best_w, self.best_vperf, self.best_epoch, self.fails = w.copy(), vperf, epoch, 0
        elif vperf > self.best_vperf:
            self.fails += 1


def scg(fg, w: np.ndarray, param: TrainParam, validation: _Validation) -> tuple[np.ndarray, int, str]:
    """Moller's scaled conjugate gradient (as ``trainscg``): returns (w, epochs run, stop reason).

    ``fg(w) -> (perf, gradient)``.  One epoch = one SCG iteration, successful or not.
    """
    n = w.size
    perf, grad = fg(w)
    r = -grad
    p = r.copy()
    lam, lam_bar, success, delta = param.lam, 0.0, True, 0.0
    p_norm2 = 0.0
    for epoch in range(param.epochs + 1):
        if perf <= param.goal:
            return w, epoch, "goal"
        if np.sqrt(grad @ grad) < param.min_grad:
            return w, epoch, "min_grad"
        if validation.fails >= param.max_fail:
            return w, epoch, "max_fail"
        if epoch == param.epochs:
            return w, epoch, "epochs"
        if success:   # second-order information along p
            p_norm2 = float(p @ p)
            sigma = param.sigma / np.sqrt(p_norm2)
            delta = float(p @ (fg(w + sigma * p)[1] - grad)) / sigma
        delta += (lam - lam_bar) * p_norm2          # scale: make the Hessian estimate positive
        if delta <= 0:
            lam_bar = 2.0 * (lam - delta / p_norm2)
            delta = -delta + lam * p_norm2
            lam = lam_bar
        mu = float(p @ r)
        alpha = mu / delta
        w_new = w + alpha * p
        perf_new, grad_new = fg(w_new)
        comparison = 2.0 * delta * (perf - perf_new) / (mu * mu)
        if comparison >= 0:                          # the step reduced the error: take it
            w, perf, r_old = w_new, perf_new, r
            grad = grad_new
            r = -grad
            lam_bar, success = 0.0, True
            if (epoch + 1) % n == 0:
                p = r.copy()
            else:
                beta = (float(r @ r) - float(r @ r_old)) / mu
                p = r + beta * p
            if comparison >= 0.75:
                lam *= 0.25
        else:
            lam_bar, success = lam, False
        if comparison < 0.25:
            lam += delta * (1.0 - comparison) / p_norm2
        validation.check(w, epoch + 1)
    return w, param.epochs, "epochs"   # not reached


def lbfgs(fg, w: np.ndarray, param: TrainParam, validation: _Validation) -> tuple[np.ndarray, int, str]:
    """SciPy's L-BFGS-B with the validation bookkeeping after every iteration."""
    from scipy.optimize import minimize

    epochs = [0]

    def callback(xk):
        epochs[0] += 1
        validation.check(xk, epochs[0])
        if validation.fails >= param.max_fail:
            raise StopIteration

    try:
        result = minimize(fg, w, jac=True, method="L-BFGS-B", callback=callback,
                          options={"maxiter": param.epochs, "gtol": param.min_grad, "ftol": 0.0,
                                   "maxfun": 10 * param.epochs})
        return result.x, epochs[0], "lbfgs: " + str(result.message)
    except StopIteration:
        return validation.best_w, epochs[0], "max_fail"


class PatternNet:
    """``patternnet(hidden)`` + ``train`` + ``net(x)`` with the paper's settings (a scikit-learn-like
    estimator: ``fit(x, labels)``, ``predict(x)``)."""

    def __init__(self, hidden: int, param: TrainParam = TrainParam(), trainer: str = "scg", seed: int = 0):
        if trainer not in TRAINERS:
            raise CaffeCaeError(f"unknown MLP trainer {trainer!r} (known: {', '.join(TRAINERS)})")
        self.hidden, self.param, self.trainer, self.seed = hidden, param, trainer, seed

    def fit(self, x: np.ndarray, labels: np.ndarray) -> "PatternNet":
        started = time.perf_counter()
        rng = np.random.default_rng(self.seed)
        x = np.asarray(x, dtype=np.float64).reshape(len(x), -1)
        self.classes_, index = np.unique(np.asarray(labels), return_inverse=True)
        targets = np.eye(len(self.classes_))[index]
        self.mapping = MapMinMax.fit(x)
        xm = self.mapping.apply(x)
        train, val, _test = divide_rand(len(xm), self.param.divide, rng)
        self.network = Network(xm.shape[1], self.hidden, len(self.classes_))
        w0 = self.network.init(rng)
        xt, tt = xm[train], targets[train]
        xv, tv = xm[val], targets[val]

        def fg(w):
            return self.network.perf_grad(w, xt, tt)

        def vperf(w):
            return self.network.perf(self.network.predict_proba(w, xv), tv) if len(val) else 0.0

        validation = _Validation(vperf, w0)
        run = scg if self.trainer == "scg" else lbfgs
        w, epochs, stop = run(fg, w0, self.param, validation)
        self.weights = validation.best_w if len(val) else w
        self.record = TrainRecord(epochs=epochs, best_epoch=validation.best_epoch,
                                  best_vperf=validation.best_vperf, perf=fg(self.weights)[0], stop=stop,
                                  seconds=round(time.perf_counter() - started, 2))
        return self

    def predict(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64).reshape(len(x), -1)
        proba = self.network.predict_proba(self.weights, self.mapping.apply(x))
        return self.classes_[np.argmax(proba, axis=1)]
