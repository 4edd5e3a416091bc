"""Caffe's ``Datum`` records: one image (raw uint8, float or an encoded file) and its label.

A raw Datum holds ``channels x height x width`` bytes (``data``) or floats (``float_data``) in
C x H x W order, used as stored (no channel swap); an encoded one (``encoded: true``) holds an
image file, decoded as OpenCV does (BGR, see :mod:`caffe_cae.data.images`).
"""
from __future__ import annotations

import numpy as np
from google.protobuf.message import DecodeError

from caffe_cae.data.images import ImageError, decode_image
from caffe_cae.errors import CaffeCaeError
from caffe_cae.proto import caffe_pb2


class DatumError(CaffeCaeError):
    """A record that is no usable Datum (the message names the record)."""


def parse_datum(value: bytes, where: str) -> caffe_pb2.Datum:
    datum = caffe_pb2.Datum()
    try:
        datum.ParseFromString(value)
    except DecodeError as err:
        raise DatumError(f"{where}: not a Datum ({err})") from None
    return datum


def datum_image(datum: caffe_pb2.Datum, where: str, color: bool | None = None) -> np.ndarray:
    """The Datum's image as a C x H x W array: uint8 for ``data`` and encoded images, float32
    for ``float_data``.  ``color`` decodes encoded images (True: force_color, False:
    force_gray, None: as the file is); raw Datums ignore it."""
    if datum.encoded:
        try:
            image = decode_image(datum.data, color)
        except ImageError as err:
            raise DatumError(f"{where}: encoded image {err}") from None
        return image.transpose(2, 0, 1)
    shape = (datum.channels, datum.height, datum.width)
    if min(shape) <= 0:
        raise DatumError(f"{where}: Datum has channels x height x width {' x '.join(map(str, shape))}; "
                         f"all must be positive (or encoded: true for an image file)")
    count = shape[0] * shape[1] * shape[2]
    if datum.data:
        if len(datum.data) != count:
            raise DatumError(f"{where}: Datum data has {len(datum.data)} bytes, channels x height x width "
                             f"= {' x '.join(map(str, shape))} = {count}")
        return np.frombuffer(datum.data, dtype=np.uint8).reshape(shape)
    if len(datum.float_data) != count:
        raise DatumError(f"{where}: Datum float_data has {len(datum.float_data)} values, channels x height x "
                         f"width = {' x '.join(map(str, shape))} = {count}")
    return np.asarray(datum.float_data, dtype=np.float32).reshape(shape)


def image_datum(image: np.ndarray, label: int) -> caffe_pb2.Datum:
    """``CVMatToDatum`` + label: a raw Datum of an H x W x C uint8 image (channels as given)."""
    datum = caffe_pb2.Datum()
    height, width, channels = image.shape
    datum.channels, datum.height, datum.width = channels, height, width
    datum.data = np.ascontiguousarray(image.transpose(2, 0, 1)).tobytes()
    datum.label = int(label)
    datum.encoded = False
    return datum


def encoded_datum(data: bytes, label: int) -> caffe_pb2.Datum:
    """An encoded Datum (``ReadFileToDatum`` / ``cv::imencode``): the file's bytes and the label."""
    datum = caffe_pb2.Datum()
    datum.data = data
    datum.label = int(label)
    datum.encoded = True
    return datum
