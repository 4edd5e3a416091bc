"""Layers driven by an index or selector bottom: Embed, BatchReindex, Filter.

Indices arrive as floats and are truncated toward zero (C++ ``static_cast<int>``).  None of
these layers can send a gradient to its index/selector bottom: Caffe aborts in the backward
when the Net asks for one (``force_backward``, or a producer with learnable parameters), and
so does this one, with Caffe's message.  Out-of-range indices, which Caffe checks only in debug
builds for Embed (undefined behaviour otherwise), are refused.
"""
from __future__ import annotations

import numpy as np

from caffe_cae.layers.base import Layer
from caffe_cae.layers.registry import register


def _truncated(values: np.ndarray) -> np.ndarray:
    """``static_cast<int>`` of float indices (callers refuse NaN and out-of-range ones)."""
    with np.errstate(invalid="ignore"):
        return np.trunc(values).astype(np.int64)


@register("Embed")
class EmbedLayer(Layer):
    """A lookup table: top = bottom.shape + (num_output,), each index replaced by its row of
    the weight (input_dim, num_output) -- InnerProduct's weight is (num_output, K) -- plus the
    bias (num_output,) when ``bias_term``.  The index bottom gets no gradient."""

    feature_tops = -1  # hidden units, as InnerProduct's
    exact_bottoms = 1
    exact_tops = 1

    def setup(self, bottom_shapes):
        p = self.param.embed_param
        self.num_output, self.input_dim = int(p.num_output), int(p.input_dim)
        if self.num_output <= 0:
            raise self.error("EmbedLayer num_output must be positive.")
        if self.input_dim <= 0:
            raise self.error("EmbedLayer input_dim must be positive.")
        self.bias_term = bool(p.bias_term)
        weight = (self.input_dim, self.num_output)
        return [weight, (self.num_output,)] if self.bias_term else [weight]

    def reshape(self, bottom_shapes):
        return [tuple(bottom_shapes[0]) + (self.num_output,)]

    def fill_params(self, rng):
        from caffe_cae.fillers import fill  # lazy: fillers are optional for pure inference

        p = self.param.embed_param
        where = f"layer '{self.name}' (Embed)"
        w = self.blobs[0]
        w.data[...] = fill(p.weight_filler, w.shape, rng, w.dtype, where=f"{where}: weight_filler")
        if self.bias_term:
            b = self.blobs[1]
            b.data[...] = fill(p.bias_filler, b.shape, rng, b.dtype, where=f"{where}: bias_filler")

    def _indices(self, bottom) -> np.ndarray:
        values = bottom.data.reshape(-1)
        index = _truncated(values)
        bad = ~np.isfinite(values) | (index < 0) | (index >= self.input_dim)
        if bad.any():
            raise self.error(f"index {values[bad][0]:g} in bottom '{self.bottom_name(0)}' is "
                             f"out of range [0, {self.input_dim}) (input_dim)")
        return index

    def forward(self, bottom, top):
        index = self._indices(bottom[0])
        y = top[0].data.reshape(-1, self.num_output)
        np.take(self.blobs[0].data, index, axis=0, out=y)
        if self.bias_term:
            y += self.blobs[1].data

    def backward(self, top, propagate_down, bottom):
        if propagate_down[0]:
            raise self.error("Can't backpropagate to EmbedLayer input.")
        dy = top[0].diff.reshape(-1, self.num_output)
        if self.param_needs_gradient(0):
            # row by row in index order, as Caffe's caffe_axpy loop (repeated indices add up)
            np.add.at(self.blobs[0].diff, self._indices(bottom[0]), dy)
        if self.bias_term and self.param_needs_gradient(1):
            self.blobs[1].diff += dy.sum(axis=0, dtype=dy.dtype)


@register("BatchReindex")
class BatchReindexLayer(Layer):
    """top[i] = bottom[perm[i]] along the first axis, ``perm`` the (K,) second bottom
    (repeats and omissions allowed); the backward adds the diffs of repeated items."""

    exact_bottoms = 2
    exact_tops = 1

    def reshape(self, bottom_shapes):
        data, perm = tuple(bottom_shapes[0]), tuple(bottom_shapes[1])
        if len(perm) != 1:
            raise self.error(f"the index bottom '{self.bottom_name(1)}' must have 1 axis, "
                             f"got {list(perm)}")
        if not data:
            raise self.error("the data bottom needs at least one axis")
        return [perm + data[1:]]

    def _indices(self, bottom) -> np.ndarray:
        values = bottom[1].data.reshape(-1)
        num = bottom[0].shape[0]
        if (values < 0).any():
            raise self.error("Index specified for reindex layer was negative.")
        if not (values < num).all():  # also NaN
            raise self.error(f"Index specified for reindex layer was greater than batch size "
                             f"({num}).")
        return _truncated(values)

    def forward(self, bottom, top):
        np.take(bottom[0].data, self._indices(bottom), axis=0, out=top[0].data)

    def backward(self, top, propagate_down, bottom):
        if propagate_down[1]:
            raise self.error("Cannot backprop to index.")
        if not propagate_down[0]:
            return
        dx = bottom[0].diff
        dx[...] = 0
        np.add.at(dx, self._indices(bottom), top[0].diff)


@register("Filter")
class FilterLayer(Layer):
    """Keeps the items (first-axis rows) whose selector value -- the last bottom, shape (N,)
    or (N, 1, ...) -- is non-zero, in every other bottom; top t is bottom t filtered.

    The number of kept items is only known from the selector's values: at setup the tops get
    N rows (as Caffe's first Reshape), and ``forward`` reshapes them to the kept count, after
    which the Net reshapes the layers that read them.  Rows not kept get a zero diff."""

    min_bottoms = 2
    min_tops = 1

    def check_blob_counts(self, n_bottom, n_top):
        super().check_blob_counts(n_bottom, n_top)
        if n_top != n_bottom - 1:
            raise self.error(f"Top.size() should be equal to bottom.size() - 1 ({n_bottom} "
                             f"bottoms, {n_top} tops)")

    def setup(self, bottom_shapes):
        self.kept = None  # item numbers forwarded by the last forward
        return []

    def reshape(self, bottom_shapes):
        shapes = [tuple(s) for s in bottom_shapes]
        selector = shapes[-1]
        if not selector or any(d != 1 for d in selector[1:]):
            raise self.error(f"Selector blob dimensions must be singletons (1), except the "
                             f"first: '{self.bottom_name(len(shapes) - 1)}' {list(selector)}")
        for i, s in enumerate(shapes[:-1]):
            if not s or s[0] != selector[0]:
                raise self.error(f"Each bottom should have the same 0th dimension as the "
                                 f"selector blob: '{self.bottom_name(i)}' {list(s)}, selector "
                                 f"{list(selector)}")
        rows = selector[0] if self.kept is None else len(self.kept)
        return [(rows,) + s[1:] for s in shapes[:-1]]

    def forward(self, bottom, top):
        self.kept = np.flatnonzero(bottom[-1].data.reshape(-1) != 0)
        for b, t in zip(bottom, top):
            shape = (len(self.kept),) + b.shape[1:]
            if t.shape != shape:
                t.reshape(shape)
            np.take(b.data, self.kept, axis=0, out=t.data)

    def backward(self, top, propagate_down, bottom):
        if propagate_down[-1]:
            raise self.error("FilterLayer cannot backpropagate to filter index inputs")
        if self.kept is None:
            raise self.error("backward before forward")
        for down, b, t in zip(propagate_down, bottom, top):
            if down:
                b.diff[...] = 0
                b.diff[self.kept] = t.diff
