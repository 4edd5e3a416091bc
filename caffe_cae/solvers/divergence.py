"""Diagnosing a non-finite loss: which layer's output first became NaN/inf.

The papers lost many runs to NaN; rather than "loss = nan" the solver names the iteration and
the first layer (in net order) whose top or parameters are non-finite.
"""
from __future__ import annotations

import numpy as np

from caffe_cae.errors import CaffeCaeError


class TrainingDiverged(CaffeCaeError):
    """The loss became NaN or infinite; ``iteration`` and ``layer`` say where."""

    def __init__(self, message: str, iteration: int, layer: str | None):
        super().__init__(message)
        self.iteration = iteration
        self.layer = layer


def _finite(array: np.ndarray) -> bool:
    return bool(np.isfinite(array).all())


def first_nonfinite_layer(net) -> tuple[str, str, str] | None:
    """``(layer name, type, why)`` of the first layer whose params or recomputed tops are
    non-finite, re-running the forward one layer at a time on the current batch (data layers,
    which have no bottoms, keep the batch they produced)."""
    for i, layer in enumerate(net.layers):
        name = net.layer_names[i]
        kind = layer.param.type
        for j, blob in enumerate(layer.blobs):
            if not _finite(blob.data):
                return name, kind, f"its parameter {j} is non-finite"
        if net.bottom_names[i]:
            net.forward_from_to(i, i)
        for blob_name in net.top_names[i]:
            if not _finite(net.blobs[blob_name].data):
                return name, kind, f"its output '{blob_name}' is non-finite"
    return None


def diverged(net, iteration: int, loss: float, last_snapshot: str | None) -> TrainingDiverged:
    """The error to raise for a non-finite ``loss`` at ``iteration``."""
    try:
        found = first_nonfinite_layer(net)
    except Exception:  # the diagnosis must never hide the divergence itself
        found = None
    if found:
        layer, kind, why = found
        where = f"first non-finite layer '{layer}' ({kind}): {why}"
    else:
        layer, where = None, "no layer output is non-finite on re-run (check the loss weights)"
    keep = f"; last good snapshot: {last_snapshot}" if last_snapshot else "; no snapshot written"
    return TrainingDiverged(
        f"iteration {iteration}: loss = {loss:g} is not finite; {where}{keep}", iteration, layer
    )
