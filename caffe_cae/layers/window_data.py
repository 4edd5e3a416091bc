"""The WindowData layer (R-CNN): windows of images, warped to ``crop_size``, sampled at random."""
from __future__ import annotations

import collections
import logging
import math

import numpy as np

from caffe_cae.data.images import ImageError, decode_image, read_image
from caffe_cae.data.lists import read_window_file
from caffe_cae.data.resize import resize_linear
from caffe_cae.data.transformer import read_mean_file
from caffe_cae.errors import CaffeCaeError
from caffe_cae.layers.common import PrefetchingDataLayer
from caffe_cae.layers.registry import register

log = logging.getLogger(__name__)

F32 = np.float32


def c_round(value) -> int:
    """C's ``round`` (halves away from zero) of a float."""
    value = float(value)
    return int(math.floor(abs(value) + 0.5)) * (1 if value >= 0 else -1)


@register("WindowData")
class WindowDataLayer(PrefetchingDataLayer):
    """Caffe's WindowDataLayer.  ``source`` is an R-CNN window file; windows with overlap >=
    ``fg_threshold`` are foreground (their class, which must be > 0), those < ``bg_threshold``
    background (label 0).  Each batch draws ``int(batch_size * fg_fraction)`` foreground and the
    rest background windows at random (background first), each optionally mirrored
    (``transform_param.mirror``).  A window (corners inclusive), enlarged by ``context_pad``
    pixels of warped context or made square (``crop_mode: "square"``), is cut from the image
    (``cv::imread`` colour, BGR), warped to ``crop_size`` x ``crop_size`` with OpenCV's bilinear
    resize, and written minus the mean (``transform_param.mean_file`` at the window position, or
    ``mean_value``) times ``window_data_param.scale`` (Caffe reads the scale there, not from
    transform_param); context outside the image stays 0.  Windows are drawn from the layer's
    generator, so which windows come differs from Caffe's."""

    exact_tops = 2
    deprecated_fields = ("mean_file", "crop_size", "mirror")

    def setup(self, bottom_shapes):
        p = self.param.window_data_param
        t = self.param.transform_param
        log.info("Window data layer:\n  foreground (object) overlap threshold: %g\n  background (non-object) overlap "
                 "threshold: %g\n  foreground sampling fraction: %g\n  cache_images: %d\n  root_folder: %s",
                 p.fg_threshold, p.bg_threshold, p.fg_fraction, p.cache_images, p.root_folder)
        if p.crop_mode not in ("warp", "square"):
            raise self.error(f"window_data_param.crop_mode '{p.crop_mode}': expected \"warp\" or \"square\"")
        self.batch_size = int(p.batch_size)
        if self.batch_size <= 0:
            raise self.error("window_data_param.batch_size must be positive")
        self.crop = int(t.crop_size)
        if self.crop <= 0:
            raise self.error("WindowData needs transform_param.crop_size > 0 (the size windows are warped to)")
        if p.context_pad * 2 >= self.crop and p.context_pad:
            raise self.error(f"context_pad {p.context_pad} leaves no room in crop_size {self.crop}")
        self.images, self.foreground, self.background, self.channels = self._read_windows()
        self.cache = None
        if p.cache_images:
            self.cache = [self._file_bytes(image.path) for image in self.images]
        self.mean = self.mean_values = None
        if t.HasField("mean_file"):
            if len(t.mean_value):
                raise self.error("Cannot specify mean_file and mean_value at the same time")
            log.info("Loading mean file from: %s", t.mean_file)
            try:
                self.mean = read_mean_file(t.mean_file)
            except CaffeCaeError as err:
                raise self.error(f"transform_param.mean_file: {err}") from None
            offset = (self.mean.shape[2] - self.crop) // 2  # Caffe centres on the width, for both axes
            if self.mean.shape[2] < self.crop or self.mean.shape[1] < offset + self.crop:
                raise self.error(f"mean_file '{t.mean_file}' of {'x'.join(map(str, self.mean.shape))} has no centred "
                                 f"{self.crop} x {self.crop} window (Caffe offsets both axes by (width - crop) / 2)")
        elif len(t.mean_value):
            if len(t.mean_value) not in (1, self.channels):
                raise self.error(f"Specify either 1 mean_value or as many as channels: {self.channels}")
            self.mean_values = np.broadcast_to(np.asarray(t.mean_value, F32), (self.channels,)).copy()
        log.info("output data size: %d,%d,%d,%d", self.batch_size, self.channels, self.crop, self.crop)
        self.start_prefetching("window_data_param")
        return []

    def reshape(self, bottom_shapes):
        return [(self.batch_size, self.channels, self.crop, self.crop), (self.batch_size,)]

    # -- the window file -------------------------------------------------------------------------
    def _read_windows(self):
        p = self.param.window_data_param
        try:
            images, windows = read_window_file(p.source, p.root_folder)
        except CaffeCaeError as err:
            raise self.error(str(err)) from None
        fg_threshold, bg_threshold = F32(p.fg_threshold), F32(p.bg_threshold)
        foreground, background = [], []
        histogram = collections.Counter({0: 0})
        for window in windows:
            if F32(window.overlap) >= fg_threshold:
                if window.label <= 0:
                    raise self.error(f"window file '{p.source}': foreground window of image {window.image} has "
                                     f"label {window.label}; foreground labels must be > 0")
                foreground.append(window)
                histogram[window.label] += 1
            elif F32(window.overlap) < bg_threshold:
                window.label, window.overlap = 0, 0.0  # background: label and overlap forced to 0
                background.append(window)
                histogram[0] += 1
        for window in foreground + background:
            if not 0 <= window.image < len(images):
                raise self.error(f"window file '{p.source}': a window names image {window.image}, the file has "
                                 f"{len(images)} images")
        for index, image in enumerate(images):
            if index % 100 == 0:
                log.info("num: %d %s %d %d %d", index, image.path, image.channels, image.height, image.width)
        log.info("Number of images: %d", len(images))
        for label in sorted(histogram):
            log.info("class %d has %d samples", label, histogram[label])
        log.info("Amount of context padding: %d", p.context_pad)
        log.info("Crop mode: %s", p.crop_mode)
        return images, foreground, background, images[-1].channels

    def _file_bytes(self, path: str) -> bytes:
        try:
            with open(path, "rb") as handle:
                return handle.read()
        except OSError as err:
            raise self.error(f"Could not open or find file {path} ({err.strerror})") from None

    def _image(self, index: int) -> np.ndarray:
        path = self.images[index].path
        try:
            image = decode_image(self.cache[index], True) if self.cache else read_image(path, True)
        except ImageError as err:
            raise self.error(f"Could not load image {index} of window file "
                             f"'{self.param.window_data_param.source}': {err}") from None
        if image.shape[2] != self.channels:
            raise self.error(f"image '{path}' decodes to {image.shape[2]} channels; the window file says "
                             f"{self.channels}")
        return image

    # -- one batch -------------------------------------------------------------------------------
    def load_batch(self):
        p = self.param.window_data_param
        num_fg = int(F32(self.batch_size) * F32(p.fg_fraction))
        counts = (self.batch_size - num_fg, num_fg)
        for pool, count, what in ((self.background, counts[0], "background"),
                                  (self.foreground, counts[1], "foreground")):
            if count and not pool:
                raise self.error(f"a batch needs {count} {what} windows; window file '{p.source}' has none "
                                 f"(fg_threshold {p.fg_threshold:g}, bg_threshold {p.bg_threshold:g})")
        data = np.zeros((self.batch_size, self.channels, self.crop, self.crop), F32)
        labels = np.empty(self.batch_size, F32)
        item = 0
        for pool, count in zip((self.background, self.foreground), counts):
            for _ in range(count):
                window = pool[int(self.random().integers(len(pool)))]
                mirror = bool(self.param.transform_param.mirror) and int(self.random().integers(2)) == 1
                self._warp(window, mirror, data[item])
                labels[item] = window.label
                item += 1
        return data, labels

    def _warp(self, window, mirror: bool, out: np.ndarray) -> None:
        p = self.param.window_data_param
        image = self._image(window.image)
        rows, cols = image.shape[:2]
        crop, pad = self.crop, int(p.context_pad)
        x1, y1, x2, y2 = window.x1, window.y1, window.x2, window.y2
        out_h = out_w = crop
        pad_h = pad_w = 0
        if pad > 0 or p.crop_mode == "square":
            # enlarge the window so that, warped to crop_size, it has `pad` pixels of context
            context_scale = F32(crop) / F32(crop - 2 * pad)
            half_height = F32((y2 - y1 + 1) / 2.0)
            half_width = F32((x2 - x1 + 1) / 2.0)
            center_x = F32(x1) + half_width
            center_y = F32(y1) + half_height
            if p.crop_mode == "square":
                half_height = half_width = max(half_height, half_width)
            x1 = c_round(center_x - half_width * context_scale)
            x2 = c_round(center_x + half_width * context_scale)
            y1 = c_round(center_y - half_height * context_scale)
            y2 = c_round(center_y + half_height * context_scale)
            # clip to the image, remembering how much of the enlarged window lies outside
            unclipped_height, unclipped_width = y2 - y1 + 1, x2 - x1 + 1
            pad_x1, pad_y1 = max(0, -x1), max(0, -y1)
            pad_x2, pad_y2 = max(0, x2 - cols + 1), max(0, y2 - rows + 1)
            x1, x2, y1, y2 = x1 + pad_x1, x2 - pad_x2, y1 + pad_y1, y2 - pad_y2
            scale_x = F32(crop) / F32(unclipped_width)
            scale_y = F32(crop) / F32(unclipped_height)
            out_w = c_round(F32(x2 - x1 + 1) * scale_x)
            out_h = c_round(F32(y2 - y1 + 1) * scale_y)
            pad_x1, pad_x2 = c_round(F32(pad_x1) * scale_x), c_round(F32(pad_x2) * scale_x)
            pad_y1 = c_round(F32(pad_y1) * scale_y)
            pad_h = pad_y1
            pad_w = pad_x2 if mirror else pad_x1  # the padding is mirrored too
            out_h = min(out_h, crop - pad_h)
            out_w = min(out_w, crop - pad_w)
        if not (0 <= x1 <= x2 < cols and 0 <= y1 <= y2 < rows) or out_h <= 0 or out_w <= 0:
            raise self.error(f"window ({window.x1}, {window.y1}, {window.x2}, {window.y2}) of image "
                             f"'{self.images[window.image].path}' lies outside its {cols} x {rows} pixels")
        patch = resize_linear(image[y1:y2 + 1, x1:x2 + 1], out_h, out_w)
        if mirror:
            patch = patch[:, ::-1]
        values = patch.transpose(2, 0, 1)
        target = out[:, pad_h:pad_h + out_h, pad_w:pad_w + out_w]
        if self.mean is not None:
            offset = (self.mean.shape[2] - crop) // 2  # Caffe uses the width's offset for both axes
            mean = self.mean[:, offset + pad_h:offset + pad_h + out_h, offset + pad_w:offset + pad_w + out_w]
            np.subtract(values, mean, out=target, dtype=F32)
        elif self.mean_values is not None:
            np.subtract(values, self.mean_values.reshape(-1, 1, 1), out=target, dtype=F32)
        else:
            target[...] = values
        np.multiply(target, F32(p.scale), out=target)

    # -- shapes without loading ------------------------------------------------------------------
    def source_top_shapes(self):
        p = self.param.window_data_param
        try:
            images, _ = read_window_file(p.source, p.root_folder)
        except CaffeCaeError as err:
            raise self.error(str(err)) from None
        crop = int(self.param.transform_param.crop_size)
        return [(int(p.batch_size), images[-1].channels, crop, crop), (int(p.batch_size),)]

    def param_top_shapes(self):
        p = self.param.window_data_param
        crop = int(self.param.transform_param.crop_size)
        # the images are read in colour: 3 channels unless the window file says otherwise
        return [(int(p.batch_size), 3, crop, crop) if crop else None, (int(p.batch_size),)]
