"""SegNet's ``DenseImageData``: images and their per-pixel label images from a list file
(alexgkendall/caffe-segnet ``src/caffe/layers/dense_image_data_layer.cpp`` 6731fbb,
``src/caffe/data_transformer.cpp`` 03d1e9f).

``dense_image_data_param.source`` lists one ``image label`` pair of file names per line
(``root_folder`` prefixed).  Images are read as the fork's ``cv::imread`` reads them (BGR, or gray
with ``is_color: false``; :mod:`caffe_cae.data.images`), labels as gray images; with
``new_height``/``new_width`` both are resized as OpenCV resizes them (images bilinear, labels
nearest; :mod:`caffe_cae.data.resize`).  Tops: data (batch, C, H, W) =
``(pixel - mean) * scale`` (``transform_param``: ``mean_file`` or ``mean_value``, ``scale``) and
label (batch, 1, H, W) = the label pixels unchanged.  The list is read in order (``shuffle``:
reshuffled at every pass, ``rand_skip``: a random start), wrapping around.  With
``batch_size: 1`` and no resizing, each image keeps its own size (the tops are reshaped).
As the fork, ``mirror`` and ``crop_size`` are refused (they would transform image and label
differently).
"""
from __future__ import annotations

import numpy as np

from caffe_cae.data.images import ImageError, read_image
from caffe_cae.data.resize import resize_linear, resize_nearest
from caffe_cae.layers.base import Layer
from caffe_cae.layers.common import RandomLayerMixin
from caffe_cae.layers.registry import register
from caffe_cae.proto import caffe_pb2


@register("DenseImageData")
class DenseImageDataLayer(RandomLayerMixin, Layer):
    """SegNet's image + label-image data layer (see the module docstring)."""

    is_data = True
    exact_bottoms = 0
    exact_tops = 2

    def setup(self, bottom_shapes):
        p = self.param.dense_image_data_param
        t = self.param.transform_param
        if (p.new_height == 0) != (p.new_width == 0):
            raise self.error("Current implementation requires new_height and new_width to be set at "
                             "the same time.")
        if t.mirror or t.crop_size:
            raise self.error("FIXME: Any stochastic transformation will break layer due to the need to "
                             "transform input and label images in the same way (mirror, crop_size)")
        if t.HasField("mean_file") and t.mean_value:
            raise self.error("Cannot specify mean_file and mean_value at the same time")
        self.lines = self._read_list(p.source)
        if not self.lines:
            raise self.error(f"{p.source}: the list names no image")
        self.position = 0
        self.shuffled = False
        image, label = self._read(0)
        self.item_shape = image.shape
        self.mean = self._mean(image.shape)
        self.batch = int(p.batch_size)
        if self.batch <= 0:
            raise self.error("batch_size must be positive")
        return []

    def _read_list(self, source: str) -> list[tuple[str, str]]:
        try:
            with open(source, encoding="utf-8") as f:
                words = f.read().split()
        except OSError as err:
            raise self.error(f"{source}: cannot read the list of images ({err.strerror})") from None
        return list(zip(words[0::2], words[1::2]))

    def _read(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """(image (C, H, W) uint8, label (H, W) uint8) of list entry ``index``."""
        p = self.param.dense_image_data_param
        image_file, label_file = (p.root_folder + name for name in self.lines[index])
        where = f"listed in '{p.source}'"
        image = self._read_image(image_file, bool(p.is_color), f"image ({where})")
        label = self._read_image(label_file, False, f"label image ({where})")[:, :, 0]
        if p.new_height > 0:
            image = resize_linear(image, int(p.new_height), int(p.new_width))
            label = resize_nearest(label, int(p.new_height), int(p.new_width))
        if label.shape != image.shape[:2]:
            raise self.error(f"Input and label image heights and widths must match ({image_file} "
                             f"{list(image.shape[:2])}, {label_file} {list(label.shape)})")
        return image.transpose(2, 0, 1), label

    def _read_image(self, path: str, color: bool, what: str) -> np.ndarray:
        try:
            return read_image(path, color)
        except ImageError as err:
            raise self.error(f"Could not load the {what}: {err}") from None

    def _mean(self, shape) -> np.ndarray | float:
        t = self.param.transform_param
        if t.HasField("mean_file"):
            try:
                with open(t.mean_file, "rb") as f:
                    blob = caffe_pb2.BlobProto.FromString(f.read())
            except (OSError, ValueError) as err:
                raise self.error(f"{t.mean_file}: cannot read the mean blob ({err})") from None
            mean = np.asarray(blob.data, dtype=np.float32)
            if mean.size != int(np.prod(shape)):
                raise self.error(f"{t.mean_file}: mean of {mean.size} values for images of shape "
                                 f"{list(shape)}")
            return mean.reshape(shape)
        if t.mean_value:
            values = list(t.mean_value)
            if len(values) not in (1, shape[0]):
                raise self.error(f"Specify either 1 mean_value or as many as channels: {shape[0]}")
            return np.array(values * (shape[0] if len(values) == 1 else 1),
                            dtype=np.float32).reshape(-1, 1, 1)
        return 0.0

    def _varying(self) -> bool:
        p = self.param.dense_image_data_param
        return self.batch == 1 and p.new_height == 0

    def reshape(self, bottom_shapes):
        c, h, w = self.item_shape
        return [(self.batch, c, h, w), (self.batch, 1, h, w)]

    def _advance(self) -> None:
        p = self.param.dense_image_data_param
        self.position += 1
        if self.position >= len(self.lines):
            self.position = 0
            if p.shuffle:
                self._shuffle()

    def _shuffle(self) -> None:
        order = self.random().permutation(len(self.lines))
        self.lines = [self.lines[i] for i in order]

    def forward(self, bottom, top):
        p = self.param.dense_image_data_param
        if not self.shuffled:  # the fork shuffles and skips once, at setup
            self.shuffled = True
            if p.shuffle:
                self._shuffle()
            if p.rand_skip:
                self.position = int(self.random().integers(p.rand_skip))
                if self.position >= len(self.lines):
                    raise self.error("Not enough points to skip")
        scale = np.float32(self.param.transform_param.scale)
        for item in range(self.batch):
            image, label = self._read(self.position)
            if self._varying():
                top[0].reshape((1,) + image.shape)
                top[1].reshape((1, 1) + image.shape[1:])
            elif image.shape != top[0].data.shape[1:]:
                raise self.error(f"image {self.lines[self.position][0]} is {list(image.shape)}, the "
                                 f"batch is {list(top[0].data.shape[1:])} (set new_height/new_width)")
            top[0].data[item] = (image.astype(np.float32) - self.mean) * scale
            top[1].data[item, 0] = label
            self._advance()

    def backward(self, top, propagate_down, bottom):
        pass
