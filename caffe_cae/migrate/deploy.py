"""Data layers turned into Input layers, and the deploy form of a train/val net, as Caffe's model
zoo writes ``deploy.prototxt`` by hand.

:func:`data_layers_as_inputs` replaces each data layer (the ``is_data`` trait of its layer class)
by an ``Input`` layer of the same name whose tops have given shapes; what reads the data tops is
kept.  ``caffe-cae export`` uses it to export a net whose data is not on disk.

A train/val file (``train_val.prototxt``, ``*_train_test.prototxt``) reads LMDB/HDF5/image data,
ends in losses and accuracies and selects layers per phase.  Its deploy form
(:func:`deploy_net`) is what tools that run a trained model expect (OpenCV's
``readNetFromCaffe``): the layers of one phase, the data layers replaced by ``Input`` layers of
given shapes, and

* the tops of data layers that get no shape (labels) dropped, with every layer that reads a
  dropped blob (Accuracy, the losses' label inputs) -- transitively;
* a ``SoftmaxWithLoss`` that loses its label becomes a ``Softmax`` with the same ``axis``
  (named ``prob``, as the zoo's deploy files name it, when there is one such layer);
* every other loss layer, Accuracy and Silence dropped; include/exclude rules removed.

Data transformations (mean, scale, crop) are not carried over: the input is prepared data.
"""
from __future__ import annotations

import os

from caffe_cae.errors import CaffeCaeError
from caffe_cae.netgraph.filtering import filter_net
from caffe_cae.proto import caffe_pb2

Shape = tuple[int, ...]


def _layer_class(layer: caffe_pb2.LayerParameter):
    from caffe_cae.layers import layer_class

    return layer_class(layer.type, layer.name)


def is_data_layer(layer: caffe_pb2.LayerParameter) -> bool:
    """Does ``layer`` bring blobs from outside the net (Input, Data, ImageData, HDF5Data, ...)?
    An unknown layer type is an error."""
    return _layer_class(layer).is_data


def _left_out(layer: caffe_pb2.LayerParameter) -> bool:
    """Loss and evaluation layers (Accuracy, Silence)."""
    cls = _layer_class(layer)
    return cls.is_loss or cls.is_metric


def data_layers_as_inputs(net: caffe_pb2.NetParameter, shapes: dict[str, Shape]) -> caffe_pb2.NetParameter:
    """``net`` filtered for its state, with every data layer other than Input replaced by an Input
    layer of the same name whose tops are those named in ``shapes`` (blob -> full shape, batch
    first); a top given no shape is left out, and a layer left without tops goes.  An Input
    layer keeps its own shapes except for its tops named in ``shapes``.  Every other layer is
    kept as it is, also one that reads a top left out.  Naming a blob that is no data top is a
    one-line error."""
    where = f"net '{net.name}'" if net.name else "net"
    return _replace_data_layers(filter_net(net), shapes, where)[0]


def _replace_data_layers(filtered: caffe_pb2.NetParameter, shapes: dict[str, Shape],
                         where: str) -> tuple[caffe_pb2.NetParameter, set[str]]:
    """:func:`data_layers_as_inputs` on a filtered net, and the data tops it left out."""
    shapes = {blob: tuple(int(d) for d in shape) for blob, shape in shapes.items()}
    data_tops = [top for layer in filtered.layer if is_data_layer(layer) for top in layer.top]
    unknown = sorted(set(shapes) - set(data_tops))
    if unknown:
        raise CaffeCaeError(f"{where}: no data blob named {', '.join(unknown)} "
                            f"(data blobs: {', '.join(data_tops) or 'none'})")
    out = caffe_pb2.NetParameter()
    out.CopyFrom(filtered)
    del out.layer[:]
    left_out: set[str] = set()
    for layer in filtered.layer:
        is_input = layer.type == "Input"
        if not is_data_layer(layer) or (is_input and not any(top in shapes for top in layer.top)):
            out.layer.add().CopyFrom(layer)
            continue
        kept = list(layer.top) if is_input else [top for top in layer.top if top in shapes]
        left_out.update(top for top in layer.top if top not in kept)
        if kept:
            _add_input(out, layer, kept, shapes)
    return out, left_out


def _add_input(net: caffe_pb2.NetParameter, layer: caffe_pb2.LayerParameter, tops: list[str],
               shapes: dict[str, Shape]) -> None:
    new = net.layer.add(name=layer.name, type="Input", top=tops)
    own = list(layer.input_param.shape) if layer.type == "Input" else []
    for j, top in enumerate(tops):
        shape = new.input_param.shape.add()
        if top in shapes:
            shape.dim.extend(shapes[top])
        elif own:  # Caffe's InputLayer: one shape for every top, or one per top
            shape.CopyFrom(own[0 if len(own) == 1 else j])
        else:
            raise CaffeCaeError(f"layer '{layer.name}' (Input): top '{top}' has no shape; "
                                f"give it one too, since another top of the layer gets one")


def deploy_net(net, input_shapes: dict[str, Shape], phase: int = caffe_pb2.TEST,
               level: int = 0, stages: tuple[str, ...] = ()) -> caffe_pb2.NetParameter:
    """The deploy form of ``net`` (a path or NetParameter, any syntax) for ``phase``.

    ``input_shapes``: data blob -> full shape (batch first) of the Input layer that replaces it;
    every data layer top without a shape is dropped.  Input layers already in the net keep their
    shapes unless named here.  Raises a one-line error when no data blob is left or a name in
    ``input_shapes`` is no data blob."""
    from caffe_cae.netgraph.loading import load_net_param, set_net_state

    param, where = load_net_param(net) if isinstance(net, (str, os.PathLike, caffe_pb2.NetParameter)) else (net, "<net>")
    param.ClearField("state")
    set_net_state(param, phase, level, stages)
    filtered = filter_net(param)
    with_inputs, dropped = _replace_data_layers(filtered, input_shapes, where)

    deployed = caffe_pb2.NetParameter()
    deployed.CopyFrom(with_inputs)
    del deployed.layer[:]
    deployed.ClearField("state")
    softmax_losses = [lp for lp in filtered.layer if lp.type == "SoftmaxWithLoss"]
    names = {lp.name for lp in filtered.layer} | {t for lp in filtered.layer for t in lp.top}
    for layer in with_inputs.layer:
        reads_dropped = any(b in dropped for b in layer.bottom)
        if layer.type == "SoftmaxWithLoss" and reads_dropped and layer.bottom[0] not in dropped:
            name = "prob" if len(softmax_losses) == 1 and "prob" not in names else layer.name
            top = "prob" if name == "prob" else (layer.top[0] if layer.top else layer.name)
            softmax = deployed.layer.add(name=name, type="Softmax", bottom=[layer.bottom[0]], top=[top])
            if layer.HasField("softmax_param"):
                softmax.softmax_param.CopyFrom(layer.softmax_param)
            continue
        if reads_dropped or _left_out(layer):
            dropped.update(layer.top)
            continue
        copy = deployed.layer.add()
        copy.CopyFrom(layer)
        copy.ClearField("include")
        copy.ClearField("exclude")
    if not any(lp.type == "Input" for lp in deployed.layer):
        raise CaffeCaeError(f"{where}: the deploy form has no input; give the shape of a data blob")
    return deployed
