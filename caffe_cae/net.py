"""Caffe's ``Net`` in NumPy, with pycaffe's interface.

>>> net = caffe_cae.Net("deploy.prototxt", "weights.caffemodel", caffe_cae.TEST)
>>> out = net.forward(data=images)            # {output blob: array}
>>> net.blobs["conv1"].data, net.params["conv1"][0].diff

Structure (filtering, Split layers, in-place tops, shapes, loss weights, parameter sharing, the
backward plan) is decided by :func:`caffe_cae.netgraph.graph.build_graph` exactly like
``Net::Init``; this module allocates the blobs, fills and shares the parameters and runs
``ForwardFromTo`` / ``BackwardFromTo``.

Memory follows Caffe: an in-place top *is* its bottom blob; a shared parameter's data and diff
are views of its owner's arrays (so gradients of all users add up in the owner's diff); the
diff of every top with a loss weight holds that weight (a loss layer's backward reads it).
Blob diffs are never cleared by the net (Caffe's backward overwrites what it computes; parameter
diffs accumulate until :meth:`Net.clear_param_diffs`, which the solver calls).
"""
from __future__ import annotations

import itertools
import logging
import os
from collections import OrderedDict
from typing import Iterable

import numpy as np

from caffe_cae.blob import Blob
from caffe_cae.errors import CaffeCaeError
from caffe_cae.netgraph.graph import (
    AUTOMATIC_TOP, LayerNode, NetGraph, build_graph, shape_string, top_shapes_of,
)
from caffe_cae.netgraph.logs import quiet_loggers
from caffe_cae.parallel import single_threaded_blas
from caffe_cae.netgraph.trained import (
    copy_layers_from_hdf5, copy_trained_layers, net_to_proto, write_hdf5,
)
from caffe_cae.proto import caffe_pb2
from caffe_cae.weights import write_binary

log = logging.getLogger(__name__)

TRAIN = caffe_pb2.TRAIN
TEST = caffe_pb2.TEST

Shape = tuple[int, ...]


# --------------------------------------------------------------------------------------------
# reading and preparing the NetParameter


def load_net_param(net, source: str | None = None) -> tuple[caffe_pb2.NetParameter, str]:
    """``(NetParameter in the current syntax, where)`` from a path or a message.

    Legacy nets (V0/V1 ``layers``, ``input:`` fields, Noh's fork) are upgraded in memory by
    :func:`caffe_cae.migrate.upgrade_net` (Reshape fix included), with one notice in the log.
    """
    if isinstance(net, caffe_pb2.NetParameter):
        where = source or (f"net '{net.name}'" if net.name else "<net>")
        param = net
    elif isinstance(net, (str, os.PathLike)):
        from caffe_cae.prototxt import read_net_text

        where = str(net)
        param = read_net_text(net)
    else:
        raise TypeError(f"Net() takes a prototxt path or a NetParameter, not {type(net).__name__}")
    from caffe_cae.migrate import net_needs_upgrade, upgrade_net

    if net_needs_upgrade(param):
        with quiet_loggers("caffe_cae.migrate"):
            param, notes = upgrade_net(param, source=where)
        for note in notes:
            log.debug("upgrade: %s", note)
        problems = [str(n) for n in notes if getattr(n, "level", "info") == "error"]
        log.warning(
            "%s: legacy net definition upgraded in memory%s; `caffe-cae migrate` rewrites the file",
            where, f" ({len(problems)} problem(s): {'; '.join(problems)})" if problems else "",
        )
    else:
        copy = caffe_pb2.NetParameter()
        copy.CopyFrom(param)
        param = copy
    return param, where


def set_net_state(param: caffe_pb2.NetParameter, phase=None, level=None, stages=()) -> None:
    """Like pycaffe's ``Net(file, phase, level, stages)``: phase and level replace the file's
    ``state`` (when given), stages are added to it."""
    if phase is not None:
        if phase not in (TRAIN, TEST):
            raise CaffeCaeError(f"phase must be caffe_cae.TRAIN (0) or caffe_cae.TEST (1), not {phase!r}")
        param.state.phase = phase
    if level is not None:
        param.state.level = int(level)
    if isinstance(stages, str):
        stages = (stages,)
    param.state.stage.extend(stages or ())


def _positional_forms(args, phase, level, stages, weights):
    """pycaffe's positional arguments after the prototxt: ``(phase, level, stages, weights)``,
    or the legacy ``(weights, phase)`` when the first one is a path."""
    if not args:
        return phase, level, stages, weights
    legacy = isinstance(args[0], (str, os.PathLike)) or (args[0] is None and len(args) == 2)
    names = ("weights", "phase") if legacy else ("phase", "level", "stages", "weights")
    if len(args) > len(names):
        raise TypeError(f"Net(net, {', '.join(names)}): too many positional arguments")
    given = {"phase": phase, "level": level, "stages": stages, "weights": weights}
    for name, value in zip(names, args):
        if given[name] is not None:
            raise TypeError(f"Net(): {name} given twice")
        given[name] = value
    return given["phase"], given["level"], given["stages"], given["weights"]


# Caffe::set_random_seed: nets built without an explicit seed draw theirs from this generator.
_seed_source: np.random.Generator | None = None


def set_random_seed(seed: int) -> None:
    """Like ``caffe.set_random_seed``: nets created afterwards without ``seed=`` fill their
    weights (and draw Dropout masks, shuffles) reproducibly.  The values differ from Caffe's,
    whose generator is not NumPy's; load a caffemodel to get Caffe's exact weights."""
    global _seed_source
    _seed_source = np.random.default_rng(int(seed))


def _next_seed() -> int | None:
    return None if _seed_source is None else int(_seed_source.integers(2**63))


# --------------------------------------------------------------------------------------------


class _ByIndexOrName(list):
    """A per-layer list that also accepts a layer name (the first layer with that name)."""

    def __init__(self, items, names):
        super().__init__(items)
        self._names = list(names)

    def __getitem__(self, key):
        if isinstance(key, str):
            try:
                return super().__getitem__(self._names.index(key))
            except ValueError:
                raise KeyError(key) from None
        return super().__getitem__(key)

    # pycaffe's top_names/bottom_names are OrderedDicts keyed by layer name: the dict methods
    # work here too (iteration, though, yields the per-layer lists, in layer order).
    def __contains__(self, key) -> bool:
        return key in self._names if isinstance(key, str) else super().__contains__(key)

    def keys(self) -> list[str]:
        return list(dict.fromkeys(self._names))

    def values(self) -> list:
        return [self[name] for name in self.keys()]

    def items(self) -> list:
        return [(name, self[name]) for name in self.keys()]

    def get(self, name: str, default=None):
        return self[name] if name in self._names else default


class Net:
    """A Caffe net with Caffe's semantics and pycaffe's interface.

    ``Net(net, phase=None, level=None, stages=None, weights=None, dtype=np.float32, seed=None)``

    pycaffe's forms all work: ``Net(file, caffe_cae.TEST)``, ``Net(file, TEST, weights=w)``,
    ``Net(file, TEST, level, stages, weights)``, ``Net(network_file=file, phase=TEST)`` and
    the legacy ``Net(file, weights, TEST)``.

    Args:
        net: a prototxt path or a ``NetParameter`` (any syntax; legacy files are upgraded).
        phase: ``caffe_cae.TRAIN`` or ``caffe_cae.TEST``; default: the file's ``state.phase``
            (TEST when unset, as in Caffe).
        level: the NetState level.  For a path it replaces the file's, default 0, as pycaffe
            and ``caffe test`` do; a ``NetParameter`` keeps its own unless given (like
            ``Net(const NetParameter&)``, which the solver uses).
        stages: extra NetState stages (added to the file's).
        weights: optional ``.caffemodel`` / ``.caffemodel.h5`` to copy in (:meth:`copy_from`).
        dtype: ``np.float32`` (Caffe's float) or ``np.float64`` (gradient checks).
        seed: seed of the NumPy generator the fillers draw from; default: drawn from the
            generator :func:`set_random_seed` seeded, else fresh entropy.
    """

    def __init__(self, net=None, *args, weights=None, phase=None, level=None, stages=None,
                 dtype=np.float32, seed=None, network_file=None):
        if network_file is not None:  # pycaffe's keyword name for the prototxt
            if net is not None:
                raise TypeError("Net(): network_file given twice")
            net = network_file
        if net is None:
            raise TypeError("Net() needs a prototxt path or a NetParameter")
        phase, level, stages, weights = _positional_forms(args, phase, level, stages, weights)
        if level is None and not isinstance(net, caffe_pb2.NetParameter):
            level = 0
        self.dtype = np.dtype(dtype)
        if self.dtype not in (np.float32, np.float64):
            raise CaffeCaeError(f"dtype must be float32 or float64, not {self.dtype}")
        param, self.source = load_net_param(net)
        set_net_state(param, phase, level, stages)
        log.info("Initializing net '%s' from %s", param.name, self.source)
        self.graph: NetGraph = build_graph(param)
        self.name = self.graph.name
        self._rng = np.random.default_rng(seed if seed is not None else _next_seed())
        #: pycaffe's before/after forward/backward callbacks; None while there are none
        self._layer_callbacks: dict[str, list] | None = None
        self._blobs_by_name: OrderedDict[str, Blob] | None = None
        self._params_by_name: OrderedDict[str, list[Blob]] | None = None
        self._blob_list = [
            Blob(shape, self.dtype, name)
            for name, shape in zip(self.graph.blob_names, self.graph.blob_shapes)
        ]
        self._reshaped_for: list[list[Shape] | None] = [None] * len(self.graph.layers)
        for node in self.graph.layers:
            self._reshaped_for[node.index] = [self._blob_list[b].shape for b in node.bottom_ids]
        self._init_params()
        self._set_loss_weight_diffs()
        self._mark_overwritten_bottoms()
        for node in self.graph.layers:  # Layer::set_param_propagate_down: frozen params cost nothing
            if hasattr(node.layer, "param_propagate_down"):
                node.layer.param_propagate_down = list(node.param_propagate_down)
        self._spread_sources = self._find_spread_sources()
        self._spread_source_layers = set(self._spread_sources.values())
        self._fresh_sources: set[int] = set()
        if weights is not None:
            self.copy_from(weights)

    # -- construction -------------------------------------------------------------------------
    def _init_params(self) -> None:
        graph = self.graph
        for node in graph.layers:
            node.layer.blobs = [
                Blob(shape, self.dtype, f"{node.name}/{k}") for k, shape in enumerate(node.param_shapes)
            ]
            if node.param.blobs:  # values given in the prototxt: Caffe uses them, no filler
                from caffe_cae.netgraph.trained import load_blob

                if len(node.param.blobs) != len(node.param_shapes):
                    raise CaffeCaeError(
                        f"layer '{node.name}' ({node.type}): the prototxt gives "
                        f"{len(node.param.blobs)} blobs, the layer has {len(node.param_shapes)}"
                    )
                for k, proto in enumerate(node.param.blobs):
                    load_blob(node.layer.blobs[k], proto, f"layer '{node.name}' ({node.type}): blobs {k}")
            else:  # also hands the seeded rng to parameter-free random layers (Dropout, data)
                node.layer.fill_params(self._rng)
        for entry in graph.params:  # Net::ShareWeights
            if entry.owner < 0:
                continue
            owner = graph.params[entry.owner]
            owner_blob = graph.layers[owner.layer_index].layer.blobs[owner.param_index]
            blob = graph.layers[entry.layer_index].layer.blobs[entry.param_index]
            blob.share_data(owner_blob)
            blob.share_diff(owner_blob)

    def _mark_overwritten_bottoms(self) -> None:
        """Layers that keep values derived from a bottom for backward (``reuse_forward_columns``)
        must recompute them where a later in-place layer writes into that bottom's memory:
        Split, Reshape, Flatten (and one-part Concat/Slice) tops are views of their bottom."""
        root = list(range(len(self._blob_list)))  # blob -> the blob whose memory it views
        last_write: dict[int, int] = {}  # memory root -> last layer writing into it in place
        for node in self.graph.layers:
            layer = node.layer
            if layer.shares_memory(0, 0) or (
                    layer.type in ("Concat", "Slice") and len(node.bottom_ids) == len(node.top_ids) == 1):
                for t in node.top_ids:
                    root[t] = root[node.bottom_ids[0]]
            for blob_id in set(node.top_ids) & set(node.bottom_ids):
                last_write[root[blob_id]] = node.index
        for node in self.graph.layers:
            if getattr(node.layer, "reuse_forward_columns", False) and any(
                    last_write.get(root[b], -1) > node.index for b in node.bottom_ids):
                node.layer.reuse_forward_columns = False

    def _find_spread_sources(self) -> dict[int, int]:
        """Layers that can skip the zeros of a sparse bottom (``bottom_spread``, e.g.
        Deconvolution) -> the layer that writes that bottom with zeros off a stride grid
        (``top_left_spread``, top-left Unpooling), where that bottom is read by nothing else
        and written by nothing in between.  ``_forward_from_to`` tells the reader per pass."""
        readers: dict[int, int] = {}
        writers: dict[int, int] = {}
        for node in self.graph.layers:
            for b in node.bottom_ids:
                readers[b] = readers.get(b, 0) + 1
            for t in node.top_ids:
                writers[t] = writers.get(t, 0) + 1
        sources = {}
        for node in self.graph.layers:
            if node.layer.sparse_top_stride() is None or len(node.top_ids) != 1:
                continue
            top = node.top_ids[0]
            if readers.get(top) != 1 or writers[top] != 1 or top in node.bottom_ids:
                continue
            reader = next(n for n in self.graph.layers if top in n.bottom_ids)
            if reader.layer.accepts_sparse_bottom and reader.bottom_ids == [top]:
                sources[reader.index] = node.index
        return sources

    def _set_loss_weight_diffs(self) -> None:
        """Layer::SetLossWeights: a loss top's diff holds its loss weight."""
        for node in self.graph.layers:
            for blob_id, weight in zip(node.top_ids, node.loss_weights):
                if weight:
                    self._blob_list[blob_id].diff[...] = weight

    # -- pycaffe-style views --------------------------------------------------------------------
    @property
    def phase(self) -> int:
        return self.graph.phase

    @property
    def blobs(self) -> "OrderedDict[str, Blob]":
        """Every blob by name, in creation order (Split tops included), like pycaffe."""
        if self._blobs_by_name is None:
            self._blobs_by_name = OrderedDict((b.name, b) for b in self._blob_list)
        return self._blobs_by_name

    @property
    def layers(self) -> list:
        return [node.layer for node in self.graph.layers]

    @property
    def layer_names(self) -> list[str]:
        return [node.name for node in self.graph.layers]

    @property
    def layer_dict(self) -> "OrderedDict[str, object]":
        """Layers by name, like pycaffe (a repeated name: the last such layer)."""
        return OrderedDict((node.name, node.layer) for node in self.graph.layers)

    @property
    def params(self) -> "OrderedDict[str, list[Blob]]":
        """Parameter blobs by layer name, layers with parameters only, like pycaffe (a
        repeated name: the last such layer's blobs)."""
        if self._params_by_name is None:
            self._params_by_name = OrderedDict(
                (node.name, node.layer.blobs) for node in self.graph.layers if node.layer.blobs
            )
        return self._params_by_name

    @property
    def bottom_names(self) -> _ByIndexOrName:
        names = self.graph.blob_names
        return _ByIndexOrName(
            [[names[b] for b in node.bottom_ids] for node in self.graph.layers], self.layer_names
        )

    @property
    def top_names(self) -> _ByIndexOrName:
        names = self.graph.blob_names
        return _ByIndexOrName(
            [[names[t] for t in node.top_ids] for node in self.graph.layers], self.layer_names
        )

    @property
    def inputs(self) -> list[str]:
        return [self.graph.blob_names[i] for i in self.graph.input_ids]

    @property
    def outputs(self) -> list[str]:
        return [self.graph.blob_names[i] for i in self.graph.output_ids]

    @property
    def blob_loss_weights(self) -> "OrderedDict[str, float]":
        """Loss weight of every blob (0 for non-loss blobs), like pycaffe."""
        weights = [0.0] * len(self._blob_list)
        for node in self.graph.layers:
            for blob_id, weight in zip(node.top_ids, node.loss_weights):
                weights[blob_id] = weight
        return OrderedDict((b.name, w) for b, w in zip(self._blob_list, weights))

    @property
    def layer_need_backward(self) -> list[bool]:
        return [node.need_backward for node in self.graph.layers]

    @property
    def bottom_need_backward(self) -> list[list[bool]]:
        return [list(node.bottom_need_backward) for node in self.graph.layers]

    @property
    def learnable_params(self) -> list[Blob]:
        """The unique (owner) parameter blobs, in Caffe's order: what the solver updates."""
        graph = self.graph
        return [
            graph.layers[graph.params[i].layer_index].layer.blobs[graph.params[i].param_index]
            for i in graph.learnable
        ]

    @property
    def params_lr(self) -> list[float]:
        return list(self.graph.params_lr)

    @property
    def params_weight_decay(self) -> list[float]:
        return list(self.graph.params_weight_decay)

    @property
    def param_owners(self) -> list[int]:
        """For every (layer, param) entry: -1, or the index of the entry that owns its memory."""
        return [entry.owner for entry in self.graph.params]

    @property
    def param_display_names(self) -> list[str]:
        return [entry.display_name for entry in self.graph.params]

    # -- pycaffe's underscored views of the C++ Net (used by code written against pycaffe) --------
    @property
    def _layer_names(self) -> list[str]:
        return self.layer_names

    @property
    def _blob_names(self) -> list[str]:
        return list(self.blobs)

    @property
    def _blobs(self) -> list[Blob]:
        return list(self._blob_list)

    @property
    def _inputs(self) -> list[int]:
        """Indices (into ``_blobs``) of the input blobs."""
        return list(self.graph.input_ids)

    @property
    def _outputs(self) -> list[int]:
        return list(self.graph.output_ids)

    @property
    def _blob_loss_weights(self) -> list[float]:
        return list(self.blob_loss_weights.values())

    def _top_ids(self, i: int) -> list[int]:
        return list(self.graph.layers[i].top_ids)

    def _bottom_ids(self, i: int) -> list[int]:
        return list(self.graph.layers[i].bottom_ids)

    def _forward(self, start: int, end: int) -> float:
        """Net::ForwardFromTo(start, end) on layer indices (inclusive); returns the loss."""
        return self.forward_from_to(start, end)

    def _backward(self, start: int, end: int) -> None:
        """Net::BackwardFromTo(start, end) on layer indices (start >= end, inclusive)."""
        self.backward_from_to(start, end)

    # -- running ------------------------------------------------------------------------------
    def _layer_range(self, start, end, backward: bool) -> tuple[int, int]:
        def index(key, default):
            if key is None:
                return default
            if isinstance(key, (int, np.integer)):
                if not 0 <= key < len(self.graph.layers):
                    raise CaffeCaeError(f"layer index {key} out of range (net has {len(self.graph.layers)} layers)")
                return int(key)
            return self.graph.layer_index(key)

        last = len(self.graph.layers) - 1
        if backward:
            return index(start, last), index(end, 0)
        return index(start, 0), index(end, last)

    def _reshape_layer(self, node: LayerNode, force: bool = False) -> None:
        if not node.bottom_ids:  # Input/data layers keep the shapes set up (or fed)
            return
        bottom_shapes = [self._blob_list[b].shape for b in node.bottom_ids]
        if not force and bottom_shapes == self._reshaped_for[node.index]:
            return
        for b, shape in zip(node.bottom_ids, bottom_shapes):
            self.graph.blob_shapes[b] = shape
        top_shapes = top_shapes_of(self.graph, node, bottom_shapes)
        self._reshaped_for[node.index] = bottom_shapes
        for blob_id, shape, weight in zip(node.top_ids, top_shapes, node.loss_weights):
            blob = self._blob_list[blob_id]
            self.graph.blob_shapes[blob_id] = shape
            if blob.shape != shape:
                blob.reshape(shape)
                if weight:
                    blob.diff[...] = weight

    def reshape(self) -> None:
        """Net::Reshape: propagate the current input shapes through every layer."""
        for node in self.graph.layers:
            self._reshape_layer(node, force=True)

    def _forward_from_to(self, start: int, end: int, continue_pass: bool = False) -> float:
        """Forward ``start``..``end``.  ``continue_pass``: the caller ran the layers before
        ``start`` just now and touched no blob since (``caffe-cae time``), so what those layers
        wrote is still as they left it (see ``_find_spread_sources``)."""
        if self._layer_callbacks is not None:
            return self._with_layer_callbacks("forward", start, end)
        loss = self.dtype.type(0)  # Caffe sums the layer losses in Dtype
        blobs = self._blob_list
        spread_sources = self._spread_sources
        fresh = self._fresh_sources if continue_pass else set()
        self._fresh_sources = fresh
        sources = self._spread_source_layers
        with single_threaded_blas():  # the layers split their GEMMs on caffe_cae.parallel
            for node in self.graph.layers[start:end + 1]:
                self._reshape_layer(node)
                if node.index in spread_sources:  # sparse only if the source wrote it in this pass
                    source = spread_sources[node.index]
                    node.layer.bottom_spread = (
                        self.graph.layers[source].layer.sparse_top_stride() if source in fresh else None)
                bottom = [blobs[b] for b in node.bottom_ids]
                top = [blobs[t] for t in node.top_ids]
                node.layer.forward(bottom, top)
                if node.index in sources:
                    fresh.add(node.index)
                for blob, weight in zip(top, node.loss_weights):
                    if weight:  # Layer::Forward: loss = dot(top data, top diff = loss weight)
                        loss += np.dot(blob.data.ravel(), blob.diff.ravel())
        return float(loss)

    def _backward_from_to(self, start: int, end: int) -> None:
        if self._layer_callbacks is not None:
            self._with_layer_callbacks("backward", start, end)
            return
        with single_threaded_blas():  # the layers split their GEMMs on caffe_cae.parallel
            self._backward_layers(start, end)

    def _backward_layers(self, start: int, end: int) -> None:
        blobs = self._blob_list
        for node in self.graph.layers[start:end - 1 if end > 0 else None:-1]:
            if not node.need_backward:
                continue
            params = node.layer.blobs
            frozen = [k for k, down in enumerate(node.param_propagate_down) if not down]
            if (not any(node.bottom_need_backward) and len(frozen) == len(params)
                    and not getattr(node.layer, "backward_ignores_propagate_down", False)):
                continue  # nothing to compute (Caffe's call would be a no-op)
            kept = [params[k].diff.copy() for k in frozen]
            node.layer.backward(
                [blobs[t] for t in node.top_ids],
                list(node.bottom_need_backward),
                [blobs[b] for b in node.bottom_ids],
            )
            for k, diff in zip(frozen, kept):  # param_propagate_down false: no gradient
                params[k].diff[...] = diff

    def _blob(self, name: str) -> Blob:
        try:
            return self.blobs[name]
        except KeyError:
            raise CaffeCaeError(f"blob '{name}': no such blob in net '{self.name}'") from None

    def _set_inputs(self, inputs: dict) -> None:
        input_names = self.inputs
        for name, value in inputs.items():
            if name not in input_names:
                raise CaffeCaeError(
                    f"blob '{name}': not an input of net '{self.name}' (inputs: {', '.join(input_names) or 'none'})"
                )
            blob = self.blobs[name]
            value = np.asarray(value)
            if value.shape != blob.shape:
                blob.reshape(value.shape)
                self.graph.blob_shapes[self.graph.blob_index(name)] = blob.shape
            blob.data[...] = value

    def forward(self, blobs: Iterable[str] | None = None, start=None, end=None, **inputs) -> dict:
        """Run layers ``start``..``end`` (layer names or indices; default all) and return copies of
        the outputs (or, with ``end``, that layer's tops) plus any ``blobs`` asked for.

        Keyword arguments feed Input blobs (``net.forward(data=x)``); an array of another shape
        reshapes the input and the layers after it.  Differences from pycaffe, on purpose: some
        inputs may be left out (they keep their blob's values), another batch size is accepted,
        and the returned arrays are copies (pycaffe hands out the blobs' own arrays, which the
        next forward overwrites; ``net.blobs[name].data`` is the live array here too).
        """
        self._set_inputs(inputs)
        first, last = self._layer_range(start, end, backward=False)
        self._forward_from_to(first, last)
        names = self.outputs if end is None else self.top_names[last]
        names = list(dict.fromkeys(list(names) + list(blobs or ())))
        return {name: self._blob(name).data.copy() for name in names}

    def backward(self, diffs: Iterable[str] | None = None, start=None, end=None, **top_diffs) -> dict:
        """Backpropagate from layer ``start`` down to ``end`` (default: all) and return copies
        of the input diffs (or, with ``end``, that layer's bottom diffs) plus ``diffs`` asked for.

        Keyword arguments set output diffs first (``net.backward(out=d)``); loss tops keep the
        diff Caffe gives them (their loss weight) unless set here.  As in :meth:`forward`, a
        subset of the outputs may be given and the returned arrays are copies.
        """
        outputs = self.outputs
        for name, value in top_diffs.items():
            if name not in outputs:
                raise CaffeCaeError(
                    f"blob '{name}': not an output of net '{self.name}' (outputs: {', '.join(outputs) or 'none'})"
                )
            blob = self.blobs[name]
            value = np.asarray(value)
            if value.shape != blob.shape:
                raise CaffeCaeError(
                    f"blob '{name}': diff of shape {shape_string(value.shape)} given for a blob of "
                    f"shape {shape_string(blob.shape)}"
                )
            blob.diff[...] = value
        first, last = self._layer_range(start, end, backward=True)
        self._backward_from_to(first, last)
        names = self.inputs if end is None else self.bottom_names[last]
        names = list(dict.fromkeys(list(names) + list(diffs or ())))
        return {name: self._blob(name).diff.copy() for name in names}

    def forward_backward(self) -> float:
        """Net::ForwardBackward: the loss of a full forward, then a full backward."""
        loss = self._forward_from_to(0, len(self.graph.layers) - 1)
        self._backward_from_to(len(self.graph.layers) - 1, 0)
        return loss

    def forward_loss(self) -> float:
        """Net::Forward(&loss): full forward, returns Σ loss_weight·loss."""
        return self._forward_from_to(0, len(self.graph.layers) - 1)

    def forward_from_to(self, start: int, end: int, continue_pass: bool = False) -> float:
        """Net::ForwardFromTo(start, end) on layer indices; returns the loss of those layers.
        ``continue_pass=True`` promises that the layers before ``start`` ran just before this
        call and that no blob was changed since (lets a layer rely on what they wrote)."""
        return self._forward_from_to(*self._layer_range(start, end, backward=False), continue_pass)

    def backward_from_to(self, start: int, end: int) -> None:
        """Net::BackwardFromTo(start, end) on layer indices (start >= end)."""
        self._backward_from_to(*self._layer_range(start, end, backward=True))

    # -- pycaffe's per-layer callbacks (Net::add_before_forward ...) ---------------------------
    def before_forward(self, fn) -> None:
        """``fn(layer_index)`` runs before each layer's forward."""
        self._add_layer_callback("before_forward", fn)

    def after_forward(self, fn) -> None:
        """``fn(layer_index)`` runs after each layer's forward."""
        self._add_layer_callback("after_forward", fn)

    def before_backward(self, fn) -> None:
        """``fn(layer_index)`` runs before each layer's backward step (all layers, as Caffe)."""
        self._add_layer_callback("before_backward", fn)

    def after_backward(self, fn) -> None:
        """``fn(layer_index)`` runs after each layer's backward step."""
        self._add_layer_callback("after_backward", fn)

    def _add_layer_callback(self, when: str, fn) -> None:
        if self._layer_callbacks is None:
            self._layer_callbacks = {k: [] for k in ("before_forward", "after_forward",
                                                     "before_backward", "after_backward")}
        self._layer_callbacks[when].append(fn)

    def _with_layer_callbacks(self, kind: str, start: int, end: int) -> float:
        """Run layer by layer with the callbacks around each (kept off the plain loops)."""
        callbacks, self._layer_callbacks = self._layer_callbacks, None
        loss = 0.0
        order = range(start, end + 1) if kind == "forward" else range(start, end - 1, -1)
        try:
            for i in order:
                for fn in callbacks["before_" + kind]:
                    fn(i)
                if kind == "forward":
                    loss += self._forward_from_to(i, i)
                else:
                    self._backward_from_to(i, i)
                for fn in callbacks["after_" + kind]:
                    fn(i)
        finally:
            self._layer_callbacks = callbacks
        return loss

    # -- pycaffe's batched helpers -------------------------------------------------------------
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

    def clear_param_diffs(self) -> None:
        """Net::ClearParamDiffs: zero the diffs of the learnable params."""
        for blob in self.learnable_params:
            blob.diff[...] = 0

    def update(self) -> None:
        """Net::Update: ``data -= diff`` for every learnable param (diff already scaled)."""
        for blob in self.learnable_params:
            blob.data -= blob.diff

    # -- weights ------------------------------------------------------------------------------
    def copy_from(self, weights) -> None:
        """Net::CopyTrainedLayersFrom: a binary caffemodel (any Caffe version), an ``.h5`` one,
        or a NetParameter; layers matched by name, unknown source layers ignored."""
        copy_trained_layers(self, weights)

    def share_with(self, other: "Net") -> None:
        """Net::ShareTrainedLayersWith: every layer of ``other`` lends its parameter memory to the
        first layer of this net with its name (how a solver's test nets see the train net)."""
        for source in other.graph.layers:
            try:
                target = self.graph.layers[self.graph.layer_index(source.name)]
            except CaffeCaeError:
                log.info("Ignoring source layer %s", source.name)
                continue
            theirs_all, mine_all = source.layer.blobs, target.layer.blobs
            if len(theirs_all) != len(mine_all):
                raise CaffeCaeError(
                    f"layer '{source.name}': incompatible number of blobs ({len(theirs_all)} in the "
                    f"source net, {len(mine_all)} here)"
                )
            for k, (mine, theirs) in enumerate(zip(mine_all, theirs_all)):
                if mine.shape != theirs.shape:
                    raise CaffeCaeError(
                        f"layer '{source.name}': cannot share param {k} weights: shape mismatch; "
                        f"source param shape is {shape_string(theirs.shape)}, target param shape "
                        f"is {shape_string(mine.shape)}"
                    )
                mine.data = theirs.data

    def to_proto(self, write_diff: bool = False) -> caffe_pb2.NetParameter:
        """Net::ToProto: the instantiated layers (Split/Input included) with their blobs."""
        return net_to_proto(self, write_diff)

    def save(self, path, write_diff: bool = False) -> None:
        """Write a binary ``.caffemodel`` (Net::ToProto + WriteProtoToBinaryFile)."""
        write_binary(path, self.to_proto(write_diff))

    def save_hdf5(self, path, write_diff: bool = False) -> None:
        """Write an HDF5 caffemodel (Net::ToHDF5): ``/data/<layer>/<i>``, owned params only."""
        write_hdf5(self, path, write_diff)

    def load_hdf5(self, path) -> None:
        """Net::CopyTrainedLayersFromHDF5 (pycaffe's ``net.load_hdf5``)."""
        copy_layers_from_hdf5(self, path)

    def __repr__(self) -> str:
        phase = "TRAIN" if self.phase == TRAIN else "TEST"
        return f"<Net '{self.name}' {phase}: {len(self.graph.layers)} layers, {len(self._blob_list)} blobs>"


# --------------------------------------------------------------------------------------------


class NetShapes(OrderedDict):
    """``infer_shapes`` result: blob name -> shape, plus ``params`` (layer name -> param
    shapes, layers with parameters), ``layers`` (name, type, bottoms, tops per layer),
    ``inputs``, ``outputs`` and ``loss_weights``."""

    params: "OrderedDict[str, list[Shape]]"
    layers: list[tuple[str, str, list[str], list[str]]]
    inputs: list[str]
    outputs: list[str]
    loss_weights: "OrderedDict[str, float]"


def infer_shapes(net, phase=None, level=None, stages=(), input_shapes=None) -> NetShapes:
    """Shapes of every blob and parameter of ``net`` (path or NetParameter) without numerics.

    ``input_shapes`` ({blob: shape}) replaces the shapes of Input/data layer tops; a data layer
    whose tops are all given is not set up (its data files need not exist).
    """
    if level is None and not isinstance(net, caffe_pb2.NetParameter):
        level = 0  # as Net(path): Caffe's Net(file, phase, level=0)
    param, _ = load_net_param(net)
    set_net_state(param, phase, level, stages)
    graph = build_graph(param, shape_overrides=input_shapes)
    result = NetShapes((name, shape) for name, shape in zip(graph.blob_names, graph.blob_shapes))
    result.params = OrderedDict()
    for node in graph.layers:
        if node.param_shapes:
            result.params.setdefault(node.name, list(node.param_shapes))
    result.layers = [
        (node.name, node.type, [graph.blob_names[b] for b in node.bottom_ids],
         [graph.blob_names[t] for t in node.top_ids])
        for node in graph.layers
    ]
    result.inputs = [graph.blob_names[i] for i in graph.input_ids]
    result.outputs = [graph.blob_names[i] for i in graph.output_ids]
    result.loss_weights = OrderedDict()
    for node in graph.layers:
        for blob_id, weight in zip(node.top_ids, node.loss_weights):
            if weight:
                result.loss_weights[graph.blob_names[blob_id]] = weight
    return result


__all__ = ["Net", "TRAIN", "TEST", "infer_shapes", "NetShapes", "AUTOMATIC_TOP", "set_random_seed"]
