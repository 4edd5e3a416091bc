"""Reading a Caffe fork's binary caffemodel: its layers' fork parameters carry the fork's field
numbers (SSD's ``norm_param`` is LayerParameter field 206), ours are 10000 + that number (see
the header of ``proto/caffe.proto``).  Before parsing, the LayerParameter fields of a layer
whose type a fork defines are renumbered from the fork's numbers to ours, on the wire, so that
numbers which mean something else in BVLC's schema (SegNet's ``upsample_param`` is 137,
BVLC's ``embed_param``) never reach the wrong message.  Every other byte is kept as it is.
"""
from __future__ import annotations

#: Layer type -> {the fork's LayerParameter field number: ours}.
FORK_FIELDS: dict[str, dict[int, int]] = {
    # SSD (weiliu89/caffe)
    "AnnotatedData": {200: 10200},
    "MultiBoxLoss": {201: 10201},
    "Permute": {202: 10202},
    "PriorBox": {203: 10203},
    "DetectionOutput": {204: 10204},
    "DetectionEvaluate": {205: 10205},
    "Normalize": {206: 10206},
    # SegNet (alexgkendall/caffe-segnet); its BN's bn_param is Noh's
    "Upsample": {137: 10137},
    "DenseImageData": {138: 10138},
    "BN": {45: 10045},
    # py-faster-rcnn, DeepLab v2 / PSPNet, ShuffleNet, MobileNet-v2 ports
    "ROIPooling": {8266711: 8276711},
    "SmoothL1Loss": {8266712: 8276712},
    "Interp": {143: 10143},
    "ShuffleChannel": {164: 10164},
    "ReLU6": {100000: 110000},
}

_LAYER = 100  # NetParameter.layer
_TYPE = 2  # LayerParameter.type
_VARINT, _FIXED64, _BYTES, _FIXED32 = 0, 1, 2, 5


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = data[pos]
        value |= (byte & 0x7F) << shift
        pos += 1
        if byte < 0x80:
            return value, pos
        shift += 7


def _encode_varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _fields(data: bytes):
    """(number, wire type, payload start, end of the field) of each field of a message."""
    pos = 0
    while pos < len(data):
        key, start = _varint(data, pos)
        number, wire = key >> 3, key & 7
        if wire == _VARINT:
            _, end = _varint(data, start)
        elif wire == _FIXED64:
            end = start + 8
        elif wire == _FIXED32:
            end = start + 4
        elif wire == _BYTES:
            length, start = _varint(data, start)
            end = start + length
        else:  # groups: not in Caffe's schema
            raise ValueError(f"unsupported wire type {wire}")
        yield number, wire, pos, start, end
        pos = end


def _layer_type(layer: bytes) -> str | None:
    for number, wire, _, start, end in _fields(layer):
        if number == _TYPE and wire == _BYTES:
            return layer[start:end].decode("utf-8", "replace")
    return None


def _renumber_layer(layer: bytes, table: dict[int, int]) -> bytes:
    out = bytearray()
    for number, wire, field_start, start, end in _fields(layer):
        if number in table:
            out += _encode_varint(table[number] << 3 | wire)
            if wire == _BYTES:
                out += _encode_varint(end - start)
            out += layer[start:end]
        else:
            out += layer[field_start:end]
    return bytes(out)


def renumber_fork_fields(data: bytes) -> bytes:
    """A serialized NetParameter with the fork parameters of its layers at our numbers."""
    out = bytearray()
    for number, wire, field_start, start, end in _fields(data):
        if number == _LAYER and wire == _BYTES:
            layer = data[start:end]
            table = FORK_FIELDS.get(_layer_type(layer) or "")
            if table:
                layer = _renumber_layer(layer, table)
                out += _encode_varint(_LAYER << 3 | _BYTES) + _encode_varint(len(layer)) + layer
                continue
        out += data[field_start:end]
    return bytes(out)
