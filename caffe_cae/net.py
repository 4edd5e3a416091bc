"""Caffe's ``Net`` in NumPy, with pycaffe's interface.

>>> net = caffe_cae.Net("deploy.prototxt", "weights.caffemodel", caffe_cae.TEST)
>>> out = net.forward(data=images)            # {output blob: array}
>>> net.blobs["conv1"].data, net.params["conv1"][0].diff

Structure (filtering, Split layers, in-place tops, shapes, loss weights, parameter sharing, the
backward plan) is decided by :func:`caffe_cae.netgraph.graph.build_graph` exactly like
``Net::Init``, the dataflow (versions, views, in-place writes, fusable pairs) by
:class:`caffe_cae.netgraph.dataflow.Dataflow`, and the steps by
:func:`caffe_cae.netgraph.steps.plan_steps`; this module is the executor: it allocates the
blobs, fills and shares the parameters and runs ``ForwardFromTo`` / ``BackwardFromTo``.
pycaffe's views, callbacks and batch helpers are mixed in from :mod:`caffe_cae.pycaffe`.

Memory follows Caffe: an in-place top *is* its bottom blob; a shared parameter's data and diff
are views of its owner's arrays (so gradients of all users add up in the owner's diff); the
diff of every top with a loss weight holds that weight (a loss layer's backward reads it).
Blob diffs are never cleared by the net (Caffe's backward overwrites what it computes; parameter
diffs accumulate until :meth:`Net.clear_param_diffs`, which the solver calls).
"""
from __future__ import annotations

import logging
from typing import Iterable

import numpy as np

from caffe_cae.blob import Blob
from caffe_cae.errors import CaffeCaeError
from caffe_cae.layers.python_layer import allow_python_layers as python_layer_policy, net_folder
from caffe_cae.netgraph.dataflow import Dataflow
from caffe_cae.netgraph.graph import AUTOMATIC_TOP, LayerNode, NetGraph, build_graph, shape_string, top_shapes_of
from caffe_cae.netgraph.loading import TEST, TRAIN, load_net_param, set_net_state
from caffe_cae.netgraph.shapes import NetShapes, infer_shapes
from caffe_cae.netgraph.steps import plan_steps
from caffe_cae.netgraph.trained import copy_layers_from_hdf5, copy_trained_layers, net_to_proto, write_hdf5
from caffe_cae.parallel import single_threaded_blas
from caffe_cae.proto import caffe_pb2
from caffe_cae.pycaffe.batches import BatchHelpers
from caffe_cae.pycaffe.callbacks import LayerCallbacks
from caffe_cae.pycaffe.forms import positional_forms
from caffe_cae.pycaffe.views import NetViews
from caffe_cae.weights import write_binary

log = logging.getLogger(__name__)

Shape = tuple[int, ...]

# Caffe::set_random_seed: nets built without an explicit seed draw theirs from this generator.
_seed_source: np.random.Generator | None = None


class _errors_name_the_layer:
    """A user error raised while a layer runs (e.g. a scratch buffer over the memory budget)
    names that layer when it does not already."""

    def __init__(self, steps):
        self.node = None

    def __enter__(self):
        return self

    def __exit__(self, kind, err, tb):
        if kind is not None and issubclass(kind, CaffeCaeError) and self.node is not None:
            if not str(err).startswith("layer '"):
                raise CaffeCaeError(f"layer '{self.node.name}' ({self.node.type}): {err}") from None
        return False


def check_net_memory(graph: NetGraph, itemsize: int, source: str) -> None:
    """Refuse a net whose blobs and params (data + diff) would not fit the memory budget."""
    from caffe_cae.limits import check_memory, element_count

    count = sum(element_count(shape) for shape in graph.blob_shapes)
    count += sum(element_count(shape) for node in graph.layers for shape in node.param_shapes)
    check_memory(2 * count * itemsize, f"{source}: net '{graph.name}': the data and diffs of its blobs and params")


def set_random_seed(seed: int) -> None:
    """Like ``caffe.set_random_seed``: nets created afterwards without ``seed=`` fill their
    weights (and draw Dropout masks, shuffles) reproducibly.  The values differ from Caffe's,
    whose generator is not NumPy's; load a caffemodel to get Caffe's exact weights."""
    global _seed_source
    _seed_source = np.random.default_rng(int(seed))


def _next_seed() -> int | None:
    return None if _seed_source is None else int(_seed_source.integers(2**63))


# --------------------------------------------------------------------------------------------

class Net(NetViews, LayerCallbacks, BatchHelpers):
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
        allow_python_layers: run ``type: "Python"`` layers (arbitrary code named by the net
            file; refused by default); their modules are also looked for next to the prototxt.
            None keeps the choice of an enclosing :func:`caffe_cae.allow_python_layers`.
    """

    def __init__(self, net=None, *args, weights=None, phase=None, level=None, stages=None,
                 dtype=np.float32, seed=None, network_file=None, allow_python_layers=None):
        if network_file is not None:  # pycaffe's keyword name for the prototxt
            if net is not None:
                raise TypeError("Net(): network_file given twice")
            net = network_file
        if net is None:
            raise TypeError("Net() needs a prototxt path or a NetParameter")
        phase, level, stages, weights = positional_forms(args, phase, level, stages, weights)
        if level is None and not isinstance(net, caffe_pb2.NetParameter):
            level = 0
        self.dtype = np.dtype(dtype)
        if self.dtype not in (np.float32, np.float64):
            raise CaffeCaeError(f"dtype must be float32 or float64, not {self.dtype}")
        param, self.source = load_net_param(net)
        set_net_state(param, phase, level, stages)
        log.info("Initializing net '%s' from %s", param.name, self.source)
        with python_layer_policy(allow_python_layers, net_folder(net)):
            self.graph: NetGraph = build_graph(param)
        self.name = self.graph.name
        check_net_memory(self.graph, self.dtype.itemsize, self.source)
        self._rng = np.random.default_rng(seed if seed is not None else _next_seed())
        #: pycaffe's before/after forward/backward callbacks; None while there are none
        self._layer_callbacks = None
        self._blobs_by_name = None
        self._params_by_name = None
        self._blob_list = [
            Blob(shape, self.dtype, name)
            for name, shape in zip(self.graph.blob_names, self.graph.blob_shapes)
        ]
        self._reshaped_for: list[list[Shape] | None] = [None] * len(self.graph.layers)
        for node in self.graph.layers:
            self._reshaped_for[node.index] = [self._blob_list[b].shape for b in node.bottom_ids]
        self._init_params()
        self._set_loss_weight_diffs()
        self.dataflow = Dataflow(self.graph)
        for node in self.graph.layers:
            # Layer::set_param_propagate_down: frozen params cost nothing
            node.layer.param_propagate_down = list(node.param_propagate_down)
            if node.layer.reuse_forward_columns and self.dataflow.bottom_overwritten_later(node.index):
                node.layer.reuse_forward_columns = False  # the bottom changes before backward
        self._steps = plan_steps(self.graph, self.dataflow, self._blob_list)
        self._pass = 0  # forward passes so far; a step's per-pass state is keyed by it
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
                try:
                    node.layer.fill_params(self._rng)
                except CaffeCaeError as err:  # a filler's refusal, named after its layer
                    message = str(err)
                    if not message.startswith("layer '"):
                        message = f"layer '{node.name}' ({node.type}): {message}"
                    raise CaffeCaeError(message) from None
        for entry in graph.params:  # Net::ShareWeights
            if entry.owner < 0:
                continue
            owner = graph.params[entry.owner]
            owner_blob = graph.layers[owner.layer_index].layer.blobs[owner.param_index]
            blob = graph.layers[entry.layer_index].layer.blobs[entry.param_index]
            blob.share_data(owner_blob)
            blob.share_diff(owner_blob)

    def _set_loss_weight_diffs(self) -> None:
        """Layer::SetLossWeights: a loss top's diff holds its loss weight."""
        for node in self.graph.layers:
            for blob_id, weight in zip(node.top_ids, node.loss_weights):
                if weight:
                    self._blob_list[blob_id].diff[...] = weight

    # -- pycaffe-style views --------------------------------------------------------------------
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
        wrote is still as they left it (see :mod:`caffe_cae.netgraph.steps`)."""
        if self._layer_callbacks is not None:
            return self._with_layer_callbacks("forward", start, end)
        if not continue_pass:
            self._pass += 1
        pass_id = self._pass
        loss = self.dtype.type(0)  # Caffe sums the layer losses in Dtype
        with single_threaded_blas(), _errors_name_the_layer(self._steps[start:end + 1]) as current:
            for step in self._steps[start:end + 1]:
                node = current.node = step.node
                self._reshape_layer(node)
                step.forward(pass_id)
                for blob, weight in zip(step.top, node.loss_weights):
                    if weight:  # Layer::Forward: loss = dot(top data, top diff = loss weight)
                        loss += np.dot(blob.data.ravel(), blob.diff.ravel())
        return float(loss)

    def _backward_from_to(self, start: int, end: int) -> None:
        if self._layer_callbacks is not None:
            self._with_layer_callbacks("backward", start, end)
            return
        steps = self._steps[start:end - 1 if end > 0 else None:-1]
        with single_threaded_blas(), _errors_name_the_layer(steps) as current:
            for step in steps:
                current.node = step.node
                step.backward()

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



__all__ = ["Net", "TRAIN", "TEST", "infer_shapes", "NetShapes", "AUTOMATIC_TOP", "set_random_seed"]
