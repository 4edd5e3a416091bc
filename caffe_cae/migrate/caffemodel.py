"""Old binary ``.caffemodel`` files: Caffe's ``upgrade_net_proto_binary`` plus modern blob shapes.

Caffe's tool upgrades the layers and keeps every blob exactly as stored, legacy
num/channels/height/width dims included (its loader pads shapes to 4-D when comparing, so an old
1x1xNxK InnerProduct weight still loads into an (N, K) blob).  By default we also give the blobs
of the layers whose current shapes are known a ``shape`` like modern Caffe writes:
InnerProduct weight (1,1,N,K) -> (N,K), InnerProduct/Convolution/Deconvolution bias
(1,1,1,N) -> (N), Convolution/Deconvolution weights keep their 4 dims.  Other blobs keep their
legacy dims.  ``keep_legacy_dims=True`` does exactly what Caffe does.
"""
from __future__ import annotations

import logging

from caffe_cae.migrate.net import upgrade_net
from caffe_cae.migrate.notes import Note, NoteLog
from caffe_cae.proto import caffe_pb2
from caffe_cae.weights import blob_has_legacy_dims

logger = logging.getLogger(__name__)

_LEGACY_FIELDS = ("num", "channels", "height", "width")
_WITH_BIAS = ("InnerProduct", "Convolution", "Deconvolution")


def upgrade_caffemodel(net_param: caffe_pb2.NetParameter, source: str | None = None,
                       keep_legacy_dims: bool = False) -> caffe_pb2.NetParameter:
    """The upgraded weights message (see :func:`upgrade_caffemodel_with_notes`)."""
    return upgrade_caffemodel_with_notes(net_param, source, keep_legacy_dims)[0]


def upgrade_caffemodel_with_notes(net_param: caffe_pb2.NetParameter, source: str | None = None,
                                  keep_legacy_dims: bool = False
                                  ) -> tuple[caffe_pb2.NetParameter, list[Note]]:
    """Upgrade a binary weights message (any syntax) to current syntax; returns ``(net, notes)``.

    No Reshape layers are inserted (weights files are matched to nets by layer name).
    """
    net, notes = upgrade_net(net_param, source=source, reshape_fix=False)
    log = NoteLog(logger)
    log.extend(notes)
    if not keep_legacy_dims:
        for layer in net.layer:
            for index, blob in enumerate(layer.blobs):
                if blob_has_legacy_dims(blob):
                    _modernise_blob(layer, index, blob, log)
    return net, log.notes


def _modern_shape(layer: caffe_pb2.LayerParameter, index: int, dims: tuple[int, ...]
                  ) -> tuple[int, ...] | None:
    num, channels, height, width = dims
    if layer.type in _WITH_BIAS and index == 1:
        return (width,) if (num, channels, height) == (1, 1, 1) else None
    if layer.type == "InnerProduct" and index == 0:
        return (height, width) if (num, channels) == (1, 1) else None
    if layer.type in ("Convolution", "Deconvolution") and index == 0:
        return dims
    return None


def _modernise_blob(layer: caffe_pb2.LayerParameter, index: int, blob: caffe_pb2.BlobProto,
                    log: NoteLog) -> None:
    dims = tuple(getattr(blob, f) for f in _LEGACY_FIELDS)
    shape = _modern_shape(layer, index, dims)
    if shape is None:
        if layer.type in _WITH_BIAS:
            log.warning(f"layer '{layer.name}' ({layer.type}): blob {index} has unexpected legacy "
                        f"dims {list(dims)}; kept as they are")
        return
    for field in _LEGACY_FIELDS:
        blob.ClearField(field)
    blob.shape.dim.extend(shape)
