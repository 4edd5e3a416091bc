"""The classification protocols that turn a code into Table 4's error columns.

``paper`` — the 2019 paper's Matlab protocol, as faithfully as it can be rebuilt:

* linear: ``classify(sample, training, group)`` = linear discriminant analysis with a pooled
  covariance estimate and, Matlab's default, *equal* prior probabilities (scikit-learn's
  ``LinearDiscriminantAnalysis`` with uniform ``priors``; its SVD solver scales the pooled
  covariance by 1/(n - classes) like ``classify``);
* MLP: ``patternnet`` trained with ``trainscg`` and the paper's parameters
  (:mod:`caffe_cae.experiments.patternnet`);
* stratified 10-fold cross-validation over the codes of the 10000 test digits; the error of a
  fold is its average per-class error, the protocol's error the mean over the folds.

``sklearn`` — the variant caffe-cae used first, kept for comparison: LDA with empirical priors,
scikit-learn's ``MLPClassifier`` (logistic hidden layer, L-BFGS, all of the fold's training codes,
no validation split), error over the pooled out-of-fold predictions
(:mod:`caffe_cae.experiments.evaluate`).

Both report the per-class errors (pooled over the folds) next to the average.
"""
from __future__ import annotations

import logging
import time
import warnings

import numpy as np

from caffe_cae.errors import CaffeCaeError
from caffe_cae.experiments import evaluate as evaluate_mod
from caffe_cae.experiments import patternnet

log = logging.getLogger(__name__)

PROTOCOLS = ("paper", "sklearn")


class Stopped(Exception):
    """The ``stop`` test of :func:`evaluate` became true (checked before every fold)."""


def per_class_errors(y_true: np.ndarray, y_pred: np.ndarray, classes: np.ndarray) -> list[float]:
    """Error rate (%) of every class in ``classes`` (classes absent from ``y_true``: NaN)."""
    return [100.0 * float(np.mean(y_pred[y_true == c] != c)) if np.any(y_true == c) else float("nan")
            for c in classes]


class _UniformPriorLDA:
    """Matlab ``classify`` (type 'linear', default prior): LDA with equal class priors."""

    def fit(self, x, y):
        from sklearn.discriminant_analysis import LinearDiscriminantAnalysis

        classes = np.unique(y)
        self.model = LinearDiscriminantAnalysis(solver="svd", priors=np.full(len(classes), 1.0 / len(classes)))
        self.model.fit(x, y)
        return self

    def predict(self, x):
        return self.model.predict(x)


def make_model(protocol: str, kind: str, code_dim: int, samples: int, seed: int, mlp_epochs: int,
               mlp_trainer: str, mlp_max_iter: int):
    if protocol == "sklearn":
        return evaluate_mod.make_classifier(kind, code_dim, samples, seed, mlp_max_iter)
    if protocol != "paper":
        raise CaffeCaeError(f"unknown protocol {protocol!r} (known: {', '.join(PROTOCOLS)})")
    if kind == "linear":
        return _UniformPriorLDA()
    param = patternnet.TrainParam(epochs=mlp_epochs, max_fail=mlp_epochs)
    return patternnet.PatternNet(evaluate_mod.mlp_hidden_units(code_dim, samples), param, mlp_trainer, seed)


def cross_validate(codes: np.ndarray, labels: np.ndarray, make, folds: int = 10, seed: int = 0, stop=None) -> dict:
    """Stratified ``folds``-fold cross-validation of the estimators ``make(fold)`` returns.

    Returns ``error`` (mean over folds of the fold's average per-class error, %),
    ``pooled_error`` (average per-class error of all out-of-fold predictions together),
    ``per_fold``, ``per_class`` (pooled, one entry per class in ``classes``) and ``classes``.
    """
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.model_selection import StratifiedKFold

    codes = np.asarray(codes, dtype=np.float64).reshape(len(codes), -1)
    labels = np.asarray(labels).astype(np.int64).ravel()
    if len(codes) != len(labels):
        raise CaffeCaeError(f"{len(codes)} codes but {len(labels)} labels")
    classes, counts = np.unique(labels, return_counts=True)
    if counts.min() < folds:
        raise CaffeCaeError(f"{folds}-fold cross-validation needs >= {folds} samples per class, "
                            f"the smallest class has {counts.min()}")
    predicted = np.empty_like(labels)
    per_fold, notes = [], []
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    for fold, (train, test) in enumerate(splitter.split(codes, labels)):
        if stop is not None and stop():
            raise Stopped()
        model = make(fold)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            warnings.simplefilter("ignore", UserWarning)  # LDA: "Variables are collinear"
            model.fit(codes[train], labels[train])
        predicted[test] = model.predict(codes[test])
        per_fold.append(evaluate_mod.average_per_class_error(labels[test], predicted[test]))
        record = getattr(model, "record", None)
        if record is not None:
            notes.append({"epochs": record.epochs, "best_epoch": record.best_epoch, "stop": record.stop,
                          "seconds": record.seconds})
    result = {
        "error": float(np.mean(per_fold)),
        "pooled_error": evaluate_mod.average_per_class_error(labels, predicted),
        "per_fold": per_fold,
        "per_class": per_class_errors(labels, predicted, classes),
        "classes": classes.tolist(),
    }
    if notes:
        result["training"] = notes
    return result


def evaluate(codes: np.ndarray, labels: np.ndarray, protocol: str, folds: int = 10, seed: int = 0,
             mlp_epochs: int = 6000, mlp_trainer: str = "scg",
             mlp_max_iter: int = evaluate_mod.MLP_MAX_ITER, stop=None) -> dict:
    """``{"linear": cross_validate(...), "mlp": ..., "settings": {...}}`` for one protocol;
    raises :class:`Stopped` when ``stop()`` turns true."""
    codes = np.asarray(codes).reshape(len(codes), -1)
    out = {}
    for kind in evaluate_mod.CLASSIFIERS:
        started = time.perf_counter()

        def make(fold, kind=kind):
            # The sklearn variant seeds every fold alike, as it always did.
            fold_seed = seed + fold if protocol == "paper" else seed
            return make_model(protocol, kind, codes.shape[1], len(codes), fold_seed, mlp_epochs,
                              mlp_trainer, mlp_max_iter)

        out[kind] = cross_validate(codes, labels, make, folds, seed, stop)
        if protocol == "sklearn":   # today's definition: the pooled out-of-fold predictions
            out[kind]["error"] = out[kind]["pooled_error"]
        out[kind]["seconds"] = round(time.perf_counter() - started, 1)
        log.info("%s protocol, %s classifier: average per-class error %.2f%%", protocol, kind, out[kind]["error"])
    out["settings"] = describe(protocol, folds, mlp_epochs, mlp_trainer, mlp_max_iter, codes.shape[1], len(codes))
    return out


def describe(protocol: str, folds: int, mlp_epochs: int, mlp_trainer: str, mlp_max_iter: int,
             code_dim: int | None = None, samples: int = 10000) -> str:
    """One line on the protocol; ``code_dim`` None: the sizes of the 2-, 10- and 30-D MLPs."""
    if code_dim is None:
        shape = "N-{14, 42, 66}-10 (N = 2, 10, 30)"
    else:
        shape = f"{code_dim}-{evaluate_mod.mlp_hidden_units(code_dim, samples)}-10"
    if protocol == "paper":
        return (f"{folds}-fold stratified CV, mean of the folds' average per-class errors; linear = LDA, pooled "
                f"covariance, equal priors (Matlab classify); MLP = patternnet {shape}, tansig/softmax, "
                f"inputs mapminmax [-1, 1], dividerand 70/15/15, crossentropy, {mlp_trainer} {mlp_epochs} epochs, "
                f"max_fail {mlp_epochs}, validation-best weights")
    return (f"{folds}-fold stratified CV, pooled out-of-fold average per-class error; linear = LDA, empirical "
            f"priors; MLP = scikit-learn {shape}, logistic/softmax, inputs [-1, 1], all training "
            f"codes, L-BFGS max {mlp_max_iter} iterations")
