"""V0 -> V1: Caffe's ``UpgradeV0Net`` (nets of 2013-2014, ``layers { layer { type: "conv" } }``).

First ``padding`` layers are folded into the conv/pool layer they feed (``UpgradeV0PaddingLayers``),
then each V0 layer becomes a V1 layer (``UpgradeV0LayerParameter``).  A V0 field given for a layer
type that has no such parameter is dropped and reported as a problem, exactly as Caffe does
("Unknown parameter X for layer type T"); fields Caffe never reads are reported as warnings.
"""
from __future__ import annotations

from caffe_cae.errors import CaffeCaeError
from caffe_cae.migrate.notes import NoteLog
from caffe_cae.migrate.types import V0_TYPE_NAMES
from caffe_cae.proto import caffe_pb2


# Where each V0 field goes, per V0 type, in the order Caffe checks them.  A target is
# (sub-message, field); "*" means every type (the transformation fields).  The name in an error
# message is Caffe's (it says "shuffle" for shuffle_images).
_DATA_SOURCES = {"data": "data_param", "hdf5_data": "hdf5_data_param", "images": "image_data_param",
                 "window_data": "window_data_param"}
V0_FIELD_TARGETS: dict[str, dict[str, tuple[str, str]]] = {
    "num_output": {"conv": ("convolution_param", "num_output"),
                   "innerproduct": ("inner_product_param", "num_output")},
    "biasterm": {"conv": ("convolution_param", "bias_term"),
                 "innerproduct": ("inner_product_param", "bias_term")},
    "weight_filler": {"conv": ("convolution_param", "weight_filler"),
                      "innerproduct": ("inner_product_param", "weight_filler")},
    "bias_filler": {"conv": ("convolution_param", "bias_filler"),
                    "innerproduct": ("inner_product_param", "bias_filler")},
    "pad": {"conv": ("convolution_param", "pad"), "pool": ("pooling_param", "pad")},
    "kernelsize": {"conv": ("convolution_param", "kernel_size"), "pool": ("pooling_param", "kernel_size")},
    "group": {"conv": ("convolution_param", "group")},
    "stride": {"conv": ("convolution_param", "stride"), "pool": ("pooling_param", "stride")},
    "pool": {"pool": ("pooling_param", "pool")},
    "dropout_ratio": {"dropout": ("dropout_param", "dropout_ratio")},
    "local_size": {"lrn": ("lrn_param", "local_size")},
    "alpha": {"lrn": ("lrn_param", "alpha")},
    "beta": {"lrn": ("lrn_param", "beta")},
    "k": {"lrn": ("lrn_param", "k")},
    "source": {**{t: (p, "source") for t, p in _DATA_SOURCES.items()},
               "infogain_loss": ("infogain_loss_param", "source")},
    "scale": {"*": ("transform_param", "scale")},
    "meanfile": {"*": ("transform_param", "mean_file")},
    "batchsize": {t: (p, "batch_size") for t, p in _DATA_SOURCES.items()},
    "cropsize": {"*": ("transform_param", "crop_size")},
    "mirror": {"*": ("transform_param", "mirror")},
    "rand_skip": {"data": ("data_param", "rand_skip"), "images": ("image_data_param", "rand_skip")},
    "shuffle_images": {"images": ("image_data_param", "shuffle")},
    "new_height": {"images": ("image_data_param", "new_height")},
    "new_width": {"images": ("image_data_param", "new_width")},
    "concat_dim": {"concat": ("concat_param", "concat_dim")},
    "det_fg_threshold": {"window_data": ("window_data_param", "fg_threshold")},
    "det_bg_threshold": {"window_data": ("window_data_param", "bg_threshold")},
    "det_fg_fraction": {"window_data": ("window_data_param", "fg_fraction")},
    "det_context_pad": {"window_data": ("window_data_param", "context_pad")},
    "det_crop_mode": {"window_data": ("window_data_param", "crop_mode")},
    "hdf5_output_param": {"hdf5_output": ("hdf5_output_param", None)},
}
_CAFFE_FIELD_WORD = {"shuffle_images": "shuffle"}
# Copied directly (not through the table).
_DIRECT_FIELDS = {"name", "type", "blobs", "blobs_lr", "weight_decay"}
# Net-level fields UpgradeV0Net carries over.
_NET_FIELDS_KEPT = {"name", "input", "input_dim", "force_backward", "layers"}


def needs_v0_upgrade(net: caffe_pb2.NetParameter) -> bool:
    """Caffe's ``NetNeedsV0ToV1Upgrade``: some ``layers`` entry holds a V0 ``layer``."""
    return any(conn.HasField("layer") for conn in net.layers)


def upgrade_v0_net(net: caffe_pb2.NetParameter, log: NoteLog) -> caffe_pb2.NetParameter:
    """A new V1 net from a V0 one (``UpgradeV0Net``); problems are logged as error notes."""
    padded = fold_padding_layers(net)
    out = caffe_pb2.NetParameter()
    if padded.HasField("name"):
        out.name = padded.name
    for index, connection in enumerate(padded.layers):
        upgrade_v0_layer(connection, out.layers.add(), index, log)
    out.input.extend(padded.input)
    out.input_dim.extend(padded.input_dim)
    if padded.HasField("force_backward"):
        out.force_backward = padded.force_backward
    # Caffe drops these silently and still reports success (exit 0): warn, not a problem.
    for field, _ in net.ListFields():
        if field.name not in _NET_FIELDS_KEPT:
            log.warning(f"Net field '{field.name}' is not carried over by the V0 upgrade (Caffe drops "
                        f"it); add it back to the upgraded net by hand if it matters.")
    return out


def _v0_name(connection: caffe_pb2.V1LayerParameter, index: int) -> str:
    v0 = connection.layer
    return f"layer '{v0.name}' ({v0.type or 'no type'})" if v0.name else f"layer #{index} ({v0.type})"


def fold_padding_layers(net: caffe_pb2.NetParameter) -> caffe_pb2.NetParameter:
    """Caffe's ``UpgradeV0PaddingLayers``: drop V0 ``padding`` layers, giving their ``pad`` to the
    conv/pool layer they feed and rewiring its bottom to the padding layer's input."""
    out = caffe_pb2.NetParameter()
    out.CopyFrom(net)
    out.ClearField("layers")
    last_producer: dict[str, int] = {name: -1 for name in net.input}
    for i, connection in enumerate(net.layers):
        v0 = connection.layer
        if v0.type != "padding":
            out.layers.add().CopyFrom(connection)
        for j, blob in enumerate(connection.bottom):
            if blob not in last_producer:
                raise CaffeCaeError(f"{_v0_name(connection, i)}: unknown bottom blob '{blob}' "
                                    f"(no earlier layer or net input produces it)")
            source_index = last_producer[blob]
            if source_index == -1:
                continue
            source = net.layers[source_index]
            if source.layer.type != "padding":
                continue
            where = f"{_v0_name(source, source_index)}"
            if v0.type not in ("conv", "pool"):
                raise CaffeCaeError(f"{where}: feeds {_v0_name(connection, i)}; a padding layer can "
                                    f"only feed a conv or pool layer")
            if len(connection.bottom) != 1:
                raise CaffeCaeError(f"{_v0_name(connection, i)}: takes a padded input, so it must "
                                    f"have exactly one bottom (has {len(connection.bottom)})")
            if len(source.bottom) != 1 or len(source.top) != 1:
                raise CaffeCaeError(f"{where}: a padding layer needs exactly one bottom and one top "
                                    f"(has {len(source.bottom)} and {len(source.top)})")
            target = out.layers[len(out.layers) - 1]
            target.layer.pad = source.layer.pad
            target.bottom[j] = source.bottom[0]
        for blob in connection.top:
            last_producer[blob] = i
    return out


def upgrade_v0_layer(connection: caffe_pb2.V1LayerParameter, layer: caffe_pb2.V1LayerParameter,
                     index: int, log: NoteLog) -> bool:
    """Fill the V1 ``layer`` from a V0 connection (``UpgradeV0LayerParameter``).

    Returns False (and logs error notes) when some field could not be carried over.
    """
    layer.Clear()
    layer.bottom.extend(connection.bottom)
    layer.top.extend(connection.top)
    compatible = True
    dropped = [f.name for f, _ in connection.ListFields() if f.name not in ("bottom", "top", "layer")]
    # Caffe drops these without marking the upgrade incompatible: warnings, not problems.
    if not connection.HasField("layer"):
        if dropped:
            log.warning(f"Layer #{index} of a V0 net has no V0 'layer' field; its fields "
                        f"{', '.join(dropped)} are dropped (Caffe keeps only bottom and top).")
        return compatible
    if dropped:
        log.warning(f"{_v0_name(connection, index)}: V1 fields {', '.join(dropped)} next to a V0 "
                    f"'layer' are dropped (Caffe reads only the V0 layer).")
    v0 = connection.layer
    type_name = v0.type
    if v0.HasField("name"):
        layer.name = v0.name
    if v0.HasField("type"):
        if type_name not in V0_TYPE_NAMES:
            known = ", ".join(sorted(V0_TYPE_NAMES))
            raise CaffeCaeError(f"{_v0_name(connection, index)}: unknown V0 layer type "
                                f"'{type_name}' (known: {known})")
        layer.type = caffe_pb2.V1LayerParameter.LayerType.Value(V0_TYPE_NAMES[type_name])
    layer.blobs.extend(v0.blobs)
    layer.blobs_lr.extend(v0.blobs_lr)
    layer.weight_decay.extend(v0.weight_decay)
    for field_name, targets in V0_FIELD_TARGETS.items():
        if not v0.HasField(field_name):
            continue
        target = targets.get(type_name) or targets.get("*")
        if target is None:
            word = _CAFFE_FIELD_WORD.get(field_name, field_name)
            log.error(f"Unknown parameter {word} for layer type {type_name}")
            compatible = False
            continue
        _set_target(layer, target, getattr(v0, field_name))
    handled = _DIRECT_FIELDS | set(V0_FIELD_TARGETS)
    for field, _ in v0.ListFields():
        if field.name not in handled:
            log.warning(f"{_v0_name(connection, index)}: V0 field '{field.name}' has no V1 "
                        f"equivalent; Caffe ignores it.")
    return compatible


def _set_target(layer: caffe_pb2.V1LayerParameter, target: tuple[str, str | None], value) -> None:
    message_name, field_name = target
    message = getattr(layer, message_name)
    if field_name is None:  # whole sub-message
        message.CopyFrom(value)
        return
    field = message.DESCRIPTOR.fields_by_name[field_name]
    if field.message_type is not None:
        getattr(message, field_name).CopyFrom(value)
    elif field.is_repeated:  # ND convolution: pad/kernel_size/stride are repeated
        getattr(message, field_name).append(value)
    else:
        setattr(message, field_name, value)
