"""The SSD fork's layers (Wei Liu's weiliu89/caffe, ``ssd`` branch): Normalize, Permute, PriorBox
(DetectionOutput is in ``ssd_detection.py``).

Read from the fork's sources: ``src/caffe/layers/normalize_layer.cpp`` (commit d9f9dfe),
``permute_layer.cpp`` (f927612), ``prior_box_layer.cpp``.  For PriorBox the ssd branch sizes the aspect-ratio
boxes from ``min_size`` (as OpenCV and every port do); one later commit of the repository
(3b97386) uses ``sqrt(min_size * max_size)`` there, which we do not follow.  Arithmetic is
float32 where the fork's is (``float`` box coordinates), double where it computes in double
before storing a float.
"""
from __future__ import annotations

import math

import numpy as np

from caffe_cae.fillers import fill
from caffe_cae.layers.base import Layer
from caffe_cae.layers.common import legacy_shape, pass_diff_back, share_data_and_diff
from caffe_cae.layers.registry import register
from caffe_cae.proto import caffe_pb2

f32 = np.float32


def _legacy_chw(layer: Layer, shape) -> tuple[int, int, int]:
    """Blob::channels/height/width (missing axes read as 1)."""
    return legacy_shape(layer, shape)[1:]


@register("Normalize")
class NormalizeLayer(Layer):
    """L2 normalisation with a learned scale (SSD's ``conv4_3_norm``).

    ``across_spatial`` (default): each sample divided by ``sqrt(sum(x^2) + eps)`` over all its
    C*H*W values; otherwise each position by ``sqrt(eps + sum_c x^2)`` over the channels.  Then
    multiplied by the scale: one value (``channel_shared``, the default; a 0-axis blob) or one per
    channel (a ``(C,)`` blob), filled by ``scale_filler`` (default constant 1).  Backward as the
    fork: the scale's gradient is ``sum(top * top_diff) / scale``; the bottom's is
    ``scale_c * (dy - x * sum(x * dy) / norm^2) / norm``, the exact gradient when the scales are
    equal -- with per-channel scales that differ it leaves out their mixing across channels,
    as the fork does.
    """

    exact_bottoms = 1
    exact_tops = 1
    elementwise = True  # a rescaling of bottom 0, no new units for the model size

    def setup(self, bottom_shapes):
        shape = tuple(bottom_shapes[0])
        if len(shape) < 2:
            raise self.error(f"Number of axes of bottom blob must be >=2, got {list(shape)}")
        p = self.param.norm_param
        self.across_spatial = p.across_spatial
        self.channel_shared = p.channel_shared
        self.eps = float(p.eps)
        self.channels, _, _ = _legacy_chw(self, shape)
        return [() if self.channel_shared else (self.channels,)]

    def reshape(self, bottom_shapes):
        shape = tuple(bottom_shapes[0])
        if len(shape) < 2:
            raise self.error(f"Number of axes of bottom blob must be >=2, got {list(shape)}")
        channels, _, _ = _legacy_chw(self, shape)
        if not self.channel_shared and channels != self.channels:
            raise self.error(f"Scale size is inconsistent with prototxt config ({self.channels} "
                             f"scales, {channels} channels)")
        return [shape]

    def fill_params(self, rng):
        p = self.param.norm_param
        filler = p.scale_filler if p.HasField("scale_filler") else caffe_pb2.FillerParameter(
            type="constant", value=1.0)
        blob = self.blobs[0]
        blob.data[...] = fill(filler, blob.shape or (1,), rng, blob.dtype,
                              where=f"layer '{self.name}' (Normalize): scale_filler").reshape(blob.shape)

    def _planes(self, a):
        """(N, C, H*W) view of a blob's array."""
        c, h, w = _legacy_chw(self, a.shape)
        return a.reshape(a.shape[0], c, h * w)

    def _scale(self, dtype):
        s = self.blobs[0].data.astype(dtype, copy=False)
        return s.reshape(()) if self.channel_shared else s.reshape(1, -1, 1)

    def forward(self, bottom, top):
        x = self._planes(bottom[0].data)
        y = self._planes(top[0].data)
        dtype = x.dtype
        squares = x * x
        eps = dtype.type(self.eps)
        if self.across_spatial:
            # norm = pow(asum(x^2) + eps, 0.5); top = x * Dtype(1.0 / norm)
            self.norm = np.sqrt(squares.sum(axis=(1, 2), dtype=dtype) + eps)
            inverse = (1.0 / self.norm.astype(np.float64)).astype(dtype)
            np.multiply(x, inverse[:, None, None], out=y)
        else:
            # norm starts at eps and accumulates the channel sum (gemv with beta 1)
            self.norm = np.sqrt(eps + squares.sum(axis=1, dtype=dtype))
            np.divide(x, self.norm[:, None, :], out=y)
        y *= self._scale(dtype)

    def backward(self, top, propagate_down, bottom):
        x = self._planes(bottom[0].data)
        y = self._planes(top[0].data)
        dy = self._planes(top[0].diff)
        dtype = x.dtype
        scale = self._scale(dtype)
        if self.param_needs_gradient(0):
            diff = self.blobs[0].diff
            if self.channel_shared:
                diff += np.sum(y * dy, dtype=dtype) / scale
            else:
                diff += ((y * dy).sum(axis=(0, 2), dtype=dtype) / scale.reshape(-1)).astype(diff.dtype)
        if not propagate_down[0]:
            return
        dx = self._planes(bottom[0].diff)
        norm = self.norm.astype(dtype)
        if self.across_spatial:
            a = (x * dy).sum(axis=(1, 2), dtype=dtype)
            coeff = (a / norm / norm)[:, None, None]
            np.subtract(dy, x * coeff, out=dx)
            dx *= (1.0 / norm.astype(np.float64)).astype(dtype)[:, None, None]
        else:
            dot = (x * dy).sum(axis=1, dtype=dtype)[:, None, :]
            np.subtract(dy, x * dot / (norm * norm)[:, None, :], out=dx)
            dx /= norm[:, None, :]
        dx *= scale


@register("Permute")
class PermuteLayer(Layer):
    """Transpose the axes: ``order`` names the new axes first, the rest follow in their order.
    An order that changes nothing shares the bottom's memory (as the fork does)."""

    exact_bottoms = 1
    exact_tops = 1

    def setup(self, bottom_shapes):
        num_axes = len(bottom_shapes[0])
        order: list[int] = []
        for axis in self.param.permute_param.order:
            if axis >= num_axes:
                raise self.error(f"order should be less than the input dimension: order {axis} for a "
                                 f"{num_axes}-axis bottom")
            if axis in order:
                raise self.error(f"there are duplicate orders ({list(self.param.permute_param.order)})")
            order.append(int(axis))
        order += [axis for axis in range(num_axes) if axis not in order]
        self.order = tuple(order)
        self.inverse = tuple(int(i) for i in np.argsort(order))
        self.need_permute = self.order != tuple(range(num_axes))
        return []

    def shares_memory(self, bottom_index, top_index):
        return not self.need_permute

    def reshape(self, bottom_shapes):
        shape = tuple(bottom_shapes[0])
        if len(shape) != len(self.order):
            raise self.error(f"bottom has {len(shape)} axes, the layer was set up for {len(self.order)}")
        return [tuple(shape[axis] for axis in self.order)]

    def forward(self, bottom, top):
        if not self.need_permute:
            share_data_and_diff(top[0], bottom[0])
            return
        np.copyto(top[0].data, bottom[0].data.transpose(self.order))

    def backward(self, top, propagate_down, bottom):
        if not propagate_down[0]:
            return
        if not self.need_permute:
            pass_diff_back(top[0], bottom[0])
            return
        np.copyto(bottom[0].diff, top[0].diff.transpose(self.inverse))


@register("PriorBox")
class PriorBoxLayer(Layer):
    """SSD's default boxes for one feature map: top (1, 2, H*W*num_priors*4), row 0 the boxes
    ``(xmin, ymin, xmax, ymax)`` relative to the image, row 1 their variances.

    Per cell (h, w), centre ``((w + offset) * step_w, (h + offset) * step_h)`` (step: given, or
    image size / map size in float); per ``min_size`` (truncated to an integer, as the fork
    stores it in an ``int``): the min_size square, then (with ``max_size``) the
    ``sqrt(min_size * max_size)`` square, then one box per aspect ratio other than 1 (ratios
    deduplicated within 1e-6, each followed by its inverse with ``flip``).  ``clip`` clamps to
    [0, 1].  Bottom 1 only gives the image size (unless img_size/img_h/img_w are set).
    """

    exact_bottoms = 2
    exact_tops = 1

    def allow_force_backward(self, bottom_index):
        return False  # the boxes depend on shapes only

    def setup(self, bottom_shapes):
        p = self.param.prior_box_param
        if not p.min_size:
            raise self.error("must provide min_size.")
        self.min_sizes = [float(f32(v)) for v in p.min_size]
        if any(v <= 0 for v in self.min_sizes):
            raise self.error(f"min_size must be positive, got {self.min_sizes}")
        ratios = [f32(1.0)]
        for value in p.aspect_ratio:
            ar = f32(value)
            if any(abs(ar - known) < 1e-6 for known in ratios):
                continue
            ratios.append(ar)
            if p.flip:
                ratios.append(f32(1.0 / float(ar)))
        self.aspect_ratios = ratios
        self.max_sizes = [float(f32(v)) for v in p.max_size]
        if self.max_sizes:
            if len(self.max_sizes) != len(self.min_sizes):
                raise self.error(f"give one max_size per min_size ({len(self.min_sizes)} min_size, "
                                 f"{len(self.max_sizes)} max_size)")
            for low, high in zip(self.min_sizes, self.max_sizes):
                if not high > low:
                    raise self.error(f"max_size must be greater than min_size ({high:g} <= {low:g})")
        self.num_priors = len(ratios) * len(self.min_sizes) + len(self.max_sizes)
        if len(p.variance) > 1:
            if len(p.variance) != 4:
                raise self.error(f"Must and only provide 4 variance (got {len(p.variance)})")
        if any(v <= 0 for v in p.variance):
            raise self.error(f"variance must be positive, got {list(p.variance)}")
        self.variance = [float(f32(v)) for v in p.variance] or [float(f32(0.1))]
        has = p.HasField
        if has("img_h") or has("img_w"):
            if has("img_size"):
                raise self.error("Either img_size or img_h/img_w should be specified; not both.")
            self.img = (int(p.img_h), int(p.img_w))
            if min(self.img) <= 0:
                raise self.error(f"img_h and img_w should be larger than 0, got {list(self.img)}")
        elif has("img_size"):
            if p.img_size <= 0:
                raise self.error("img_size should be larger than 0.")
            self.img = (int(p.img_size),) * 2
        else:
            self.img = (0, 0)
        if has("step_h") or has("step_w"):
            if has("step"):
                raise self.error("Either step or step_h/step_w should be specified; not both.")
            self.step = (float(f32(p.step_h)), float(f32(p.step_w)))
            if min(self.step) <= 0:
                raise self.error(f"step_h and step_w should be larger than 0, got {list(self.step)}")
        elif has("step"):
            if p.step <= 0:
                raise self.error("step should be larger than 0.")
            self.step = (float(f32(p.step)),) * 2
        else:
            self.step = (0.0, 0.0)
        self.offset = f32(p.offset)
        self.clip = p.clip
        return []

    def reshape(self, bottom_shapes):
        _, height, width = _legacy_chw(self, bottom_shapes[0])
        count = height * width * self.num_priors * 4
        if count <= 0:
            raise self.error(f"no priors for a {height}x{width} feature map")
        self.map_size = (height, width)
        _, img_h, img_w = _legacy_chw(self, bottom_shapes[1])
        self.image_size = (img_h, img_w) if 0 in self.img else self.img
        return [(1, 2, count)]

    def box_sizes(self) -> np.ndarray:
        """(num_priors, 2) box (width, height) in pixels, in the fork's order (float32)."""
        sizes = []
        for s, min_size in enumerate(self.min_sizes):
            low = int(min_size)  # int min_size_ = min_sizes_[s]
            sizes.append((low, low))
            if self.max_sizes:
                side = math.sqrt(low * int(self.max_sizes[s]))
                sizes.append((side, side))
            for ar in self.aspect_ratios:
                if abs(float(ar) - 1.0) < 1e-6:
                    continue
                root = math.sqrt(float(ar))
                sizes.append((low * root, low / root))
        return np.array(sizes, dtype=np.float32)

    def priors(self) -> np.ndarray:
        """The top's values, (2, H*W*num_priors*4) float32."""
        height, width = self.map_size
        img_h, img_w = self.image_size
        if 0.0 in self.step:
            step_w, step_h = f32(f32(img_w) / f32(width)), f32(f32(img_h) / f32(height))
        else:
            step_h, step_w = f32(self.step[0]), f32(self.step[1])
        cx = (np.arange(width, dtype=np.float32) + self.offset) * step_w   # float arithmetic
        cy = (np.arange(height, dtype=np.float32) + self.offset) * step_h
        sizes = self.box_sizes().astype(np.float64)
        half_w, half_h = sizes[:, 0] / 2.0, sizes[:, 1] / 2.0
        cx = cx.astype(np.float64)[None, :, None]
        cy = cy.astype(np.float64)[:, None, None]
        boxes = np.empty((height, width, len(sizes), 4), dtype=np.float32)
        boxes[..., 0] = (cx - half_w) / img_w          # (center - size / 2.) / img, in double
        boxes[..., 1] = (cy - half_h) / img_h
        boxes[..., 2] = (cx + half_w) / img_w
        boxes[..., 3] = (cy + half_h) / img_h
        boxes = boxes.reshape(-1)
        if self.clip:
            np.clip(boxes, 0.0, 1.0, out=boxes)
        variances = np.resize(np.array(self.variance, dtype=np.float32), boxes.size)
        return np.stack([boxes, variances])

    def forward(self, bottom, top):
        top[0].data[...] = self.priors().reshape(top[0].data.shape).astype(top[0].data.dtype)

    def backward(self, top, propagate_down, bottom):
        pass  # the fork has no backward (NOT_IMPLEMENTED if asked: no bottom accepts a gradient)
