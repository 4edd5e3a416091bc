"""The deploy form of a train/val net, as Caffe's model zoo writes ``deploy.prototxt`` by hand.

A train/val file (``train_val.prototxt``, ``*_train_test.prototxt``) reads LMDB/HDF5/image data,
ends in losses and accuracies and selects layers per phase.  Its deploy form is what tools that
run a trained model expect (OpenCV's ``readNetFromCaffe``, ``caffe-cae export``): the layers of
one phase, the data layers replaced by ``Input`` layers of given shapes, and

* the tops of data layers that get no shape (labels) dropped, with every layer that reads a
  dropped blob (Accuracy, the losses' label inputs) -- transitively;
* a ``SoftmaxWithLoss`` that loses its label becomes a ``Softmax`` with the same ``axis``
  (named ``prob``, as the zoo's deploy files name it, when there is one such layer);
* every other loss layer, Accuracy and Silence dropped; include/exclude rules removed.

Data transformations (mean, scale, crop) are not carried over: a deploy net takes prepared input.
"""
from __future__ import annotations

import os

from caffe_cae.errors import CaffeCaeError
from caffe_cae.netgraph.filtering import filter_net
from caffe_cae.proto import caffe_pb2

def _traits(layer: caffe_pb2.LayerParameter):
    from caffe_cae.layers import LAYERS

    return LAYERS.get(layer.type)


def _is_data_layer(layer: caffe_pb2.LayerParameter) -> bool:
    """A layer that produces blobs from outside the net (Data, ImageData, HDF5Data, a Python data
    layer, ...): a registered data layer other than Input (already in deploy form), or an
    unregistered layer without bottoms."""
    cls = _traits(layer)
    return layer.type != "Input" and (cls.is_data if cls is not None else not layer.bottom)


def _left_out(layer: caffe_pb2.LayerParameter) -> bool:
    """Loss and evaluation layers (Accuracy, Silence)."""
    cls = _traits(layer)
    return cls.is_loss or cls.is_metric if cls is not None else layer.type.endswith("Loss")


def deploy_net(net, input_shapes: dict[str, tuple[int, ...]], phase: int = caffe_pb2.TEST,
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
    shapes = {blob: tuple(int(d) for d in shape) for blob, shape in input_shapes.items()}

    deployed = caffe_pb2.NetParameter()
    deployed.CopyFrom(filtered)
    del deployed.layer[:]
    deployed.ClearField("state")
    softmax_losses = [lp for lp in filtered.layer if lp.type == "SoftmaxWithLoss"]
    dropped: set[str] = set()
    placed: set[str] = set()
    names = {lp.name for lp in filtered.layer} | {t for lp in filtered.layer for t in lp.top}
    for layer in filtered.layer:
        if _is_data_layer(layer) or (layer.type == "Input" and any(t in shapes for t in layer.top)):
            kept = [t for t in layer.top if t in shapes] if _is_data_layer(layer) else list(layer.top)
            dropped.update(t for t in layer.top if t not in kept)
            if kept:
                _add_input(deployed, layer, kept, shapes)
                placed.update(kept)
            continue
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
    unknown = set(shapes) - placed
    if unknown:
        data_tops = [t for lp in filtered.layer if _is_data_layer(lp) or lp.type == "Input" for t in lp.top]
        raise CaffeCaeError(f"{where}: no data blob named {', '.join(sorted(unknown))} "
                            f"(data blobs: {', '.join(data_tops) or 'none'})")
    if not any(lp.type == "Input" for lp in deployed.layer):
        raise CaffeCaeError(f"{where}: the deploy form has no input; give the shape of a data blob")
    return deployed


def _add_input(deployed: caffe_pb2.NetParameter, layer: caffe_pb2.LayerParameter, tops: list[str], shapes) -> None:
    own = dict(zip(layer.top, layer.input_param.shape)) if layer.type == "Input" else {}
    new = deployed.layer.add(name=layer.name, type="Input", top=tops)
    for top in tops:
        shape = new.input_param.shape.add()
        if top in shapes:
            shape.dim.extend(shapes[top])
        else:
            shape.CopyFrom(own[top])
