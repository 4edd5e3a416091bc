"""pycaffe's batched helpers (``forward_all``, ``forward_backward_all``,
``set_input_arrays``), mixed into :class:`caffe_cae.net.Net`."""
from __future__ import annotations

import itertools
from typing import Iterable

import numpy as np

from caffe_cae.errors import CaffeCaeError


class BatchHelpers:
    """Run arrays of any length through the net in batches of its batch size."""

    def _batch(self, arrays: dict):
        """Yield ``{name: rows}`` batches of the net's batch size (that of its first blob); the
        last batch is padded with zeros, as pycaffe's ``Net._batch``."""
        num = len(next(iter(arrays.values())))
        batch_size = next(iter(self.blobs.values())).shape[0]
        for i in range(0, num - num % batch_size, batch_size):
            yield {name: rows[i:i + batch_size] for name, rows in arrays.items()}
        remainder = num % batch_size
        if remainder:
            yield {
                name: np.concatenate([np.asarray(rows[num - remainder:]),
                                      np.zeros((batch_size - remainder,) + np.shape(rows)[1:], np.float32)])
                for name, rows in arrays.items()
            }

    @staticmethod
    def _gather(chunks: list, n_rows: int) -> np.ndarray:
        """Batches of one blob joined along axis 0, padding rows dropped; a 0-d blob (a loss)
        gives one value per batch."""
        if chunks[0].ndim == 0:
            return np.stack(chunks)
        return np.concatenate(chunks)[:n_rows]

    def forward_all(self, blobs: Iterable[str] | None = None, **inputs) -> dict:
        """pycaffe's ``Net.forward_all``: forward arrays of any length in batches of the net's
        batch size; returns ``{blob: array of all rows}`` for the outputs and ``blobs``."""
        if not inputs:
            raise CaffeCaeError(f"net '{self.name}': forward_all needs input arrays (e.g. data=...)")
        n_rows = len(next(iter(inputs.values())))
        chunks: dict[str, list] = {}
        for batch in self._batch(inputs):
            for name, value in self.forward(blobs=blobs, **batch).items():
                chunks.setdefault(name, []).append(value)
        return {name: self._gather(parts, n_rows) for name, parts in chunks.items()}

    def forward_backward_all(self, blobs: Iterable[str] | None = None,
                             diffs: Iterable[str] | None = None, **arrays) -> tuple[dict, dict]:
        """pycaffe's ``Net.forward_backward_all``: keyword arrays feed inputs (forward) and
        output diffs (backward), in batches; returns ``({blob: data}, {blob: diff})``."""
        inputs = {k: v for k, v in arrays.items() if k in self.inputs}
        top_diffs = {k: v for k, v in arrays.items() if k in self.outputs}
        unknown = sorted(set(arrays) - set(inputs) - set(top_diffs))
        if unknown:
            raise CaffeCaeError(f"blob '{unknown[0]}': neither an input nor an output of net '{self.name}'")
        if not arrays:
            raise CaffeCaeError(f"net '{self.name}': forward_backward_all needs input or output diff arrays")
        n_rows = len(next(iter(arrays.values())))
        outs: dict[str, list] = {}
        grads: dict[str, list] = {}
        forward_batches = self._batch(inputs) if inputs else iter(())
        backward_batches = self._batch(top_diffs) if top_diffs else iter(())
        for fb, bb in itertools.zip_longest(forward_batches, backward_batches, fillvalue={}):
            for name, value in self.forward(blobs=blobs, **fb).items():
                outs.setdefault(name, []).append(value)
            for name, value in self.backward(diffs=diffs, **bb).items():
                grads.setdefault(name, []).append(value)
        return ({name: self._gather(parts, n_rows) for name, parts in outs.items()},
                {name: self._gather(parts, n_rows) for name, parts in grads.items()})

    def set_input_arrays(self, data, labels) -> None:
        """pycaffe's ``Net.set_input_arrays``: hand ``data`` (N, C, H, W) and ``labels`` (N,)
        to the MemoryData layer that must be the net's first layer."""
        first = self.graph.layers[0].layer if self.graph.layers else None
        if first is None or first.type != "MemoryData":
            raise CaffeCaeError(f"net '{self.name}': set_input_arrays may only be called if the "
                                f"first layer is a MemoryData layer")
        first.set_input_arrays(data, labels)

