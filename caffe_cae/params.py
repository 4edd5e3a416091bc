"""Count a net's trainable parameters and its "model size" from shapes alone (no numerics).

The papers' two size measures (Turchenko et al. 2019, Tables 1-3):

* **trainable parameters** |w+b|: the elements of every parameter blob of every layer.  Table 2
  counts the Siamese net over both branches although they share their weights, so
  :attr:`ParamReport.total` counts a shared blob once per layer using it and
  :attr:`ParamReport.unique` once per blob (Caffe's learnable parameters);
* **model size**: the elements, per sample, of the hidden feature maps and neurons, i.e. the tops
  of Convolution, Deconvolution, InnerProduct, Pooling (not its mask) and Unpooling layers,
  without the net's reconstruction of its input (the prediction that a Euclidean or
  sigmoid-cross-entropy loss compares with the input data; in a net without losses, an output
  the size of the input).  Activations, Reshape, Flatten, Slice and Split make no new units.

Shapes come from :func:`caffe_cae.netgraph.graph.build_graph` (Caffe's ``Net::Init`` without
arrays), which layer computed a blob from :class:`caffe_cae.netgraph.dataflow.Dataflow`, and
what counts from the layers' traits (``feature_tops``, ``elementwise``, ``shares_memory``,
``LossLayer.compares_like_shaped``).  Data-layer shapes come from ``--input-shape``, the data
source or the layer's parameters (:func:`caffe_cae.netgraph.data_shapes.data_top_shapes`); a
net whose data is not at hand and whose parameters do not fix its shape needs ``--input-shape``.
"""
from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass, field

from caffe_cae.errors import CaffeCaeError
from caffe_cae.layers.base import LossLayer
from caffe_cae.netgraph.data_shapes import data_top_shapes
from caffe_cae.netgraph.dataflow import Dataflow
from caffe_cae.netgraph.graph import NetGraph, build_graph
from caffe_cae.proto import caffe_pb2

log = logging.getLogger(__name__)

Shape = tuple[int, ...]


@dataclass
class LayerRow:
    """One layer of the table."""

    name: str
    type: str
    param_shapes: list[Shape]
    param_counts: list[int]
    shared: list[bool]              # per param: shared with an earlier layer (by param name)
    frozen: list[bool]              # per param: lr_mult 0, i.e. not trained
    tops: list[tuple[str, Shape]]   # (blob, full shape incl. batch)
    hidden: int = 0                 # this layer's contribution to the model size

    @property
    def weights(self) -> int:
        return self.param_counts[0] if self.param_counts else 0

    @property
    def biases(self) -> int:
        return sum(self.param_counts[1:])

    @property
    def params(self) -> int:
        return sum(self.param_counts)

    @property
    def trainable(self) -> int:
        return sum(c for c, f in zip(self.param_counts, self.frozen) if not f)


@dataclass
class ParamReport:
    """Per-layer rows and the totals of one net."""

    net_name: str
    phase: str
    rows: list[LayerRow] = field(default_factory=list)
    unique: int = 0                  # trainable elements, a shared blob counted once
    frozen: int = 0                  # elements of blobs with lr_mult 0 (counted once)
    model_size: int = 0

    @property
    def total(self) -> int:
        """Trainable elements summed over the layers (a shared blob once per user: Table 2)."""
        return sum(row.trainable for row in self.rows)


def count(shape: Shape) -> int:
    return math.prod(shape) if shape else 1


def _per_sample(shape: Shape) -> int:
    return count(shape[1:]) if shape else 1


# ------------------------------------------------------------------------------------------
# counting


def _origin(flow: Dataflow, blob: int) -> int | None:
    """The layer that computed ``blob``'s units, seen through views and elementwise layers."""
    layers = flow.graph.layers
    while (writer := flow.first_writer(blob)) is not None:
        node = layers[writer]
        passes_through = node.layer.elementwise or (len(node.bottom_ids) == 1 and node.layer.shares_memory(0, 0))
        if passes_through and node.bottom_ids:
            blob = node.bottom_ids[0]
            continue
        return node.index
    return None


def _reconstructions(flow: Dataflow) -> set[int]:
    """Indices of the layers whose top is the net's reconstruction of its input."""
    graph = flow.graph
    layers = graph.layers

    def is_input(blob: int) -> bool:
        origin = _origin(flow, blob)
        return origin is None or not layers[origin].bottom_ids

    found: set[int] = set()
    losses = [n for n in layers if isinstance(n.layer, LossLayer) and n.layer.compares_like_shaped
              and len(n.bottom_ids) == 2]
    for node in losses:
        prediction, target = node.bottom_ids
        if is_input(target) and not is_input(prediction):
            found.add(_origin(flow, prediction))
    if losses or any(n.layer.is_loss for n in layers):
        return found
    inputs = {_per_sample(graph.blob_shapes[b]) for n in layers if not n.bottom_ids for b in n.top_ids}
    for blob in graph.output_ids:
        origin = _origin(flow, blob)
        if origin is not None and layers[origin].bottom_ids and _per_sample(graph.blob_shapes[blob]) in inputs:
            found.add(origin)
    return found


def report_graph(graph: NetGraph, phase: str = "TRAIN") -> ParamReport:
    """The table of an already built :class:`NetGraph`."""
    report = ParamReport(net_name=graph.name, phase=phase)
    skip = _reconstructions(Dataflow(graph))
    for node in graph.layers:
        if node.type == "Split":  # Caffe's own plumbing, not a layer of the prototxt
            continue
        entries = [graph.params[i] for i in node.param_ids]
        row = LayerRow(
            name=node.name,
            type=node.type,
            param_shapes=list(node.param_shapes),
            param_counts=[count(s) for s in node.param_shapes],
            shared=[e.owner >= 0 for e in entries],
            frozen=[graph.params_lr[e.learnable_id] == 0 for e in entries],
            tops=[(graph.blob_names[b], graph.blob_shapes[b]) for b in node.top_ids],
        )
        if node.layer.feature_tops and node.index not in skip:
            n = node.layer.feature_tops
            tops = node.top_ids if n < 0 else node.top_ids[:n]
            row.hidden = sum(_per_sample(graph.blob_shapes[b]) for b in tops)
        report.rows.append(row)
    owners = [graph.params[i] for i in graph.learnable]
    report.unique = sum(count(p.shape) for p, lr in zip(owners, graph.params_lr) if lr != 0)
    report.frozen = sum(count(p.shape) for p, lr in zip(owners, graph.params_lr) if lr == 0)
    report.model_size = sum(row.hidden for row in report.rows)
    return report


def count_params(net: caffe_pb2.NetParameter | str | os.PathLike, phase: str = "TRAIN",
                 stages: tuple[str, ...] = (), level: int = 0,
                 input_shapes: dict[str, Shape] | None = None) -> ParamReport:
    """Per-layer parameter and blob sizes of ``net`` (a path or NetParameter; legacy syntax is
    upgraded first, as :class:`caffe_cae.Net` does) in ``phase`` ("TRAIN" or "TEST", default
    TRAIN: the one phase every train/test net has), ``level`` and extra ``stages``.

    ``input_shapes``: blob -> per-sample shape for data layers (and Input layers) to override.
    """
    from caffe_cae.net import load_net_param, set_net_state  # the Net's own loading rules

    loaded, _where = load_net_param(net)
    param = caffe_pb2.NetParameter()
    param.CopyFrom(loaded)
    if phase not in ("TRAIN", "TEST"):
        raise CaffeCaeError(f"phase must be TRAIN or TEST, not {phase!r}")
    set_net_state(param, caffe_pb2.Phase.Value(phase), level, stages)
    from caffe_cae.layers.python_layer import allow_python_layers, net_folder

    with allow_python_layers(None, net_folder(net)):
        graph = build_graph(param, shape_overrides=data_top_shapes(param, input_shapes))
    return report_graph(graph, phase)


# ------------------------------------------------------------------------------------------
# printing


def _shape_text(shape: Shape) -> str:
    return "x".join(str(d) for d in shape) if shape else "scalar"


def format_report(report: ParamReport) -> str:
    """The table ``caffe-cae params`` prints: one line per layer, then the totals."""
    header = ("layer", "type", "weights", "biases", "params", "hidden", "tops")
    lines = []
    for row in report.rows:
        weights = f"{row.weights} ({_shape_text(row.param_shapes[0])})" if row.param_shapes else "-"
        biases = str(row.biases) if len(row.param_shapes) > 1 else "-"
        params = "-"
        if row.param_shapes:
            params = str(row.trainable) + (" shared" if any(row.shared) else "") + (" frozen" if any(row.frozen) else "")
        tops = ", ".join(f"{name} {_shape_text(shape)}" for name, shape in row.tops)
        lines.append((row.name, row.type, weights, biases, params, str(row.hidden) if row.hidden else "-", tops))
    widths = [max(len(r[i]) for r in [header, *lines]) for i in range(len(header) - 1)]
    out = []
    for r in [header, *lines]:
        cells = [c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))]
        out.append("  ".join(cells + [r[-1]]).rstrip())
    out.append("")
    out.append(f"net '{report.net_name}' ({report.phase})")
    shared = report.total - report.unique
    out.append(f"trainable parameters: {report.total}"
               + (f" over all layers; {report.unique} unique ({shared} shared by name)" if shared else ""))
    if report.frozen:
        out.append(f"frozen parameters (lr_mult 0, not counted above): {report.frozen}")
    out.append(f"model size (hidden feature-map elements and neurons per sample): {report.model_size}")
    return "\n".join(out) + "\n"
