"""The Data layer: ``Datum`` records from an LMDB or LevelDB database, transformed."""
from __future__ import annotations

import logging

import numpy as np

from caffe_cae.data.datum import DatumError, datum_image, parse_datum
from caffe_cae.data.db import backend_name, open_cursor
from caffe_cae.data.transformer import DataTransformer, params_shape, without_mean_file
from caffe_cae.errors import CaffeCaeError
from caffe_cae.layers.common import PrefetchingDataLayer
from caffe_cae.layers.registry import register

log = logging.getLogger(__name__)


@register("Data")
class DataLayer(PrefetchingDataLayer):
    """Caffe's DataLayer: ``batch_size`` records per forward in key order, wrapping to the first
    record at the end ("Restarting data prefetching from start."); raw uint8, float or encoded
    (PNG, JPEG, ... decoded to BGR) Datums through the DataTransformer.  Each batch takes the
    size of its first record.  Tops: data [, label].

    ``rand_skip`` N skips a random number of records in [0, N) before the first batch, as
    Caffe's ImageData layer (and its Data layer before 2017) does; BVLC master's Data layer
    ignores the field.  Bad records are one-line errors naming the record and its key.
    """

    min_tops = 1
    max_tops = 2
    deprecated_fields = ("scale", "mean_file", "crop_size", "mirror")

    def setup(self, bottom_shapes):
        p = self.param.data_param
        self.batch_size = int(p.batch_size)
        if self.batch_size <= 0:
            raise self.error("data_param.batch_size must be positive")
        self.cursor = self._open()  # Caffe opens the database before it reads the mean file
        self.transformer = DataTransformer(self.param.transform_param, self.phase, self.error, self.random)
        self._warned_force = False
        first, _ = self._record(self.cursor)
        self.shape = self.transformer.output_shape(first.shape, self.cursor.where())
        log.info("output data size: %d,%s", self.batch_size, ",".join(map(str, self.shape)))
        if p.force_encoded_color:
            log.warning("layer '%s' (Data): data_param.force_encoded_color is ignored (Caffe decodes with "
                        "transform_param.force_color)", self.name)
        self._skip_pending = p.rand_skip > 0
        self.start_prefetching("data_param")
        return []

    def reshape(self, bottom_shapes):
        return [(self.batch_size, *self.shape), (self.batch_size,)][:len(self.param.top)]

    # -- reading ---------------------------------------------------------------------------------
    def _open(self):
        p = self.param.data_param
        try:
            return open_cursor(p.source, backend_name(p.backend))
        except CaffeCaeError as err:
            raise self.error(str(err)) from None

    def _record(self, cursor) -> tuple[np.ndarray, int]:
        """The image (C x H x W) and label of the cursor's record."""
        where = cursor.where()
        try:
            datum = parse_datum(cursor.value, where)
            color = None
            if datum.encoded:
                color = self.transformer.color()
            elif self.transformer.param.force_color or self.transformer.param.force_gray:
                if not self._warned_force:  # Caffe logs this for every record
                    log.error("force_color and force_gray only for encoded datum")
                    self._warned_force = True
            return datum_image(datum, where, color), datum.label
        except DatumError as err:
            raise self.error(str(err)) from None

    def _next(self) -> None:
        try:
            moved = self.cursor.next()
            if not moved:
                log.info("Restarting data prefetching from start.")
                self.cursor.seek_first()
        except CaffeCaeError as err:
            raise self.error(str(err)) from None

    def _rand_skip(self) -> None:
        self._skip_pending = False
        skip = int(self.random().integers(self.param.data_param.rand_skip))
        log.info("Skipping first %d data points.", skip)
        for _ in range(skip):
            self._next()

    def load_batch(self):
        if self._skip_pending:
            self._rand_skip()
        data = None
        labels = np.empty(self.batch_size, dtype=np.float32)
        for item in range(self.batch_size):
            image, label = self._record(self.cursor)
            where = self.cursor.where()
            if data is None:  # the batch takes the size of its first record
                data = np.empty((self.batch_size, *self.transformer.output_shape(image.shape, where)), np.float32)
            self.transformer.transform(image, data[item], where)
            labels[item] = label
            self._next()
        return data, labels

    # -- shapes without loading ------------------------------------------------------------------
    def source_top_shapes(self):
        # This layer object is not set up: it gets what _record needs, a transformer without
        # the mean file (shapes do not need it, and it may be elsewhere) and no log lines.
        p = self.param.data_param
        self._warned_force = True
        self.transformer = DataTransformer(without_mean_file(self.param.transform_param), self.phase, self.error,
                                           self.random)
        cursor = self._open()
        image, _ = self._record(cursor)
        shape = self.transformer.output_shape(image.shape, cursor.where())
        return [(int(p.batch_size), *shape), (int(p.batch_size),)][:len(self.param.top)]

    def param_top_shapes(self):
        batch = int(self.param.data_param.batch_size)
        shape = params_shape(self.param.transform_param)
        return [(batch, *shape) if shape else None, (batch,)][:len(self.param.top)]

