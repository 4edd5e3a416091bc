"""Shapes of every blob and parameter of a net, without numerics (``caffe_cae.infer_shapes``)."""
from __future__ import annotations

from collections import OrderedDict

from caffe_cae.layers.python_layer import allow_python_layers, net_folder
from caffe_cae.netgraph.graph import build_graph
from caffe_cae.netgraph.loading import load_net_param, set_net_state
from caffe_cae.proto import caffe_pb2

Shape = tuple[int, ...]


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
    with allow_python_layers(None, net_folder(net)):
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

