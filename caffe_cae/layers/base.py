"""Caffe's layer contract.

A layer is built from its ``LayerParameter`` and the net phase, then driven by the Net:

1. ``check_blob_counts(n_bottom, n_top)``   - blob-count contract from the class attributes
2. ``setup(bottom_shapes) -> [param shapes]`` - Caffe's LayerSetUp: read and validate the params,
   return the shapes of the learnable blobs (weights, bias, ...). No numerics.
3. ``reshape(bottom_shapes) -> [top shapes]`` - Caffe's Reshape: exact shape formulas, checks.
   Called again whenever bottom shapes change. No numerics.
4. ``fill_params(rng)``   - fill ``self.blobs`` (already allocated by the Net) with the fillers.
5. ``forward(bottom, top)``  - write tops; ``backward(top, propagate_down, bottom)`` - write bottom
   diffs (assign) and ADD parameter gradients into ``self.blobs[i].diff`` (Caffe accumulates;
   the solver zeroes them each iteration).

``bottom``/``top`` are lists of :class:`~caffe_cae.blob.Blob`. Compute in the blobs' dtype
(float32 normally, float64 in gradient checks). Write into arrays in place (``x[...] = ...``,
``out=``), never rebind ``blob.data``/``blob.diff`` except in layers that share memory
(Reshape/Flatten/Split: ``top.share_data(bottom)`` in ``forward``).

Optional attributes the Net reads or sets (a layer without them is left alone):
``param_propagate_down`` (set: Caffe's per-parameter gradient flags), ``shares_data``,
``reuse_forward_columns`` (cleared where a later in-place layer overwrites the bottom), and a
sparsity hand-over: a layer that declares ``top_left_spread`` (its top is zero off a stride
grid after forward, e.g. top-left Unpooling) tells the single reader of that top that has a
``bottom_spread`` attribute (Deconvolution), per forward pass, that it may skip those zeros.
"""
from __future__ import annotations

import numpy as np

from caffe_cae.blob import Blob
from caffe_cae.errors import CaffeCaeError
from caffe_cae.proto import caffe_pb2


class Layer:
    #: Caffe type string, set by ``@register``.
    type: str = ""
    # Blob-count contract (None = no constraint), checked in one place.
    exact_bottoms: int | None = None
    min_bottoms: int | None = None
    max_bottoms: int | None = None
    exact_tops: int | None = None
    min_tops: int | None = None
    max_tops: int | None = None
    #: Loss layers: top[0] gets loss_weight 1 unless the prototxt says otherwise; a missing top
    #: is created automatically (Caffe's AutoTopBlobs).
    is_loss: bool = False
    #: Layers whose top shares memory with the bottom (no copy): Reshape, Flatten, Split.
    shares_data: bool = False

    def __init__(self, param: caffe_pb2.LayerParameter, phase: int = caffe_pb2.TEST):
        self.param = param
        self.phase = phase
        self.name = param.name
        #: learnable blobs, allocated by the Net from ``setup``'s shapes (shared ones are the
        #: owner's Blob objects).
        self.blobs: list[Blob] = []

    # -- errors ------------------------------------------------------------------------------
    def error(self, message: str) -> CaffeCaeError:
        """A one-line user error naming this layer: ``raise self.error('...')``."""
        return CaffeCaeError(f"layer '{self.name}' ({self.type}): {message}")

    # -- contract ----------------------------------------------------------------------------
    def check_blob_counts(self, n_bottom: int, n_top: int) -> None:
        def check(count, exact, low, high, what):
            if exact is not None and count != exact:
                raise self.error(f"takes exactly {exact} {what} blob(s), got {count}")
            if low is not None and count < low:
                raise self.error(f"takes at least {low} {what} blob(s), got {count}")
            if high is not None and count > high:
                raise self.error(f"takes at most {high} {what} blob(s), got {count}")

        check(n_bottom, self.exact_bottoms, self.min_bottoms, self.max_bottoms, "bottom")
        check(n_top, self.exact_tops, self.min_tops, self.max_tops, "top")

    def setup(self, bottom_shapes: list[tuple[int, ...]]) -> list[tuple[int, ...]]:
        """Read/validate params; return the learnable blobs' shapes (none by default)."""
        return []

    def reshape(self, bottom_shapes: list[tuple[int, ...]]) -> list[tuple[int, ...]]:
        raise NotImplementedError(f"{type(self).__name__}.reshape")

    def fill_params(self, rng: np.random.Generator) -> None:
        """Fill ``self.blobs`` from the layer's fillers (layers with parameters override)."""

    def forward(self, bottom: list[Blob], top: list[Blob]) -> None:
        raise NotImplementedError(f"{type(self).__name__}.forward")

    def backward(self, top: list[Blob], propagate_down: list[bool], bottom: list[Blob]) -> None:
        raise NotImplementedError(f"{type(self).__name__}.backward")

    def allow_force_backward(self, bottom_index: int) -> bool:
        """False for inputs that never get a gradient (loss labels/targets)."""
        return True

    #: How the numerical gradient checker treats this layer ("smooth", or "kink" for layers
    #: with non-differentiable points such as MAX/ReLU/unpooling: inputs are drawn away from
    #: kinks).  Loss-label bottoms are excluded through ``allow_force_backward``.
    gradient_check: str = "smooth"

    def __repr__(self) -> str:
        return f"<{self.type} layer '{self.name}'>"
