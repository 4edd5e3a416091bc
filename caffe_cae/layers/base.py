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

Everything the Net, the dataflow analysis (``caffe_cae.netgraph.dataflow``), the ONNX exporter
and the gradient checker ask of a layer is declared below with a default; nothing probes a layer
with ``hasattr``.  A new layer overrides only what differs:

* traits (class attributes): ``is_data`` (produces blobs from outside: becomes an ONNX input),
  ``is_loss``, ``is_metric`` (Accuracy-like: left out of inference exports),
  ``identity_at_inference`` (Dropout), ``draws_random_numbers`` (the gradient checker reseeds
  it), ``backward_ignores_propagate_down`` (backward runs even when no bottom needs a diff),
  ``overwrites_param_gradients`` (a fork's quirk), ``gradient_check``;
* ``shares_memory(bottom_index, top_index)``: the top is a view of the bottom (Split, Reshape,
  Flatten, one-part Concat/Slice);
* data layers: ``source_top_shapes()`` / ``param_top_shapes()``, their top shapes from the data
  source or from the parameters alone, without loading data (shape inference without the data);
* ``param_propagate_down`` (set by the Net: Caffe's per-parameter gradient flags; None = all);
* ``reuse_forward_columns`` (a layer that keeps values derived from a bottom for its backward;
  the Net clears it where a later in-place layer overwrites that bottom's memory);
* a per-pass sparsity hand-over: ``sparse_top_stride()`` (the top is zero off a stride grid after
  forward, e.g. top-left Unpooling) and ``accepts_sparse_bottom`` + ``bottom_spread`` (a
  Deconvolution that may skip those zeros when the Net's plan says the producer wrote its bottom
  in the same pass).

Two engines (:mod:`caffe_cae.engine`).  A layer with a fast path (thread splits, batched
im2col, sparse bottoms, block-wise temporaries; knobs in :mod:`caffe_cae.tuning`) keeps
Caffe's plain formula beside it, readable in one screen, and takes it when
``engine.reference()`` is true: ``forward_reference``/``backward_reference`` methods with the
``forward``/``backward`` signatures (Convolution, Deconvolution, Pooling, Unpooling), or a
``*_reference`` twin of the helper function the fast path is (Sigmoid, the loss sums), or the
one-line formula (TanH).  Layers without a fast path run the same code under both engines;
:mod:`caffe_cae.parallel` runs inline under the reference engine, so code that only splits
work over it (InnerProduct's GEMMs, bias adds) is its own reference.
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
    #: Data layers: no bottoms, tops come from outside the net (Input, HDF5Data, ...); an ONNX
    #: export turns their tops into graph inputs.
    is_data: bool = False
    #: Evaluation-only layers (Accuracy, Silence): no part of an inference graph.
    is_metric: bool = False
    #: The layer computes the identity in the TEST phase (Dropout).
    identity_at_inference: bool = False
    #: The layer draws random numbers while running (``self.rng``); gradient checks reseed it.
    draws_random_numbers: bool = False
    #: Caffe runs this layer's backward even when no bottom needs a diff (it writes scratch).
    backward_ignores_propagate_down: bool = False
    #: The forward leaves in bottom 0's diff what the backward reads (HingeLoss's margins), as
    #: Caffe's layer does: whatever writes that diff in between changes the gradient.
    backward_reads_bottom_diff: bool = False
    #: A fork's layer whose backward *assigns* its parameter gradients instead of adding them
    #: (Noh's/SegNet's BN): under ``iter_size > 1`` only the last pass's gradient survives, as
    #: in that fork.  The gradient checker then expects assignment.
    overwrites_param_gradients: bool = False
    #: The top is an elementwise function of bottom 0, of its shape (activations, Scale, ...):
    #: it holds no new units (the papers' model size counts units where they are computed).
    elementwise: bool = False
    #: How many leading tops are hidden feature maps for the papers' model size (-1: all):
    #: Convolution, Deconvolution, InnerProduct, Unpooling; Pooling's output, not its mask.
    feature_tops: int = 0
    #: Per-parameter-blob gradient flags set by the Net (Caffe's ``param_propagate_down_``);
    #: None = every parameter gets its gradient.
    param_propagate_down: list[bool] | None = None
    #: The layer keeps values derived from its bottoms between forward and backward (columns);
    #: the Net clears the flag where another layer overwrites that memory in between.
    reuse_forward_columns: bool = False
    #: The layer can skip the zeros of a bottom that is zero off a stride grid; the Net sets
    #: ``bottom_spread`` to that stride before each forward in which it holds, else None.
    accepts_sparse_bottom: bool = False
    bottom_spread: tuple[int, ...] | None = None

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

    def shares_memory(self, bottom_index: int, top_index: int) -> bool:
        """True when top ``top_index`` is a view of bottom ``bottom_index`` (no copy): an
        in-place write into one is seen through the other."""
        return False

    def source_top_shapes(self) -> list[tuple[int, ...]]:
        """Data layers: the top shapes as the data source tells them, read cheaply (a file
        header, one record) without setting the layer up or loading data; raises the layer's
        one-line error saying why when the source cannot be read.  Used by shape inference
        (``params``, ``export``) before any data is loaded."""
        raise self.error("reads no data source")

    def param_top_shapes(self) -> list[tuple[int, ...] | None]:
        """Data layers: the top shapes that the layer's parameters alone fix (a label's batch,
        ``crop_size`` ...), None for a top whose shape only the data can tell."""
        return [None] * len(self.param.top)

    def sparse_top_stride(self) -> tuple[int, ...] | None:
        """After forward, is top 0 zero everywhere off a grid of this stride (from index 0)?"""
        return None

    def param_needs_gradient(self, index: int) -> bool:
        """Caffe's ``param_propagate_down(index)``."""
        flags = self.param_propagate_down
        return flags is None or (index < len(flags) and bool(flags[index]))

    def bottom_name(self, index: int) -> str:
        """The prototxt name of bottom ``index`` (for messages)."""
        return self.param.bottom[index] if index < len(self.param.bottom) else f"bottom {index}"

    def allow_force_backward(self, bottom_index: int) -> bool:
        """False for inputs that never get a gradient (loss labels/targets)."""
        return True

    #: How the numerical gradient checker treats this layer ("smooth", or "kink" for layers
    #: with non-differentiable points such as MAX/ReLU/unpooling: inputs are drawn away from
    #: kinks).  Loss-label bottoms are excluded through ``allow_force_backward``.
    gradient_check: str = "smooth"

    def __repr__(self) -> str:
        return f"<{self.type} layer '{self.name}'>"


class NeuronLayer(Layer):
    """Caffe's NeuronLayer: exactly one bottom and one top, top shaped like the bottom."""

    exact_bottoms = 1
    exact_tops = 1
    elementwise = True

    def reshape(self, bottom_shapes):
        return [tuple(bottom_shapes[0])]


class LossLayer(Layer):
    """Caffe's ``LossLayer``: bottoms (prediction, target/label), one scalar top that gets
    ``loss_weight`` 1 unless the prototxt says otherwise (created when missing); the target
    gets no gradient by default.  ``backward`` reads the loss weight from ``top[0].diff``."""

    exact_bottoms = 2
    exact_tops = 1
    is_loss = True
    #: The loss compares a prediction with a target of the same size (Euclidean, sigmoid
    #: cross-entropy): with the net's input as target, the prediction is a reconstruction.
    compares_like_shaped = False

    def allow_force_backward(self, bottom_index: int) -> bool:
        return bottom_index != 1

    def check_same_num(self, bottom_shapes) -> None:
        """LossLayer::Reshape: data and label share the first dimension."""
        a, b = tuple(bottom_shapes[0]), tuple(bottom_shapes[1])
        if not a or not b or a[0] != b[0]:
            raise self.error(
                f"The data and label should have the same first dimension: bottom 0 {list(a)}, bottom 1 {list(b)}")

    def reshape(self, bottom_shapes):
        self.check_same_num(bottom_shapes)
        return [()]

    @staticmethod
    def loss_weight(top) -> float:
        """The top's loss weight, which the Net keeps in its diff."""
        return top[0].diff.reshape(-1)[0]
