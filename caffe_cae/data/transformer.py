"""Caffe's ``DataTransformer``: crop, mean subtraction, scaling and mirroring of one image.

For a C x H x W image (uint8 or float32) and ``transform_param``:

1. ``crop_size`` k: a k x k window; at offsets (H - k) / 2, (W - k) / 2 (integer division) in
   the TEST phase, at random offsets in the TRAIN phase;
2. minus ``mean_file`` (a BlobProto of the *uncropped* image size, taken at the crop position)
   or ``mean_value`` (one value for every channel, or one per channel);
3. times ``scale``;
4. ``mirror``: flipped left-right with probability 1/2 -- in the TEST phase too (only the crop
   position depends on the phase).

Each step is rounded to float32 as Caffe's ``(pixel - mean) * scale`` is.  Random draws come
in Caffe's order (mirror, then the crop's row and column offsets) from the layer's generator;
their values differ from Caffe's, whose generator is not NumPy's.
"""
from __future__ import annotations

import logging
from typing import Callable

import numpy as np

from caffe_cae.errors import CaffeCaeError
from caffe_cae.proto import caffe_pb2

log = logging.getLogger(__name__)

Shape = tuple[int, int, int]


def read_mean_file(path: str) -> np.ndarray:
    """A mean BlobProto (``compute_image_mean``'s output) as the C x H x W array Caffe uses: the
    first item of the blob, with Caffe's legacy 4-D reading of its shape."""
    from caffe_cae.weights import blob_shape, blob_to_array, read_binary

    blob = read_binary(path, caffe_pb2.BlobProto, "BlobProto (mean file)")
    try:
        values = blob_to_array(blob).ravel()
    except CaffeCaeError as err:
        raise CaffeCaeError(f"{path}: {err}") from None
    shape = blob_shape(blob)
    legacy = [shape[i] if i < len(shape) else 1 for i in range(4)]  # Blob::LegacyShape
    if len(shape) > 4:
        raise CaffeCaeError(f"{path}: a mean blob of {len(shape)} axes; expected num x channels x height x width")
    c, h, w = legacy[1:]
    return values[:c * h * w].reshape(c, h, w)


def params_shape(param: caffe_pb2.TransformationParameter, channels: int | None = None,
                 size: tuple[int, int] | None = None) -> Shape | None:
    """The transformed C x H x W as far as ``transform_param`` fixes it without the data, or
    None.  Channels: ``channels`` if given, else the mean file's (when it can be read), the
    number of ``mean_value``s (when more than one), 3 for force_color, 1 for force_gray.  Size:
    ``crop_size``, else ``size``, else the mean file's (Caffe requires the data to match it)."""
    mean = None
    if param.HasField("mean_file"):
        try:
            mean = read_mean_file(param.mean_file)
        except CaffeCaeError:
            mean = None
    if channels is None:
        if mean is not None:
            channels = mean.shape[0]
        elif len(param.mean_value) > 1:
            channels = len(param.mean_value)
        elif param.force_color != param.force_gray:
            channels = 3 if param.force_color else 1
    if param.crop_size:
        size = (param.crop_size, param.crop_size)
    elif size is None and mean is not None:
        size = mean.shape[1:]
    if channels is None or size is None:
        return None
    return (int(channels), int(size[0]), int(size[1]))


def without_mean_file(param: caffe_pb2.TransformationParameter) -> caffe_pb2.TransformationParameter:
    """The transformation without its mean file: shapes do not need it (it may not be here)."""
    copy = caffe_pb2.TransformationParameter()
    copy.CopyFrom(param)
    copy.ClearField("mean_file")
    return copy


class DataTransformer:
    """One layer's transformation.  ``error(message)`` makes the layer's one-line errors,
    ``random()`` returns the layer's generator (asked only when a draw is needed)."""

    def __init__(self, param: caffe_pb2.TransformationParameter, phase: int,
                 error: Callable[[str], CaffeCaeError], random: Callable[[], np.random.Generator]):
        self.param = param
        self.phase = phase
        self.error = error
        self.scale = np.float32(param.scale)
        self.crop = int(param.crop_size)
        self.mirror = bool(param.mirror)
        self.mean: np.ndarray | None = None
        self.mean_values = np.asarray(param.mean_value, dtype=np.float32)
        self.random = random
        if param.HasField("mean_file"):
            if len(param.mean_value):
                raise error("Cannot specify mean_file and mean_value at the same time")
            log.info("Loading mean file from: %s", param.mean_file)
            try:
                self.mean = read_mean_file(param.mean_file)
            except CaffeCaeError as err:
                raise error(f"transform_param.mean_file: {err}") from None

    def color(self) -> bool | None:
        """How encoded images decode: force_color, force_gray or as stored."""
        if self.param.force_color and self.param.force_gray:
            raise self.error("cannot set both force_color and force_gray")
        if self.param.force_color:
            return True
        if self.param.force_gray:
            return False
        return None

    def output_shape(self, image_shape: tuple[int, ...], where: str) -> Shape:
        """``InferBlobShape``: the transformed shape of a C x H x W image."""
        channels, height, width = image_shape
        if channels <= 0:
            raise self.error(f"{where}: image has {channels} channels")
        if self.crop and (height < self.crop or width < self.crop):
            raise self.error(f"{where}: image of {height} x {width} is smaller than crop_size {self.crop}")
        return (channels, self.crop or height, self.crop or width)

    def _check(self, image: np.ndarray, out_shape: tuple[int, ...], where: str) -> None:
        channels, height, width = image.shape
        want = self.output_shape(image.shape, where)
        if want != tuple(out_shape):
            raise self.error(f"{where}: image of {channels} x {height} x {width} does not fit the batch of "
                             f"{' x '.join(map(str, out_shape))} items (a batch takes the size of its first "
                             f"image; use crop_size or resize the images to one size)")
        if self.mean is not None and self.mean.shape != image.shape:
            raise self.error(f"{where}: image of {channels} x {height} x {width} but mean_file "
                             f"'{self.param.mean_file}' is {' x '.join(map(str, self.mean.shape))} "
                             f"(the mean must have the image's uncropped size)")
        if len(self.mean_values) not in (0, 1, channels):
            raise self.error(f"Specify either 1 mean_value or as many as channels: {channels} "
                             f"({len(self.mean_values)} given)")

    def _random(self, high: int) -> int:
        return int(self.random().integers(high))

    def transform(self, image: np.ndarray, out: np.ndarray, where: str) -> bool:
        """Write the transformed ``image`` (C x H x W) into ``out`` (float32, C x h x w); returns
        whether it was mirrored.  ``where`` names the record or file in errors."""
        self._check(image, out.shape, where)
        _, height, width = image.shape
        do_mirror = self.mirror and self._random(2) == 1
        top = left = 0
        if self.crop:
            if self.phase == caffe_pb2.TRAIN:
                top = self._random(height - self.crop + 1)
                left = self._random(width - self.crop + 1)
            else:
                top, left = (height - self.crop) // 2, (width - self.crop) // 2
        rows, cols = slice(top, top + out.shape[1]), slice(left, left + out.shape[2])
        target = out[:, :, ::-1] if do_mirror else out
        pixels = image[:, rows, cols]
        if self.mean is not None:
            np.subtract(pixels, self.mean[:, rows, cols], out=target, dtype=np.float32)
        elif len(self.mean_values):
            np.subtract(pixels, self.mean_values.reshape(-1, 1, 1), out=target, dtype=np.float32)
        else:
            target[...] = pixels
        if self.scale != 1:
            np.multiply(target, self.scale, out=target)
        return do_mirror
