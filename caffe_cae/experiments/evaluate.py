"""The papers' measures of a learned code (2019 paper, Sec. 4.2 and Table 4).

* Linear classifier: Matlab's ``classify()`` default is linear discriminant analysis (Gaussian
  classes with one pooled covariance, empirical priors) = scikit-learn's
  ``LinearDiscriminantAnalysis``.
* MLP: Matlab ``patternnet`` with one sigmoid hidden layer and a softmax output; hidden sizes 14, 42,
  66 for 2-, 10-, 30-D codes (|Data|/(w+b) ~ 100); inputs mapped to [-1, 1] like Matlab's
  ``mapminmax``; trained full-batch with L-BFGS (scikit-learn has no scaled conjugate gradient,
  ``trainscg``; both are full-batch second-order-like methods).
* 10-fold stratified cross-validation, error = average per-class error in percent over the
  pooled out-of-fold predictions.
* Sparsity and compression ratio: :mod:`caffe_cae.experiments.sparsity`.

scikit-learn provides LDA, cross-validation, the MLP and t-SNE in well-tested form; re-implementing
them would add code to maintain without making the Caffe side more faithful.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import os
import pathlib
import warnings

import numpy as np

from caffe_cae.errors import CaffeCaeError
from caffe_cae.fileio import one_line, open_hdf5
from caffe_cae.experiments import sparsity as sparsity_mod

log = logging.getLogger(__name__)

# Hidden units of the papers' MLPs (2-14-10, 10-42-10, 30-66-10).
PAPER_MLP_HIDDEN = {2: 14, 10: 42, 30: 66}
CLASSIFIERS = ("linear", "mlp")
# L-BFGS iterations of the MLP: the paper's trainscg ran up to 6000 epochs; L-BFGS gets to a
# comparable fit in far fewer, and 500 keeps 10 folds x 10000 codes within a few minutes.
MLP_MAX_ITER = 500


def mlp_hidden_units(code_dim: int, samples: int = 10000) -> int:
    """Hidden units for a ``code_dim`` input: the paper's 14/42/66, else |Data|/(w+b) = 100.

    With 10 classes, (d + 1) h + (h + 1) 10 = 0.9 * samples * d / 100 (nine folds train) gives
    42 and 66 for d = 10, 30 (the paper's values) and is used for other widths.
    """
    if code_dim in PAPER_MLP_HIDDEN:
        return PAPER_MLP_HIDDEN[code_dim]
    budget = 0.9 * samples * code_dim / 100.0
    return max(2, int(round((budget - 10) / (code_dim + 11))))


def average_per_class_error(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Mean over the classes present in ``y_true`` of the class's error rate, in percent."""
    y_true = np.asarray(y_true)
    y_pred = np.asarray(y_pred)
    classes = np.unique(y_true)
    errors = [np.mean(y_pred[y_true == c] != c) for c in classes]
    return 100.0 * float(np.mean(errors))


def make_classifier(kind: str, code_dim: int, samples: int, seed: int = 0, mlp_max_iter: int = MLP_MAX_ITER):
    """A fresh scikit-learn estimator for ``kind`` in :data:`CLASSIFIERS`."""
    from sklearn.discriminant_analysis import LinearDiscriminantAnalysis
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import MinMaxScaler

    if kind == "linear":
        return LinearDiscriminantAnalysis(solver="svd")
    if kind == "mlp":
        mlp = MLPClassifier(
            hidden_layer_sizes=(mlp_hidden_units(code_dim, samples),), activation="logistic",
            solver="lbfgs", alpha=0.0, max_iter=mlp_max_iter, tol=1e-10, random_state=seed,
        )
        return make_pipeline(MinMaxScaler(feature_range=(-1, 1)), mlp)
    raise CaffeCaeError(f"unknown classifier {kind!r} (known: {', '.join(CLASSIFIERS)})")


def cross_validated_error(codes: np.ndarray, labels: np.ndarray, kind: str, folds: int = 10,
                          seed: int = 0, mlp_max_iter: int = MLP_MAX_ITER) -> float:
    """Average per-class error (%) of ``kind`` under stratified ``folds``-fold cross-validation."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.model_selection import StratifiedKFold

    codes = np.asarray(codes, dtype=np.float64).reshape(len(codes), -1)
    labels = np.asarray(labels).astype(np.int64).ravel()
    if len(codes) != len(labels):
        raise CaffeCaeError(f"{len(codes)} codes but {len(labels)} labels")
    present = np.bincount(labels)
    smallest = present[present > 0].min() if labels.size else 0
    if smallest < folds:
        raise CaffeCaeError(f"{folds}-fold cross-validation needs >= {folds} samples per class, "
                            f"the smallest class has {smallest}")
    predicted = np.empty_like(labels)
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    for train, test in splitter.split(codes, labels):
        model = make_classifier(kind, codes.shape[1], len(codes), seed, mlp_max_iter)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            warnings.simplefilter("ignore", UserWarning)  # LDA: "Variables are collinear"
            model.fit(codes[train], labels[train])
        predicted[test] = model.predict(codes[test])
    return average_per_class_error(labels, predicted)


@dataclasses.dataclass
class CodeEvaluation:
    """Table 4's columns for one code: errors (%), sparsity (%), compression ratio (%)."""

    samples: int
    code_dim: int
    linear_error: float | None
    mlp_error: float | None
    sparsity: float
    compression: float
    switches: list

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


def evaluate_codes(codes: np.ndarray, labels: np.ndarray, switches=(), folds: int = 10,
                   seed: int = 0, classifiers=CLASSIFIERS, mlp_max_iter: int = MLP_MAX_ITER,
                   sparsity_fraction: float = 0.3, switch_rule: str = "paper") -> CodeEvaluation:
    """All measures of Table 4 for ``codes`` (N x D) with digit ``labels`` (N,).

    ``switches``: ``(count, plane_cells)`` per pooling layer whose switches the decoder uses.
    """
    codes = np.asarray(codes).reshape(len(codes), -1)
    errors = {kind: None for kind in CLASSIFIERS}
    for kind in classifiers:
        errors[kind] = cross_validated_error(codes, labels, kind, folds, seed, mlp_max_iter)
        log.info("%s classifier: average per-class error %.2f%%", kind, errors[kind])
    return CodeEvaluation(
        samples=len(codes), code_dim=codes.shape[1],
        linear_error=errors["linear"], mlp_error=errors["mlp"],
        sparsity=sparsity_mod.sparsity(codes, sparsity_fraction),
        compression=sparsity_mod.compression_ratio(codes.shape[1], switches, rule=switch_rule),
        switches=[list(map(int, s)) for s in switches],
    )


# ------------------------------------------------------------------------------------------
# Codes files (written by caffe_cae.experiments.encode)


def read_codes(path: str | os.PathLike, blob: str | None = None) -> tuple[np.ndarray, np.ndarray, list]:
    """``(codes, labels, switches)`` from a codes file; ``blob`` defaults to its ``code_blob``."""
    path = pathlib.Path(path)
    try:
        with open_hdf5(path, "HDF5 codes file") as h5:
            name = blob or h5.attrs.get("code_blob")
            if name is None:
                raise CaffeCaeError(f"{path}: no code_blob attribute; name the blob to evaluate")
            if name not in h5:
                raise CaffeCaeError(f"{path}: no dataset {name!r} (has: {', '.join(h5.keys())})")
            if "label" not in h5:
                raise CaffeCaeError(f"{path}: no 'label' dataset; evaluation needs the digit labels")
            codes = np.asarray(h5[name], dtype=np.float32)
            labels = np.asarray(h5["label"]).astype(np.int64).ravel()
            if codes.ndim == 0 or len(codes) == 0:
                raise CaffeCaeError(f"{path}: dataset {name!r} holds no codes (shape {list(codes.shape)})")
            if len(codes) != len(labels):
                raise CaffeCaeError(f"{path}: {len(codes)} codes in {name!r} but {len(labels)} labels")
            switches = json.loads(h5.attrs.get("switches", "[]"))
    except OSError as err:
        raise CaffeCaeError(f"{path}: cannot read HDF5 ({one_line(err)})") from None
    return codes.reshape(len(codes), -1), labels, switches
