"""The published numbers we compare against, transcribed from Turchenko, Chalmers & Luczak (2019),
"A Deep Convolutional Auto-Encoder with Pooling-Unpooling Layers in Caffe", Int. J. of Computing
18(1).

``TABLE4[model][dims]`` (Table 4, "Performances of the training, average per-class classification
errors and sparsity of internal code"):

* ``runs``: three runs, each ``(train, test)`` loss values; for the auto-encoders each value is
  ``(SigmoidCrossEntropyLoss, EuclideanLoss)``, for the Siamese net the ContrastiveLoss alone
  (the paper prints train values in red and test values in black; the text extraction lists the
  train line first);
* ``linear`` / ``mlp``: average per-class classification error (%) of the linear classifier
  (Matlab ``classify``) and the MLP, 10-fold cross-validation on the 10000 test codes;
* ``sparsity``: % of code elements below 30 % of the maximum, mean over the three runs.

The Siamese rows are printed for 2, 10 and 20 dimensions (sic, not 30) in the paper.
``COMPRESSION`` is from Sec. 5.1; ``TABLE5_MINUTES`` (training time of 50000 iterations) from
Table 5; ``PARAMS`` (trainable parameters for a 2-D code, Tables 1-3).
"""
from __future__ import annotations

SOURCE = "Turchenko, Chalmers & Luczak (2019), Int. J. of Computing 18(1)"

MODEL_TITLES = {
    "siamese": "Siamese network",
    "deep-ae": "Deep AE",
    "model1": "Model 1 (conv <-> deconv)",
    "model2": "Model 2 (conv, pool <-> deconv)",
    "model3": "Model 3 (conv, pool, sw <-> deconv, sw, unpool)",
    "model4": "Model 4 (conv, pool <-> deconv, unpool)",
    "model5": "Model 5 (conv, pool <-> deconv, unpool; tanh)",
}

# Trainable parameters |w+b| for the 2-D code (Table 1 / Tables 2-3) and model size (elements).
PARAMS = {
    "siamese": (337728, 43704), "deep-ae": (2823286, 3502), "model1": (297391, 7990),
    "model2": (318251, 25814), "model3": (337727, 43702), "model4": (337727, 43702),
    "model5": (337727, 43702),
}


def _ae(*values):
    """Six (train SCE; Euclidean / test SCE; Euclidean) pairs -> three runs of ((sce, l2), (sce, l2))."""
    pairs = [(values[i], values[i + 1]) for i in range(0, len(values), 2)]
    return [(pairs[i], pairs[i + 1]) for i in range(0, len(pairs), 2)]


TABLE4 = {
    "siamese": {
        2: {"runs": [(0.031, 0.026), (0.019, 0.016), (0.021, 0.017)], "linear": 3.49, "mlp": 3.35, "sparsity": 59.3},
        10: {"runs": [(0.028, 0.024), (0.018, 0.016), (0.017, 0.016)], "linear": 1.48, "mlp": 1.39, "sparsity": 69.1},
        20: {"runs": [(0.036, 0.026), (0.022, 0.015), (0.020, 0.016)], "linear": 1.62, "mlp": 1.48, "sparsity": 79.6},
    },
    "deep-ae": {
        2: {"runs": _ae(132.07, 14.20, 138.92, 15.07, 129.14, 13.67, 137.11, 14.78, 132.75, 14.31, 140.56, 15.40),
            "linear": 22.68, "mlp": 13.52, "sparsity": 77.6},
        10: {"runs": _ae(84.07, 5.91, 86.64, 6.19, 83.18, 5.79, 86.71, 6.21, 82.21, 5.59, 86.34, 6.15),
             "linear": 6.91, "mlp": 3.46, "sparsity": 70.3},
        30: {"runs": _ae(66.56, 3.11, 68.72, 3.31, 66.23, 3.04, 68.51, 3.27, 66.48, 3.10, 68.50, 3.27),
             "linear": 7.46, "mlp": 2.85, "sparsity": 78.9},
    },
    "model1": {
        2: {"runs": _ae(137.79, 15.23, 143.59, 15.93, 137.69, 15.26, 144.72, 16.09, 136.15, 14.88, 143.52, 15.87),
            "linear": 19.82, "mlp": 13.73, "sparsity": 78.3},
        10: {"runs": _ae(83.11, 5.71, 86.19, 6.05, 85.96, 6.29, 88.35, 6.48, 85.06, 6.05, 86.21, 6.05),
             "linear": 6.30, "mlp": 3.48, "sparsity": 69.7},
        30: {"runs": _ae(68.47, 3.47, 69.34, 3.44, 69.04, 3.49, 69.65, 3.44, 71.43, 3.88, 73.72, 4.08),
             "linear": 6.88, "mlp": 2.65, "sparsity": 79.7},
    },
    "model2": {
        2: {"runs": _ae(137.58, 15.28, 146.27, 16.49, 138.73, 15.36, 144.23, 16.03, 137.51, 15.08, 144.80, 16.15),
            "linear": 21.33, "mlp": 14.38, "sparsity": 79.7},
        10: {"runs": _ae(86.93, 6.26, 88.13, 6.46, 85.12, 6.03, 86.12, 5.99, 83.58, 5.78, 85.36, 5.92),
             "linear": 5.31, "mlp": 3.77, "sparsity": 75.8},
        30: {"runs": _ae(64.64, 2.83, 66.02, 2.90, 65.28, 2.93, 66.38, 2.96, 69.58, 3.58, 70.88, 3.69),
             "linear": 6.41, "mlp": 2.54, "sparsity": 85.0},
    },
    "model3": {
        2: {"runs": _ae(54.18, 1.13, 55.75, 1.15, 55.31, 1.18, 55.30, 1.08, 55.38, 1.21, 56.36, 1.22),
            "linear": 45.72, "mlp": 41.53, "sparsity": 30.8},
        10: {"runs": _ae(51.67, 0.75, 52.45, 0.74, 51.62, 0.74, 52.49, 0.76, 51.81, 0.78, 52.48, 0.76),
             "linear": 13.75, "mlp": 8.75, "sparsity": 67.4},
        30: {"runs": _ae(51.21, 0.70, 51.97, 0.69, 51.15, 0.69, 51.87, 0.68, 51.34, 0.71, 52.19, 0.72),
             "linear": 6.82, "mlp": 3.75, "sparsity": 74.8},
    },
    "model4": {
        2: {"runs": _ae(135.10, 14.43, 142.15, 15.43, 136.56, 14.77, 142.56, 15.52, 135.08, 14.35, 141.99, 15.39),
            "linear": 21.23, "mlp": 13.87, "sparsity": 70.9},
        10: {"runs": _ae(81.38, 5.29, 83.23, 5.42, 84.07, 5.67, 84.82, 5.68, 82.78, 5.48, 84.33, 5.60),
             "linear": 5.06, "mlp": 2.89, "sparsity": 73.7},
        30: {"runs": _ae(64.19, 2.45, 65.35, 2.55, 65.94, 2.76, 66.83, 2.77, 64.03, 2.48, 66.10, 2.72),
             "linear": 5.76, "mlp": 2.19, "sparsity": 86.9},
    },
    "model5": {
        2: {"runs": _ae(141.72, 15.60, 150.56, 16.81, 138.05, 14.96, 141.70, 15.38, 139.70, 15.27, 146.24, 16.15),
            "linear": 20.63, "mlp": 12.34, "sparsity": 69.7},
        10: {"runs": _ae(86.08, 6.02, 90.66, 6.62, 86.35, 6.10, 91.05, 6.68, 86.89, 6.19, 91.00, 6.71),
             "linear": 6.14, "mlp": 3.36, "sparsity": 68.9},
        30: {"runs": _ae(75.62, 4.31, 78.75, 4.71, 78.64, 4.61, 72.18, 3.76, 75.08, 4.22, 77.40, 4.51),
             "linear": 6.61, "mlp": 3.44, "sparsity": 77.6},
    },
}

# Sec. 5.1: compression ratio (%) by code width; Model 3 (switches + code) about -490 %.
COMPRESSION = {2: 99.0, 10: 95.0, 30: 85.0, "model3": -490.0}

# Table 5: average minutes per run of 50000 iterations.
TABLE5_MINUTES = {
    "Hodgkin CPU (Xeon E5520)": {"deep-ae": 129, "model1": 478, "model2": 702, "model3": 755, "model4": 758, "model5": 762},
    "WS1241 GPU (GTS 450)": {"deep-ae": 18, "model1": 249, "model2": 239, "model3": 141, "model4": 142, "model5": 140},
    "Polaris1 GPU (GTX TITAN X)": {"deep-ae": 6, "model1": 91, "model2": 83, "model3": 57, "model4": 60, "model5": 58},
}


def paper_row(model: str, dims: int) -> dict | None:
    """Table 4's entry for ``model`` (a key of :data:`MODEL_TITLES`) and code width, or None."""
    return TABLE4.get(model, {}).get(dims)


def mean_losses(model: str, dims: int) -> tuple | None:
    """Mean over the three runs: ``(train, test)`` with ``(sce, euclidean)`` pairs (AEs only)."""
    row = paper_row(model, dims)
    if row is None or not isinstance(row["runs"][0][0], tuple):
        return None
    runs = row["runs"]
    return tuple(
        tuple(sum(run[phase][k] for run in runs) / len(runs) for k in range(2)) for phase in range(2)
    )
