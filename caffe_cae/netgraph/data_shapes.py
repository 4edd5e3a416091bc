"""The shapes of a net's data tops without loading data (the net with its data layers turned
into Input layers of those shapes: :func:`caffe_cae.migrate.deploy.data_layers_as_inputs`).

For ``params``, ``export`` and anything that infers shapes before data is read, each top of a
data layer (a layer with the ``is_data`` trait) takes its shape from, in this order:

1. ``given`` (``--input-shape BLOB=C,H,W``: a per-sample shape; the layer's batch size goes in
   front; an Input layer keeps its own batch size);
2. the data source, read cheaply (:meth:`Layer.source_top_shapes`: one LMDB record, the first
   image of a list, an HDF5 file's dataset shapes);
3. the layer's parameters (:meth:`Layer.param_top_shapes`: a label's batch size, ``crop_size``
   with the channels a mean file, ``mean_value`` or ``is_color`` fix), with a warning that says
   why the source was not read.

A top that none of them gives is a one-line error naming the blob, the layer and why its data
could not be read, asking for ``--input-shape``.  Nothing is guessed.
"""
from __future__ import annotations

import logging

from caffe_cae.errors import CaffeCaeError
from caffe_cae.netgraph.filtering import filter_net
from caffe_cae.proto import caffe_pb2

log = logging.getLogger(__name__)

Shape = tuple[int, ...]

_BATCH_FIELDS = ("data_param", "image_data_param", "window_data_param", "hdf5_data_param", "memory_data_param")


def batch_size(layer: caffe_pb2.LayerParameter) -> int:
    """The batch size a data layer's parameters give (1 when none does)."""
    for name in _BATCH_FIELDS:
        if layer.HasField(name) and getattr(layer, name).batch_size:
            return int(getattr(layer, name).batch_size)
    return 1


def _data_layer(param: caffe_pb2.LayerParameter, phase: int):
    """The layer object of a data layer (not set up), or None for other types."""
    from caffe_cae.layers import layer_class
    from caffe_cae.migrate.deploy import is_data_layer

    if not is_data_layer(param):
        return None
    cls = layer_class(param.type, param.name)
    copy = caffe_pb2.LayerParameter()
    copy.CopyFrom(param)
    if not copy.HasField("phase"):
        copy.phase = phase
    return cls(copy, copy.phase)


def _without_layer_prefix(message: str, layer: caffe_pb2.LayerParameter) -> str:
    return message.removeprefix(f"layer '{layer.name}' ({layer.type}): ")


def data_top_shapes(net: caffe_pb2.NetParameter, given: dict[str, Shape] | None = None) -> dict[str, Shape]:
    """Full shapes (batch first) of the tops of the data layers of ``net`` in its state (see
    the module).  ``given``: blob -> per-sample shape; naming a blob that is no data top is an
    error."""
    given = {name: tuple(int(d) for d in shape) for name, shape in (given or {}).items()}
    layers = [(param, layer) for param in filter_net(net).layer
              if (layer := _data_layer(param, net.state.phase)) is not None]
    tops = {top for param, _ in layers for top in param.top}
    unknown = [name for name in given if name not in tops]
    if unknown:
        raise CaffeCaeError(f"blob '{unknown[0]}': --input-shape names no data or Input layer top "
                            f"(data tops: {', '.join(sorted(tops)) or 'none'})")
    shapes: dict[str, Shape] = {}
    for param, layer in layers:
        if param.type == "Input":  # its own shapes, unless given (keeping its batch)
            for j, top in enumerate(param.top):
                if top in given:
                    dims = param.input_param.shape[j].dim if j < len(param.input_param.shape) else []
                    shapes[top] = (dims[0] if dims else 1, *given.pop(top))
            continue
        batch = batch_size(param)
        wanted = [top for top in param.top if top not in given]
        found, reason, fallback = None, None, None
        if wanted:
            try:
                found = layer.source_top_shapes()
            except CaffeCaeError as err:
                reason = _without_layer_prefix(str(err), param)
                fallback = layer.param_top_shapes()
        for j, top in enumerate(param.top):
            if top in given:
                shapes[top] = (batch, *given.pop(top))
            elif found is not None:
                shapes[top] = tuple(found[j])
            elif fallback[j] is not None:
                shapes[top] = tuple(fallback[j])
            else:
                raise CaffeCaeError(f"blob '{top}': cannot tell the shape of data layer '{param.name}' ({param.type}) "
                                    f"without its data ({reason}); give --input-shape {top}=C,H,W")
        if found is None and wanted:
            log.warning("layer '%s' (%s): %s; shapes from its parameters: %s", param.name, param.type, reason,
                        ", ".join(f"{top} {'x'.join(map(str, shapes[top]))}" for top in wanted))
    return shapes

