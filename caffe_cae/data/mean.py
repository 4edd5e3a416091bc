"""What Caffe's ``compute_image_mean`` tool does: the mean image of a database of Datums.

Every record is decoded as Caffe's ``DecodeDatumNative`` does (encoded images as stored: BGR or
gray), summed in float32 one record after the other and divided by the count in float32, as the
tool's ``float`` BlobProto arithmetic does, so the mean file is Caffe's to the bit.  The result
is a 1 x C x H x W BlobProto with legacy num/channels/height/width dims, as Caffe writes it.
"""
from __future__ import annotations

import logging

import numpy as np

from caffe_cae.data.convert import progress
from caffe_cae.data.datum import datum_image, parse_datum
from caffe_cae.data.db import open_cursor
from caffe_cae.errors import CaffeCaeError
from caffe_cae.proto import caffe_pb2

log = logging.getLogger(__name__)

LOG_EVERY = 10000


def compute_image_mean(db_path: str, backend: str = "lmdb") -> tuple[caffe_pb2.BlobProto, np.ndarray]:
    """``(mean BlobProto, per-channel means)`` of every record of the database."""
    cursor = open_cursor(db_path, backend)
    total = cursor.count()
    first = parse_datum(cursor.value, cursor.where())
    if first.encoded:
        log.info("Decoding Datum")
    shape = datum_image(first, cursor.where()).shape
    sums = np.zeros(shape, np.float32)
    count = 0
    log.info("Starting iteration")
    with progress(total, "compute_image_mean", "img") as bar:
        while True:
            where = cursor.where()
            image = datum_image(parse_datum(cursor.value, where), where)
            if image.shape != shape:
                raise CaffeCaeError(f"{where}: Incorrect data field size {image.size} (image of "
                                    f"{' x '.join(map(str, image.shape))}; the first record is "
                                    f"{' x '.join(map(str, shape))})")
            sums += image  # float32 + uint8/float32 -> float32, record by record as Caffe adds
            count += 1
            bar.update(1)
            if count % LOG_EVERY == 0:
                log.info("Processed %d files.", count)
            if not cursor.next():
                break
    if count % LOG_EVERY != 0:
        log.info("Processed %d files.", count)
    mean = sums / np.float32(count)
    blob = caffe_pb2.BlobProto()
    blob.num, (blob.channels, blob.height, blob.width) = 1, shape
    blob.data.extend(mean.ravel().tolist())
    channel_means = _channel_means(mean)
    log.info("Number of channels: %d", shape[0])
    for c, value in enumerate(channel_means):
        log.info("mean_value channel [%d]: %g", c, value)
    return blob, channel_means


def _channel_means(mean: np.ndarray) -> np.ndarray:
    """Per channel: the mean image's values summed in float32 in order (a running sum, as
    Caffe's loop; NumPy's ``sum`` would add pairwise), over H*W."""
    flat = mean.reshape(mean.shape[0], -1)
    sums = np.cumsum(flat, axis=1, dtype=np.float32)[:, -1]
    return sums / np.float32(flat.shape[1])
