"""Export a Caffe net (TEST phase, with its weights) to an ONNX model.

Data layers become graph inputs with a dynamic batch axis, loss/Accuracy/Silence layers are left
out, and the requested blobs (default: what the net computes besides its losses) become graph
outputs.  Tensor names: a blob's final value keeps the blob name; values that in-place layers
overwrite later are named ``<blob>@<layer>``.  Node names are the layer names (a top-left
Unpooling folded into the next Deconvolution by :mod:`caffe_cae.onnx.fusion` has none).
"""
from __future__ import annotations

import logging
import os

import numpy as np
import onnx
from onnx import TensorProto, helper

from caffe_cae.errors import CaffeCaeError
from caffe_cae.fileio import atomic_write_bytes
from caffe_cae.onnx import fusion, ops_vision
from caffe_cae.onnx import ops_basic, ops_forks, ops_math, ops_normalization, ops_recurrent, ops_tensor  # noqa: F401 (register converters)
from caffe_cae.onnx.converters import LayerContext, convert
from caffe_cae.onnx.graph import DEFAULT_OPSET, MAX_OPSET, MIN_OPSET, GraphBuilder

log = logging.getLogger(__name__)

BATCH = "N"


def _dropped(layer) -> bool:
    """Loss and evaluation layers are no part of an inference graph."""
    return layer.is_loss or layer.is_metric


def export_net(net, outputs: list[str] | None = None, opset: int = DEFAULT_OPSET, name: str | None = None,
               optimize: bool = True) -> onnx.ModelProto:
    """Build the ONNX model of an interpreter ``Net`` (TEST phase, weights loaded).

    ``optimize`` applies the rewrites of :mod:`caffe_cae.onnx.fusion` (same values, fewer
    operations); without it every layer becomes its own nodes."""
    if not MIN_OPSET <= opset <= MAX_OPSET:
        raise CaffeCaeError(f"--opset {opset}: supported opsets are {MIN_OPSET}..{MAX_OPSET}")
    layers = list(net.layers)
    tops = [list(t) for t in net.top_names]
    flow = net.dataflow  # values: every top written is a new version (in-place layers overwrite)
    names = net.graph.blob_names
    inputs_of = flow.reads
    final = {names[blob]: version for blob, version in flow.final.items()}

    def past_copies(blob, version):
        """A Split's top (or any same-shaped view) is its bottom's value: name that instead."""
        while True:
            i, j = version
            if len(inputs_of[i]) != 1 or inputs_of[i][0] is None or not layers[i].shares_memory(0, j):
                return blob, version
            source = inputs_of[i][0]
            source_blob = tops[source[0]][source[1]]
            if final.get(source_blob) != source or net.blobs[source_blob].shape != net.blobs[blob].shape:
                return blob, version
            blob, version = source_blob, source

    if outputs is None:  # final values that no kept layer reads (in-place reads count per version)
        consumed = {v for i, l in enumerate(layers) if not _dropped(l) for v in inputs_of[i]}
        outputs = []
        for blob, version in final.items():
            if version in consumed or _dropped(layers[version[0]]):
                continue
            blob, version = past_copies(blob, version)  # e.g. the copies a Split made for the losses
            if not layers[version[0]].is_data and blob not in outputs:
                outputs.append(blob)
    missing = [b for b in outputs if b not in final]
    if missing:
        raise CaffeCaeError(f"--outputs: no blob named {', '.join(map(repr, missing))}; blobs: {', '.join(final)}")
    if not outputs:
        raise CaffeCaeError("the net has nothing to export: no blob outside its loss layers (name one with --outputs)")

    # Layers needed for the outputs (walk versions backwards).
    needed_layers: set[int] = set()
    stack = [final[b] for b in outputs]
    while stack:
        i, _ = stack.pop()
        if i in needed_layers:
            continue
        needed_layers.add(i)
        if _dropped(layers[i]):
            raise layers[i].error("ONNX export: a requested output depends on this loss/accuracy layer")
        stack.extend(v for v in inputs_of[i] if v is not None)

    # ONNX values are immutable: Caffe's reads of memory overwritten through another view cannot
    # be exported faithfully.
    for stale in flow.stale_view_reads(needed_layers, identity_writes_count=False):
        writer = layers[stale.writer]
        raise layers[stale.reader].error(
            f"ONNX export: reads blob '{names[stale.blob]}' after layer '{writer.name}' "
            f"({writer.type}) overwrote its memory in place through the view "
            f"'{names[stale.through]}' (Caffe's shared memory has no ONNX equivalent)")

    # Shapes are static from the net (every version of a blob has the blob's shape: in-place
    # layers keep it); the batch axis stays dynamic.
    shapes = {(i, j): tuple(net.blobs[blob].shape) for i in range(len(layers)) for j, blob in enumerate(tops[i])}
    folds = fusion.plan_unpool_folds(flow, layers, needed_layers, {final[b] for b in outputs}, shapes) if optimize else {}
    folded_away = {fold.unpool for fold in folds.values()}

    graph = GraphBuilder(opset)
    tensor: dict[tuple[int, int], str] = {}
    graph_inputs = []
    def sources(i):  # a folded Deconvolution reads what its Unpooling read
        return inputs_of[folds[i].unpool] if i in folds else inputs_of[i]

    read = {v for i in needed_layers - folded_away for v in sources(i)} | {final[b] for b in outputs}
    for i in sorted(needed_layers):  # data layers first: their blob names become the input names
        if layers[i].is_data:
            for j, blob in enumerate(tops[i]):
                if (i, j) not in read:  # e.g. a label only the left-out losses read
                    continue
                tensor[(i, j)] = graph.reserve(blob)
                graph_inputs.append(_value_info(blob, net.blobs[blob].shape))
    for i in sorted(needed_layers - folded_away):
        if layers[i].is_data:
            continue
        for j, blob in enumerate(tops[i]):
            preferred = blob if final[blob] == (i, j) else f"{blob}@{layers[i].name}"
            tensor[(i, j)] = graph.fresh(preferred)

    # Convert in net order.
    for i in sorted(needed_layers - folded_away):
        layer = layers[i]
        if layer.is_data:
            continue
        if any(v is None for v in inputs_of[i]):
            raise layer.error("ONNX export: a bottom has no producer")
        context = LayerContext(
            graph=graph,
            layer=layer,
            inputs=[tensor[v] for v in sources(i)],
            outputs=[tensor[(i, j)] for j in range(len(tops[i]))],
            bottom_shapes=[shapes[v] for v in sources(i)],
            top_shapes=[shapes[(i, j)] for j in range(len(tops[i]))],
            params=[np.asarray(p.data, dtype=np.float32) for p in layer.blobs],
            optimize=optimize,
        )
        if i in folds:
            ops_vision.deconvolution_of_top_left_unpool(context, folds[i].geometry)
        else:
            convert(context)

    if optimize:
        fusion.fold_affine_into_linear(graph, keep={tensor[final[b]] for b in outputs})
    graph_outputs = [_value_info(tensor[final[b]], shapes[final[b]]) for b in outputs]
    model = helper.make_model(
        helper.make_graph(graph.nodes, name or net.name or "caffe_net", graph_inputs, graph_outputs, graph.initializers),
        opset_imports=[helper.make_opsetid("", opset)],
        producer_name="caffe-cae",
    )
    model.ir_version = min(helper.find_min_ir_version_for(list(model.opset_import)), 13)
    try:
        onnx.checker.check_model(model, full_check=True)
    except onnx.checker.ValidationError as err:  # a converter bug, not a user error
        raise RuntimeError(f"exported model does not pass the ONNX checker: {err}") from err
    return model


def _value_info(name: str, shape) -> onnx.ValueInfoProto:
    dims = [BATCH] + [int(d) for d in shape[1:]] if len(shape) else []
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, dims)


def export(
    net_path,
    weights_path=None,
    outputs: list[str] | None = None,
    opset: int = DEFAULT_OPSET,
    optimize: bool = True,
    input_shapes: dict[str, tuple[int, ...]] | None = None,
) -> onnx.ModelProto:
    """Load ``net_path`` (+ weights) in the TEST phase and export it (see :func:`export_net`).

    Data layers are not run: they become Input layers whose shapes come from ``input_shapes``
    (blob -> per-sample shape), the data source or the layer's parameters
    (:func:`caffe_cae.netgraph.data_shapes.data_top_shapes`), so a trained net exports without
    its data on disk."""
    from caffe_cae.net import Net
    from caffe_cae.migrate.deploy import data_layers_as_inputs
    from caffe_cae.netgraph.data_shapes import data_top_shapes
    from caffe_cae.netgraph.loading import load_net_param, set_net_state
    from caffe_cae.proto import caffe_pb2

    param, _ = load_net_param(net_path)
    set_net_state(param, caffe_pb2.TEST, 0)
    param = data_layers_as_inputs(param, data_top_shapes(param, input_shapes))
    net = Net(param, weights=weights_path)
    return export_net(net, outputs=outputs, opset=opset, optimize=optimize)


def save(model: onnx.ModelProto, path: str | os.PathLike) -> None:
    """Write the model atomically."""
    atomic_write_bytes(path, model.SerializeToString())
    log.info("Wrote %s (opset %d, IR %d, %d nodes)", path, model.opset_import[0].version, model.ir_version, len(model.graph.node))
