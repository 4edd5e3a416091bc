"""V1 -> current syntax: Caffe's ``UpgradeNetDataTransformation`` and ``UpgradeV1Net``.

Every field of a V1 layer is carried over: names, bottoms, tops, include/exclude rules, blobs,
``loss_weight``, the ``blobs_lr`` / ``weight_decay`` / ``param`` / ``blob_share_mode`` lists folded
into ``param { name share_mode lr_mult decay_mult }`` (index by index, only what was given), and
every ``*_param`` sub-message copied to the current-syntax field of the same name (Noh's fork
parameters included: ``unpooling_param`` -> field 10044, ``bn_param`` -> 10045, ...).  A V1 field
with no current-syntax home is an error, never a silent drop.
"""
from __future__ import annotations

from caffe_cae.errors import CaffeCaeError
from caffe_cae.migrate.notes import NoteLog
from caffe_cae.migrate.types import V1_TYPE_NAMES
from caffe_cae.proto import caffe_pb2

V1 = caffe_pb2.V1LayerParameter

MIXED_SYNTAX_MESSAGE = (
    "Refusing to upgrade inconsistent NetParameter input; the definition includes both 'layer' "
    "and 'layers' fields. The current format defines 'layer' fields with string type like "
    "layer { type: 'Layer' ... } and not layers { type: LAYER ... }. Manually switch the "
    "definition to 'layer' format to continue."
)

# Data layers whose deprecated transformation fields move to transform_param.
_TRANSFORM_SOURCES = {V1.DATA: "data_param", V1.IMAGE_DATA: "image_data_param",
                      V1.WINDOW_DATA: "window_data_param"}
_TRANSFORM_FIELDS = ("scale", "mean_file", "crop_size", "mirror")

# V1 fields handled explicitly by upgrade_v1_layer; every other set field must be a sub-message
# with a same-named current-syntax field.
_EXPLICIT_FIELDS = {"bottom", "top", "name", "include", "exclude", "type", "blobs", "param",
                    "blob_share_mode", "blobs_lr", "weight_decay", "loss_weight", "layer"}


def mixed_syntax_error(net: caffe_pb2.NetParameter, source: str | None) -> CaffeCaeError:
    """Caffe's refusal for a net with both ``layer`` and ``layers``, plus how to fix it here."""
    first = net.layers[0].name or "#0"
    return CaffeCaeError(
        f"{source or '<net>'}: {MIXED_SYNTAX_MESSAGE} (This file has {len(net.layer)} 'layer' and "
        f"{len(net.layers)} 'layers' entries, the first 'layers' one is '{first}': move the "
        f"'layers' entries into a file of their own, run 'caffe-cae migrate' on it and paste its "
        f"'layer' entries back in their place.)")


def needs_data_upgrade(net: caffe_pb2.NetParameter) -> bool:
    """Caffe's ``NetNeedsDataUpgrade``: a V1 data layer has transformation fields in its param."""
    for layer in net.layers:
        param_name = _TRANSFORM_SOURCES.get(layer.type)
        if param_name and layer.HasField(param_name):
            param = getattr(layer, param_name)
            if any(param.HasField(f) for f in _TRANSFORM_FIELDS):
                return True
    return False


def upgrade_data_transformation(net: caffe_pb2.NetParameter) -> None:
    """Move scale/mean_file/crop_size/mirror of V1 data layers into ``transform_param`` (in place).

    Like Caffe (``mutable_*_param()``), every DATA/IMAGE_DATA/WINDOW_DATA layer ends up with both
    sub-messages present, possibly empty.
    """
    for layer in net.layers:
        param_name = _TRANSFORM_SOURCES.get(layer.type)
        if not param_name:
            continue
        param = getattr(layer, param_name)
        param.SetInParent()
        layer.transform_param.SetInParent()
        for field in _TRANSFORM_FIELDS:
            if param.HasField(field):
                setattr(layer.transform_param, field, getattr(param, field))
                param.ClearField(field)


def needs_v1_upgrade(net: caffe_pb2.NetParameter) -> bool:
    """Caffe's ``NetNeedsV1ToV2Upgrade``: the net has ``layers`` entries."""
    return len(net.layers) > 0


def upgrade_v1_net(net: caffe_pb2.NetParameter, log: NoteLog, source: str | None = None
                   ) -> caffe_pb2.NetParameter:
    """A current-syntax copy of a V1 net (``UpgradeV1Net``); refuses nets that mix syntaxes."""
    if len(net.layer) > 0:
        raise mixed_syntax_error(net, source)
    out = caffe_pb2.NetParameter()
    out.CopyFrom(net)
    out.ClearField("layers")
    out.ClearField("layer")
    for index, v1_layer in enumerate(net.layers):
        if not upgrade_v1_layer(v1_layer, out.layer.add(), log):
            log.error(f"Upgrade of input layer {index} failed.")
    return out


def _layer_label(v1_layer: caffe_pb2.V1LayerParameter) -> str:
    type_name = V1.LayerType.Name(v1_layer.type) if v1_layer.HasField("type") else "no type"
    return f"layer '{v1_layer.name}' ({type_name})"


def upgrade_v1_layer(v1_layer: caffe_pb2.V1LayerParameter, layer: caffe_pb2.LayerParameter,
                     log: NoteLog) -> bool:
    """Fill ``layer`` from ``v1_layer`` (Caffe's ``UpgradeV1LayerParameter``).

    Returns False when the layer still holds a V0 ``layer`` field (dropped, as Caffe does).
    """
    layer.Clear()
    compatible = True
    layer.bottom.extend(v1_layer.bottom)
    layer.top.extend(v1_layer.top)
    if v1_layer.HasField("name"):
        layer.name = v1_layer.name
    layer.include.extend(v1_layer.include)
    layer.exclude.extend(v1_layer.exclude)
    if v1_layer.HasField("type"):
        try:
            layer.type = V1_TYPE_NAMES[V1.LayerType.Name(v1_layer.type)]
        except (KeyError, ValueError):
            known = ", ".join(sorted(V1_TYPE_NAMES))
            raise CaffeCaeError(f"layer '{v1_layer.name}': unknown V1 layer type {v1_layer.type} "
                                f"(known: {known})") from None
    layer.blobs.extend(v1_layer.blobs)
    _upgrade_param_specs(v1_layer, layer)
    layer.loss_weight.extend(v1_layer.loss_weight)
    for field, value in v1_layer.ListFields():
        if field.name in _EXPLICIT_FIELDS:
            continue
        target = layer.DESCRIPTOR.fields_by_name.get(field.name)
        if target is None or target.message_type is not field.message_type:
            raise CaffeCaeError(f"{_layer_label(v1_layer)}: V1 field '{field.name}' has no "
                                f"current-syntax equivalent in our schema")
        getattr(layer, field.name).CopyFrom(value)
    if v1_layer.HasField("layer"):
        log.error("Input NetParameter has V0 layer -- ignoring.")
        compatible = False
    return compatible


def _upgrade_param_specs(v1_layer: caffe_pb2.V1LayerParameter, layer: caffe_pb2.LayerParameter
                         ) -> None:
    """``param``/``blob_share_mode``/``blobs_lr``/``weight_decay`` -> ``param {}`` entries."""

    def spec(i: int) -> caffe_pb2.ParamSpec:
        while len(layer.param) <= i:
            layer.param.add()
        return layer.param[i]

    for i, name in enumerate(v1_layer.param):
        spec(i).name = name
    for i, mode in enumerate(v1_layer.blob_share_mode):
        spec(i).share_mode = mode  # STRICT/PERMISSIVE have the same numbers in both enums
    for i, lr in enumerate(v1_layer.blobs_lr):
        spec(i).lr_mult = lr
    for i, decay in enumerate(v1_layer.weight_decay):
        spec(i).decay_mult = decay
