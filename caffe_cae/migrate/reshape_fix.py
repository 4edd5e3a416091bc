"""The Reshape fix for legacy nets whose InnerProduct feeds a spatial layer.

Until March 2015 every Caffe blob was 4-D and an InnerProduct top was (N, C, 1, 1); since N-D
blobs it is 2-D (N, C).  A V1 net such as the CAE papers' (``ip1decode`` -> ``deconv2``) then
upgrades cleanly but a Convolution / Deconvolution / Pooling / Unpooling fed by that top
(directly or through in-place layers) has no spatial axes.  The fix the papers' own later files
use is a ``Reshape`` with ``shape { dim: 0 dim: 0 dim: 1 dim: 1 }`` right after the last in-place
layer on the blob, whose new top ``<blob>sh`` (e.g. ``ip1decodesh``) feeds the spatial layers.
Only those spatial consumers are rewired; other consumers keep reading the 2-D blob.

A blob counts as 2-D when an InnerProduct (axis 1) or a Flatten (whose old top was
(N, C*H*W, 1, 1)) made it, or when a shape-preserving layer (ReLU, Sigmoid, Dropout, Eltwise, ...)
made it from such a blob.
"""
from __future__ import annotations

from caffe_cae.migrate.notes import NoteLog
from caffe_cae.proto import caffe_pb2

#: Layer types that need 4-D (N, C, H, W) input; value = which bottoms are image inputs.
SPATIAL_BOTTOMS: dict[str, slice] = {
    "Convolution": slice(None),
    "Deconvolution": slice(None),
    "Pooling": slice(None),
    "Unpooling": slice(0, 1),  # bottom 1 is the pooling mask
}

RESHAPE_DIMS = (0, 0, 1, 1)


#: Layers whose tops have the shape of their first bottom.
SHAPE_PRESERVING = frozenset({
    "AbsVal", "BNLL", "Dropout", "ELU", "Eltwise", "Exp", "Log", "Power", "PReLU", "ReLU",
    "Sigmoid", "Split", "Swish", "TanH", "Threshold", "Clip", "BN", "DropoutChannel", "MVN",
})


def _is_in_place(layer: caffe_pb2.LayerParameter, blob: str) -> bool:
    return any(top == blob and j < len(layer.bottom) and layer.bottom[j] == blob
               for j, top in enumerate(layer.top))


def _flat_origin(layer: caffe_pb2.LayerParameter, origin: dict[str, str]) -> str | None:
    """The layer that made this layer's tops 2-D (``"InnerProduct 'ip1'"``), or None."""
    if layer.type == "InnerProduct" and layer.inner_product_param.axis == 1:
        return f"InnerProduct '{layer.name}'"
    if layer.type == "Flatten" and layer.flatten_param.axis == 1 and layer.flatten_param.end_axis == -1:
        return f"Flatten '{layer.name}'"
    if layer.type in SHAPE_PRESERVING and layer.bottom:
        return origin.get(layer.bottom[0])
    return None


def insert_reshapes(net: caffe_pb2.NetParameter, log: NoteLog) -> int:
    """Insert the Reshape layers the net needs (in place); returns how many were inserted."""
    layers = list(net.layer)
    blob_names = {b for layer in layers for b in list(layer.top) + list(layer.bottom)}
    layer_names = {layer.name for layer in layers}
    creator: dict[str, int] = {}       # blob -> index of the layer that created it (not in place)
    origin: dict[str, str] = {}        # 2-D blob -> the layer that made it 2-D
    last_writer: dict[str, int] = {}   # blob -> index of the last layer that wrote it
    made: dict[tuple[str, int], str] = {}   # (blob, last writer) -> reshaped blob name
    after: dict[int, list[caffe_pb2.LayerParameter]] = {}
    rewired: dict[int, caffe_pb2.LayerParameter] = {}
    for index, layer in enumerate(layers):
        bottoms = SPATIAL_BOTTOMS.get(layer.type)
        if bottoms is not None:
            for j in range(len(layer.bottom))[bottoms]:
                blob = layer.bottom[j]
                if blob not in origin:
                    continue
                writer = last_writer[blob]
                key = (blob, writer)
                if key not in made:
                    reshape = _make_reshape(layers[creator[blob]], blob, blob_names, layer_names)
                    made[key] = reshape.top[0]
                    after.setdefault(writer, []).append(reshape)
                    log.warning(
                        f"layer '{layer.name}' ({layer.type}) reads '{blob}', which is 2-D in "
                        f"current Caffe (made by {origin[blob]}): inserted Reshape "
                        f"'{reshape.name}' (0, 0, 1, 1) -> '{reshape.top[0]}' after layer "
                        f"'{layers[writer].name}'")
                fixed = rewired.setdefault(index, _copy(layer))
                fixed.bottom[j] = made[key]
        flat = _flat_origin(layer, origin)
        for blob in layer.top:
            if not _is_in_place(layer, blob):
                creator[blob] = index
                if flat is None:
                    origin.pop(blob, None)
                else:
                    origin[blob] = flat
            last_writer[blob] = index
    if not after:
        return 0
    net.ClearField("layer")
    for index, layer in enumerate(layers):
        net.layer.add().CopyFrom(rewired.get(index, layer))
        for reshape in after.get(index, []):
            net.layer.add().CopyFrom(reshape)
    return sum(len(v) for v in after.values())


def _copy(layer: caffe_pb2.LayerParameter) -> caffe_pb2.LayerParameter:
    out = caffe_pb2.LayerParameter()
    out.CopyFrom(layer)
    return out


def _unique(name: str, taken: set[str]) -> str:
    candidate, n = name, 2
    while candidate in taken:
        candidate, n = f"{name}{n}", n + 1
    taken.add(candidate)
    return candidate


def _make_reshape(source: caffe_pb2.LayerParameter, blob: str, blob_names: set[str],
                  layer_names: set[str]) -> caffe_pb2.LayerParameter:
    """The Reshape layer for ``blob``; it inherits its creator's include/exclude rules."""
    name = "reshape" if "reshape" not in layer_names else f"{blob}_reshape"
    reshape = caffe_pb2.LayerParameter(name=_unique(name, layer_names), type="Reshape")
    reshape.bottom.append(blob)
    reshape.top.append(_unique(f"{blob}sh", blob_names))
    reshape.include.extend(source.include)
    reshape.exclude.extend(source.exclude)
    reshape.reshape_param.shape.dim.extend(RESHAPE_DIMS)
    return reshape
