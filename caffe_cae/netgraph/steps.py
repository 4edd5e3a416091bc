"""The Net's planned steps: one per layer, in net order, holding the layer's blobs.

A plain :class:`LayerStep` runs ``Layer::Forward`` / ``Layer::Backward``.  A fused pair from
:attr:`caffe_cae.netgraph.dataflow.Dataflow.sparse_pairs` (a top-left Unpooling whose top only a
Deconvolution reads) is two cooperating steps: the :class:`SparseSourceStep` records the
forward pass in which it ran, and the :class:`SparseReaderStep` lets its layer skip the zeros
(``bottom_spread``) only in that same pass -- a blob written by hand between passes
(``forward(start=...)``) or a per-layer callback run gets the dense path.  The per-pass state
lives in these steps, not in the Net; the Net only numbers its passes.
"""
from __future__ import annotations

from caffe_cae.blob import Blob
from caffe_cae.netgraph.dataflow import Dataflow
from caffe_cae.netgraph.graph import LayerNode, NetGraph


class LayerStep:
    """Run one layer on its blobs."""

    def __init__(self, node: LayerNode, blobs: list[Blob]):
        self.node = node
        self.layer = node.layer
        self.bottom = [blobs[b] for b in node.bottom_ids]
        self.top = [blobs[t] for t in node.top_ids]
        self.frozen = [k for k, down in enumerate(node.param_propagate_down) if not down]
        # Caffe calls Backward only when something gets a gradient (or the layer writes anyway).
        self.backward_is_noop = (not any(node.bottom_need_backward)
                                 and len(self.frozen) == len(node.param_shapes)
                                 and not node.layer.backward_ignores_propagate_down)

    def forward(self, pass_id: int) -> None:
        self.layer.forward(self.bottom, self.top)

    def backward(self) -> None:
        node = self.node
        if not node.need_backward or self.backward_is_noop:
            return
        params = self.layer.blobs
        kept = [params[k].diff.copy() for k in self.frozen]
        self.layer.backward(self.top, list(node.bottom_need_backward), self.bottom)
        for k, diff in zip(self.frozen, kept):  # param_propagate_down false: no gradient
            params[k].diff[...] = diff


class SparseSourceStep(LayerStep):
    """A layer whose top is zero off a stride grid; remembers the pass it last ran in."""

    ran_in_pass = -1

    def forward(self, pass_id: int) -> None:
        super().forward(pass_id)
        self.ran_in_pass = pass_id


class SparseReaderStep(LayerStep):
    """The only reader of a :class:`SparseSourceStep`'s top: sparse when fresh in this pass."""

    def __init__(self, node: LayerNode, blobs: list[Blob], source: SparseSourceStep):
        super().__init__(node, blobs)
        self.source = source

    def forward(self, pass_id: int) -> None:
        fresh = self.source.ran_in_pass == pass_id
        self.layer.bottom_spread = self.source.layer.sparse_top_stride() if fresh else None
        super().forward(pass_id)


def plan_steps(graph: NetGraph, dataflow: Dataflow, blobs: list[Blob]) -> list[LayerStep]:
    """One step per layer of ``graph``, the fused pairs of ``dataflow`` as cooperating steps."""
    sources = {source: reader for reader, source in dataflow.sparse_pairs.items()}
    steps: list[LayerStep] = []
    for node in graph.layers:
        if node.index in sources:
            steps.append(SparseSourceStep(node, blobs))
        elif node.index in dataflow.sparse_pairs:
            steps.append(SparseReaderStep(node, blobs, steps[dataflow.sparse_pairs[node.index]]))
        else:
            steps.append(LayerStep(node, blobs))
    return steps
