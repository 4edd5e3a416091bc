"""``Net::Init`` without numerics: which layers exist, how blobs connect, their shapes, the loss
weights, parameter sharing and which layers/bottoms take part in the backward pass.

The result, a :class:`NetGraph`, is what :class:`caffe_cae.net.Net` allocates arrays for, and
what :func:`caffe_cae.net.infer_shapes` reports.  Every rule mirrors ``net.cpp`` (BVLC master):

* bottoms must exist (``Unknown bottom blob``); a top equal to the bottom of the same index is
  in-place; any other reuse of a name is ``produced by multiple sources``;
* loss layers without a top get an anonymous ``(automatic)`` one (Caffe's AutoTopBlobs) and
  without ``loss_weight`` get ``loss_weight: 1`` written into their LayerParameter (so
  ``to_proto`` prints it, as Caffe's does);
* a layer needs backward if a bottom blob needs it or one of its params has ``lr_mult != 0``;
  walking backwards, layers that feed no non-zero loss are pruned, as are layers all of whose
  tops skip backpropagation (``propagate_down: false`` downstream); ``force_backward`` then turns
  every layer on, every bottom its layer allows, and every param gradient;
* params named by ``param { name }`` are owned by their first layer; later users must match the
  owner's shape (STRICT) or count (PERMISSIVE) and share the owner's learnable slot, whose
  lr/decay multipliers may be set once.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np

from caffe_cae.errors import CaffeCaeError
from caffe_cae.layers import create_layer
from caffe_cae.layers.base import Layer
from caffe_cae.limits import check_shape, element_count
from caffe_cae.netgraph.filtering import filter_net
from caffe_cae.netgraph.splits import insert_splits, unknown_bottom
from caffe_cae.proto import caffe_pb2

log = logging.getLogger(__name__)

Shape = tuple[int, ...]
AUTOMATIC_TOP = "(automatic)"


def shape_string(shape: Shape) -> str:
    """Caffe's ``Blob::shape_string``: ``2 3 4 4 (96)``."""
    count = element_count(shape)
    return " ".join(str(d) for d in shape) + f" ({count})"


@dataclass
class LayerNode:
    """One instantiated layer and its wiring (Caffe's per-layer vectors in ``Net``)."""

    index: int
    param: caffe_pb2.LayerParameter  # as instantiated: filtered, split-renamed, phase set
    layer: Layer
    bottom_ids: list[int] = field(default_factory=list)
    top_ids: list[int] = field(default_factory=list)
    bottom_need_backward: list[bool] = field(default_factory=list)
    need_backward: bool = False
    loss_weights: list[float] = field(default_factory=list)  # one per top
    param_shapes: list[Shape] = field(default_factory=list)
    param_ids: list[int] = field(default_factory=list)  # indices into NetGraph.params
    param_propagate_down: list[bool] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.param.name

    @property
    def type(self) -> str:
        return self.param.type


@dataclass
class ParamEntry:
    """One parameter blob of one layer (Caffe's ``params_`` entry)."""

    layer_index: int
    param_index: int
    shape: Shape
    display_name: str
    owner: int  # index of the owning ParamEntry, -1 when this entry owns its blob
    learnable_id: int  # index into NetGraph.learnable


class NetGraph:
    """Structure of a net after filtering, Split insertion, setup and shape inference."""

    def __init__(self, name: str, state: caffe_pb2.NetState, force_backward: bool):
        self.name = name
        self.state = state
        self.force_backward = force_backward
        self.layers: list[LayerNode] = []
        self.blob_names: list[str] = []
        self.blob_shapes: list[Shape] = []
        self.blob_need_backward: list[bool] = []
        self.input_ids: list[int] = []
        self.output_ids: list[int] = []
        self.params: list[ParamEntry] = []
        #: params in learnable order (the owners), with their multipliers
        self.learnable: list[int] = []
        self.params_lr: list[float] = []
        self.params_weight_decay: list[float] = []
        self.has_params_lr: list[bool] = []
        self.has_params_decay: list[bool] = []

    @property
    def phase(self) -> int:
        return self.state.phase

    def layer_index(self, name: str) -> int:
        """Index of the first layer called ``name`` (pycaffe's ``list(layer_names).index``)."""
        for node in self.layers:
            if node.name == name:
                return node.index
        raise CaffeCaeError(f"layer '{name}': no such layer in net '{self.name}'")

    def blob_index(self, name: str) -> int:
        """Index of the (last) blob called ``name``."""
        for i in range(len(self.blob_names) - 1, -1, -1):
            if self.blob_names[i] == name:
                return i
        raise CaffeCaeError(f"blob '{name}': no such blob in net '{self.name}'")


# --------------------------------------------------------------------------------------------
# errors that name the layer, its blobs and their shapes


def describe_bottoms(graph: NetGraph, node: LayerNode) -> str:
    parts = [
        f"'{graph.blob_names[b]}' {shape_string(graph.blob_shapes[b])}" for b in node.bottom_ids
    ]
    return "bottoms: " + (", ".join(parts) if parts else "none")


def layer_error(node: LayerNode, message: str) -> CaffeCaeError:
    return CaffeCaeError(f"layer '{node.name}' ({node.type}): {message}")


def with_blob_context(err: CaffeCaeError, graph: NetGraph, node: LayerNode) -> CaffeCaeError:
    """The layer's own one-line error, prefixed with the layer when missing, plus the bottoms."""
    message = str(err)
    if not message.startswith("layer '"):
        message = f"layer '{node.name}' ({node.type}): {message}"
    return CaffeCaeError(f"{message} [{describe_bottoms(graph, node)}]")


def run_layer_step(graph: NetGraph, node: LayerNode, step, *args):
    """Call a layer's setup/reshape; its user errors come back naming the bottoms."""
    try:
        return step(*args)
    except CaffeCaeError as err:
        raise with_blob_context(err, graph, node) from None


def top_shapes_of(graph: NetGraph, node: LayerNode, bottom_shapes: list[Shape]) -> list[Shape]:
    shapes = run_layer_step(graph, node, node.layer.reshape, bottom_shapes)
    shapes = [tuple(int(d) for d in s) for s in shapes]
    if len(shapes) != len(node.top_ids):
        raise RuntimeError(
            f"{node.type}.reshape returned {len(shapes)} shapes for {len(node.top_ids)} tops"
        )
    return shapes


# --------------------------------------------------------------------------------------------
# building


def build_graph(
    net: caffe_pb2.NetParameter, shape_overrides: dict[str, Shape] | None = None
) -> NetGraph:
    """Instantiate and wire the layers of ``net`` for ``net.state`` (Caffe's ``Net::Init``).

    ``net`` must already be in the current format (see :mod:`caffe_cae.migrate`).
    ``shape_overrides`` (blob name -> shape) replaces the top shapes of layers without bottoms
    (Input, data layers); a data layer whose tops are all overridden is not set up at all, so
    shapes can be inferred for nets whose data files do not exist yet.
    """
    overrides = {k: tuple(int(d) for d in v) for k, v in (shape_overrides or {}).items()}
    param = insert_splits(filter_net(net))
    graph = NetGraph(param.name, param.state, param.force_backward)
    builder = _Builder(graph, overrides)
    for index, layer_param in enumerate(param.layer):
        builder.add_layer(index, layer_param)
    _plan_backward(graph)
    graph.output_ids = [builder.available[name] for name in sorted(builder.available)]
    for i in graph.output_ids:
        log.info("This network produces output %s", graph.blob_names[i])
    log.info("Network initialization done.")
    return graph


class _Builder:
    def __init__(self, graph: NetGraph, overrides: dict[str, Shape]):
        self.graph = graph
        self.overrides = overrides
        self.blob_id: dict[str, int] = {}
        self.available: dict[str, int] = {}  # produced, not yet consumed
        self.param_owner_by_name: dict[str, int] = {}

    # -- blobs ---------------------------------------------------------------------------------
    def new_blob(self, name: str) -> int:
        graph = self.graph
        graph.blob_names.append(name)
        graph.blob_shapes.append(())
        graph.blob_need_backward.append(False)
        return len(graph.blob_names) - 1

    def append_bottom(self, node: LayerNode, j: int) -> None:
        name = node.param.bottom[j]
        if name not in self.available:
            raise unknown_bottom(node.param, j)
        blob = self.blob_id[name]
        log.info("%s <- %s", node.name, name)
        node.bottom_ids.append(blob)
        del self.available[name]
        need = self.graph.blob_need_backward[blob]
        if node.param.propagate_down:
            need = bool(node.param.propagate_down[j])
        node.bottom_need_backward.append(need)

    def append_top(self, node: LayerNode, j: int, anonymous: bool = False) -> None:
        p = node.param
        name = AUTOMATIC_TOP if anonymous else p.top[j]
        if not anonymous and j < len(p.bottom) and name == p.bottom[j]:
            log.info("%s -> %s (in-place)", node.name, name)
            node.top_ids.append(self.blob_id[name])
        elif not anonymous and name in self.blob_id:
            raise layer_error(node, f"top blob '{name}' produced by multiple sources")
        else:
            log.info("%s -> %s", node.name, name)
            blob = self.new_blob(name)
            node.top_ids.append(blob)
            if not anonymous:
                self.blob_id[name] = blob
        if not anonymous:
            self.available[name] = self.blob_id[name]

    # -- one layer -----------------------------------------------------------------------------
    def add_layer(self, index: int, source: caffe_pb2.LayerParameter) -> None:
        graph = self.graph
        p = caffe_pb2.LayerParameter()
        p.CopyFrom(source)
        if not p.HasField("phase"):
            p.phase = graph.phase
        log.info("Creating Layer %s", p.name)
        layer = create_layer(p, p.phase)
        node = LayerNode(index=index, param=layer.param, layer=layer)
        p = node.param
        if p.propagate_down and len(p.propagate_down) != len(p.bottom):
            raise layer_error(
                node,
                f"propagate_down must be given 0 or {len(p.bottom)} times (once per bottom), "
                f"got {len(p.propagate_down)}",
            )
        graph.layers.append(node)

        need_backward = False
        for j in range(len(p.bottom)):
            self.append_bottom(node, j)
            need_backward |= graph.blob_need_backward[node.bottom_ids[-1]]
        for j in range(len(p.top)):
            self.append_top(node, j)
            if p.type == "Input":
                graph.input_ids.append(node.top_ids[-1])
        if layer.is_loss:  # AutoTopBlobs
            needed = max(layer.min_tops or 0, layer.exact_tops or 0)
            for j in range(len(node.top_ids), needed):
                self.append_top(node, j, anonymous=True)
            if not p.loss_weight:  # LossLayer::LayerSetUp
                p.loss_weight.append(1.0)

        # Net::Init reads the param specs of the prototxt's layer for the backward flags, and
        # the layer's own (BatchNorm appends ``lr_mult: 0`` specs in its setup) for the solver.
        declared = [caffe_pb2.ParamSpec(lr_mult=spec.lr_mult) for spec in p.param]
        self.set_up(node)
        self.add_params(node, declared)
        need_backward |= any(node.param_propagate_down)
        node.need_backward = need_backward
        if need_backward:
            for blob in node.top_ids:
                graph.blob_need_backward[blob] = True

    def set_up(self, node: LayerNode) -> None:
        """Layer::SetUp: blob counts, LayerSetUp (param shapes), Reshape (top shapes), loss weights."""
        graph, layer, p = self.graph, node.layer, node.param
        log.info("Setting up %s", node.name)
        bottom_shapes = [graph.blob_shapes[b] for b in node.bottom_ids]
        tops = [graph.blob_names[t] for t in node.top_ids]
        if not node.bottom_ids and tops and all(t in self.overrides for t in tops):
            node.param_shapes = []
            top_shapes = [self.overrides[t] for t in tops]
        else:
            run_layer_step(graph, node, layer.check_blob_counts, len(node.bottom_ids), len(tops))
            shapes = run_layer_step(graph, node, layer.setup, bottom_shapes)
            node.param_shapes = [tuple(int(d) for d in s) for s in shapes]
            for k, shape in enumerate(node.param_shapes):
                check_shape(shape, f"layer '{node.name}' ({node.type}): param {k}")
            top_shapes = top_shapes_of(graph, node, bottom_shapes)
            if not node.bottom_ids:
                top_shapes = [self.overrides.get(t, s) for t, s in zip(tops, top_shapes)]
        for blob, shape in zip(node.top_ids, top_shapes):
            # Caffe's Blob::Reshape CHECKs (INT_MAX elements), before anything is allocated; an
            # in-place top shares its bottom's memory, so it cannot take another shape.
            check_shape(shape, f"layer '{node.name}' ({node.type}): top '{graph.blob_names[blob]}'")
            if blob in node.bottom_ids and tuple(graph.blob_shapes[blob]) != tuple(shape):
                raise layer_error(node, f"cannot compute in place: top '{graph.blob_names[blob]}' would be "
                                        f"{shape_string(shape)}, its bottom is {shape_string(graph.blob_shapes[blob])}; "
                                        f"give the top its own name")
            graph.blob_shapes[blob] = shape
        if p.loss_weight and len(p.loss_weight) != len(tops):
            raise layer_error(
                node,
                f"loss_weight must be unspecified or given once per top blob ({len(tops)} tops, "
                f"{len(p.loss_weight)} loss_weight values)",
            )
        node.loss_weights = [float(w) for w in p.loss_weight] or [0.0] * len(tops)
        for blob, weight in zip(node.top_ids, node.loss_weights):
            log.info("Top shape: %s", shape_string(graph.blob_shapes[blob]))
            if weight:
                log.info("    with loss weight %g", weight)

    # -- parameters (Net::AppendParam) ---------------------------------------------------------
    def add_params(self, node: LayerNode, declared: list) -> None:
        p = node.param
        if len(declared) > len(node.param_shapes):
            raise layer_error(
                node,
                f"too many param specs: {len(declared)} given, the layer has "
                f"{len(node.param_shapes)} parameter blob(s)",
            )
        default = caffe_pb2.ParamSpec()
        for k, shape in enumerate(node.param_shapes):
            node.param_propagate_down.append((declared[k] if k < len(declared) else default).lr_mult != 0)
            self.append_param(node, k, shape, p.param[k] if k < len(p.param) else default)

    def append_param(self, node: LayerNode, k: int, shape: Shape, spec) -> None:
        graph = self.graph
        name = spec.name
        entry_id = len(graph.params)
        node.param_ids.append(entry_id)
        if not name or name not in self.param_owner_by_name:
            if name:
                self.param_owner_by_name[name] = entry_id
            graph.params.append(ParamEntry(node.index, k, shape, name or str(k), -1, len(graph.learnable)))
            graph.learnable.append(entry_id)
            graph.has_params_lr.append(spec.HasField("lr_mult"))
            graph.has_params_decay.append(spec.HasField("decay_mult"))
            graph.params_lr.append(float(spec.lr_mult))
            graph.params_weight_decay.append(float(spec.decay_mult))
            return
        owner_id = self.param_owner_by_name[name]
        owner = graph.params[owner_id]
        owner_node = graph.layers[owner.layer_index]
        log.info(
            "Sharing parameters '%s' owned by layer '%s', param index %d",
            name, owner_node.name, owner.param_index,
        )
        prefix = f"cannot share param '{name}' owned by layer '{owner_node.name}'"
        if spec.share_mode == caffe_pb2.ParamSpec.PERMISSIVE:
            if int(np.prod(shape)) != int(np.prod(owner.shape)):
                raise layer_error(
                    node,
                    f"{prefix}: count mismatch; owner param shape is {shape_string(owner.shape)}, "
                    f"this layer's is {shape_string(shape)}",
                )
        elif tuple(shape) != tuple(owner.shape):
            raise layer_error(
                node,
                f"{prefix}: shape mismatch; owner param shape is {shape_string(owner.shape)}, "
                f"this layer expects {shape_string(shape)} (share_mode PERMISSIVE only "
                "compares counts)",
            )
        learnable_id = owner.learnable_id
        graph.params.append(ParamEntry(node.index, k, shape, name, owner_id, learnable_id))
        for what, has, values in (
            ("lr_mult", graph.has_params_lr, graph.params_lr),
            ("decay_mult", graph.has_params_decay, graph.params_weight_decay),
        ):
            if not spec.HasField(what):
                continue
            value = float(getattr(spec, what))
            if has[learnable_id]:
                if value != values[learnable_id]:
                    raise layer_error(
                        node,
                        f"shared param '{name}' has mismatched {what}: {value:g} here, "
                        f"{values[learnable_id]:g} before",
                    )
            else:
                has[learnable_id] = True
                values[learnable_id] = value


# --------------------------------------------------------------------------------------------
# backward plan (the end of Net::Init)


def _plan_backward(graph: NetGraph) -> None:
    """Prune layers that feed no loss or whose tops all skip backprop; then force_backward."""
    under_loss: set[str] = set()
    skip_backprop: set[str] = set()
    for node in reversed(graph.layers):
        contributes_loss = False
        skip_propagate_down = True
        for blob, weight in zip(node.top_ids, node.loss_weights):
            name = graph.blob_names[blob]
            if weight or name in under_loss:
                contributes_loss = True
            if name not in skip_backprop:
                skip_propagate_down = False
            if contributes_loss and not skip_propagate_down:
                break
        if node.need_backward and skip_propagate_down:
            node.need_backward = False
            node.bottom_need_backward = [False] * len(node.bottom_ids)
        if not contributes_loss:
            node.need_backward = False
        log.info(
            "%s %s backward computation.",
            node.name, "needs" if node.need_backward else "does not need",
        )
        for j, blob in enumerate(node.bottom_ids):
            name = graph.blob_names[blob]
            if contributes_loss:
                under_loss.add(name)
            else:
                node.bottom_need_backward[j] = False
            if not node.bottom_need_backward[j]:
                skip_backprop.add(name)
    if graph.force_backward:
        for node in graph.layers:
            node.need_backward = True
            for j, blob in enumerate(node.bottom_ids):
                need = node.bottom_need_backward[j] or node.layer.allow_force_backward(j)
                node.bottom_need_backward[j] = need
                graph.blob_need_backward[blob] = graph.blob_need_backward[blob] or need
            node.param_propagate_down = [True] * len(node.param_shapes)
