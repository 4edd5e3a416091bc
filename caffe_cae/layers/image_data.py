"""The ImageData layer: image files named in a list file, with their labels, transformed."""
from __future__ import annotations

import logging

import numpy as np

from caffe_cae.data.images import ImageError, read_image
from caffe_cae.data.lists import read_image_list
from caffe_cae.data.resize import resize_linear
from caffe_cae.data.transformer import DataTransformer, params_shape, without_mean_file
from caffe_cae.errors import CaffeCaeError
from caffe_cae.layers.common import PrefetchingDataLayer
from caffe_cae.layers.registry import register

log = logging.getLogger(__name__)

#: ImageDataParameter fields of a Caffe fork (segmentation labels), not of BVLC's ImageData
FORK_FIELDS = ("has_label", "max_labels", "ignore_label", "label_type", "other_object_label")


@register("ImageData")
class ImageDataLayer(PrefetchingDataLayer):
    """Caffe's ImageDataLayer: ``source`` lists ``<file> <label>`` per line (split at the last
    space); files are ``root_folder + file`` (plain concatenation, as Caffe), read as
    ``cv::imread`` does (``is_color``: BGR, else gray) and resized to ``new_height`` x
    ``new_width`` with OpenCV's bilinear resize when both are set.  ``batch_size`` images per
    forward, wrapping at the end of the list (reshuffled then with ``shuffle``); ``rand_skip`` N
    starts at a random line in [0, N).  The shuffles and the skip are drawn at the first
    forward, from the net's seeded generator.  Each batch takes the size of its first image."""

    exact_tops = 2
    deprecated_fields = ("scale", "mean_file", "crop_size", "mirror")

    def setup(self, bottom_shapes):
        p = self.param.image_data_param
        for name in FORK_FIELDS:
            if p.HasField(name):
                raise self.error(f"image_data_param.{name} is a field of a Caffe fork, not of BVLC's ImageData")
        if (p.new_height > 0) != (p.new_width > 0):
            raise self.error("Current implementation requires new_height and new_width to be set at the same time.")
        self.batch_size = int(p.batch_size)
        if self.batch_size <= 0:
            raise self.error("Positive batch size required")
        self.transformer = DataTransformer(self.param.transform_param, self.phase, self.error, self.random)
        self.lines = self._read_list()
        log.info("A total of %d images.", len(self.lines))
        self.position = 0
        first = self._read(0)
        self.shape = self.transformer.output_shape(first.shape, self._where(0))
        log.info("output data size: %d,%s", self.batch_size, ",".join(map(str, self.shape)))
        self._start_pending = bool(p.shuffle or p.rand_skip)
        self.start_prefetching("image_data_param")
        return []

    def reshape(self, bottom_shapes):
        return [(self.batch_size, *self.shape), (self.batch_size,)]

    # -- reading ---------------------------------------------------------------------------------
    def _read_list(self) -> list[tuple[str, int]]:
        source = self.param.image_data_param.source
        log.info("Opening file %s", source)
        try:
            lines = read_image_list(source, "image list")
        except CaffeCaeError as err:
            raise self.error(str(err)) from None
        if not lines:
            raise self.error(f"image list '{source}' names no images")
        return lines

    def _where(self, index: int) -> str:
        p = self.param.image_data_param
        return f"'{p.root_folder + self.lines[index][0]}' (line {index + 1} of '{p.source}')"

    def _read(self, index: int) -> np.ndarray:
        """The image of list entry ``index`` as C x H x W uint8 (resized when asked)."""
        p = self.param.image_data_param
        try:
            image = read_image(p.root_folder + self.lines[index][0], bool(p.is_color))
        except ImageError as err:
            raise self.error(f"Could not load {self._where(index)}: {err}") from None
        if p.new_height > 0:
            image = resize_linear(image, int(p.new_height), int(p.new_width))
        return image.transpose(2, 0, 1)

    def _shuffle(self) -> None:
        order = self.random().permutation(len(self.lines))
        self.lines = [self.lines[i] for i in order]

    def _start(self) -> None:
        p = self.param.image_data_param
        self._start_pending = False
        if p.shuffle:
            log.info("Shuffling data")
            self._shuffle()
        if p.rand_skip:
            skip = int(self.random().integers(p.rand_skip))
            log.info("Skipping first %d data points.", skip)
            if skip >= len(self.lines):
                raise self.error(f"Not enough points to skip: {skip} of {len(self.lines)} images")
            self.position = skip

    def load_batch(self):
        if self._start_pending:
            self._start()
        data = None
        labels = np.empty(self.batch_size, dtype=np.float32)
        for item in range(self.batch_size):
            image = self._read(self.position)
            where = self._where(self.position)
            if data is None:  # the batch takes the size of its first image
                data = np.empty((self.batch_size, *self.transformer.output_shape(image.shape, where)), np.float32)
            self.transformer.transform(image, data[item], where)
            labels[item] = self.lines[self.position][1]
            self.position += 1
            if self.position >= len(self.lines):  # the end: restart from the first
                self.position = 0
                if self.param.image_data_param.shuffle:
                    self._shuffle()
        return data, labels

    # -- shapes without loading ------------------------------------------------------------------
    def source_top_shapes(self):
        # This layer object is not set up: it gets the list and a transformer without the mean file.
        p = self.param.image_data_param
        self.transformer = DataTransformer(without_mean_file(self.param.transform_param), self.phase, self.error,
                                           self.random)
        self.lines = self._read_list()
        image = self._read(0)
        shape = self.transformer.output_shape(image.shape, self._where(0))
        return [(int(p.batch_size), *shape), (int(p.batch_size),)]

    def param_top_shapes(self):
        p = self.param.image_data_param
        size = (int(p.new_height), int(p.new_width)) if p.new_height > 0 and p.new_width > 0 else None
        shape = params_shape(self.param.transform_param, channels=3 if p.is_color else 1, size=size)
        return [(int(p.batch_size), *shape) if shape else None, (int(p.batch_size),)]

