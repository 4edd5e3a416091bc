"""Layers that copy values to new places without arithmetic (their backward adds the copies
back): Crop, Tile, Im2col."""
from __future__ import annotations

import math

from caffe_cae.im2col import ConvGeometry, Workspace, col2im, im2col
from caffe_cae.layers.base import Layer
from caffe_cae.layers.common import canonical_axis, conv_spatial_params
from caffe_cae.layers.registry import register


@register("Crop")
class CropLayer(Layer):
    """Crops bottom 0 to the shape of bottom 1 on every axis from ``axis`` (default 2) on, at
    ``offset`` (none: 0; one value: the same for every cropped axis; else one per cropped
    axis).  Bottom 1 only gives the shape: it gets no diff (Caffe leaves it untouched)."""

    exact_bottoms = 2
    exact_tops = 1

    def _first_cropped_axis(self, bottom_shapes) -> int:
        """Caffe checks the axis counts in LayerSetUp and again in Reshape."""
        data, like = tuple(bottom_shapes[0]), tuple(bottom_shapes[1])
        if len(data) != len(like):
            raise self.error(f"Input blobs must have the same number of axes: {list(data)} and "
                             f"{list(like)}")
        return canonical_axis(self, self.param.crop_param.axis, len(data))

    def setup(self, bottom_shapes):
        data = tuple(bottom_shapes[0])
        p = self.param.crop_param
        start = self._first_cropped_axis(bottom_shapes)
        if len(p.offset) > 1 and start + len(p.offset) != len(data):
            raise self.error(f"number of offset values specified must be equal to the number "
                             f"of dimensions following axis ({len(p.offset)} offsets from axis "
                             f"{start} of a {len(data)}-D blob)")
        return []

    def reshape(self, bottom_shapes):
        data, like = tuple(bottom_shapes[0]), tuple(bottom_shapes[1])
        p = self.param.crop_param
        start = self._first_cropped_axis(bottom_shapes)
        offsets = [0] * len(data)
        shape = list(data)
        for i in range(start, len(data)):
            offsets[i] = int(p.offset[0] if len(p.offset) == 1 else
                             p.offset[i - start] if p.offset else 0)
            if data[i] - offsets[i] < like[i]:
                raise self.error(f"the crop for dimension {i} is out-of-bounds with size "
                                 f"{like[i]} and offset {offsets[i]} (bottom {list(data)})")
            shape[i] = like[i]
        self.window = tuple(slice(o, o + n) for o, n in zip(offsets, shape))
        return [tuple(shape)]

    def forward(self, bottom, top):
        top[0].data[...] = bottom[0].data[self.window]

    def backward(self, top, propagate_down, bottom):
        if propagate_down[0]:
            dx = bottom[0].diff
            dx[...] = 0
            dx[self.window] = top[0].diff


@register("Tile")
class TileLayer(Layer):
    """Repeats the whole block of axes ``axis``.. ``tiles`` times along ``axis`` (numpy
    ``tile``, not ``repeat``): (N, C, H, W) with axis 1 -> (N, tiles*C, H, W)."""

    exact_bottoms = 1
    exact_tops = 1

    def reshape(self, bottom_shapes):
        shape = tuple(bottom_shapes[0])
        p = self.param.tile_param
        axis = canonical_axis(self, p.axis, len(shape))
        if not p.HasField("tiles"):
            raise self.error("Number of tiles must be specified")
        if p.tiles <= 0:
            raise self.error(f"Number of tiles must be positive, got {p.tiles}")
        self.tiles = int(p.tiles)
        self.outer, self.inner = math.prod(shape[:axis]), math.prod(shape[axis:])
        return [shape[:axis] + (shape[axis] * self.tiles,) + shape[axis + 1:]]

    def forward(self, bottom, top):
        y = top[0].data.reshape(self.outer, self.tiles, self.inner)
        y[...] = bottom[0].data.reshape(self.outer, 1, self.inner)

    def backward(self, top, propagate_down, bottom):
        if not propagate_down[0]:
            return
        dy = top[0].diff.reshape(self.outer, self.tiles, self.inner)
        dx = bottom[0].diff.reshape(self.outer, self.inner)
        dx[...] = dy[:, 0]
        for t in range(1, self.tiles):  # Caffe's caffe_axpy per tile, in order
            dx += dy[:, t]


@register("Im2col")
class Im2colLayer(Layer):
    """The columns a Convolution with these ``convolution_param`` geometry fields would
    multiply: (N, C, *in) -> (N, C * prod(kernel), *out), channel index c * prod(kernel) +
    kernel offset (row-major), then the output positions; the backward is col2im (overlapping
    windows add up).  ``axis`` picks the channel axis (the axes before it are items)."""

    exact_bottoms = 1
    exact_tops = 1

    def setup(self, bottom_shapes):
        shape = tuple(bottom_shapes[0])
        cp = self.param.convolution_param
        self.channel_axis = canonical_axis(self, cp.axis, len(shape))
        self.num_axes = len(shape)
        n_spatial = len(shape) - self.channel_axis - 1
        if n_spatial < 1:
            raise self.error(f"needs at least one spatial axis after the channel axis "
                             f"{self.channel_axis} (bottom {list(shape)})")
        self.kernel, self.stride, self.pad, self.dilation = conv_spatial_params(
            self, cp, n_spatial)
        self._ws = Workspace()
        return []

    def reshape(self, bottom_shapes):
        shape = tuple(bottom_shapes[0])
        if len(shape) != self.num_axes:
            raise self.error(f"bottom num_axes may not change (was {self.num_axes}, now "
                             f"{len(shape)}: {list(shape)})")
        axis = self.channel_axis
        # Caffe's column layout: one (C * prod(kernel), prod(out)) matrix per item
        geometry = ConvGeometry(shape[axis + 1:], self.kernel, self.pad, self.stride,
                                self.dilation)
        geometry.batch_inner = False
        if any(o <= 0 for o in geometry.out):
            raise self.error(f"output size {list(geometry.out)} is not positive for input "
                             f"{list(shape)} (kernel {list(self.kernel)}, pad {list(self.pad)}, "
                             f"stride {list(self.stride)}, dilation {list(self.dilation)})")
        self.geometry = geometry
        self.num, self.channels = math.prod(shape[:axis]), shape[axis]
        return [shape[:axis] + (shape[axis] * geometry.kernel_size,) + geometry.out]

    def _images(self, array):
        return array.reshape((self.num, self.channels) + self.geometry.image)

    def forward(self, bottom, top):
        cols = im2col(self._images(bottom[0].data), self.geometry, self._ws)
        top[0].data[...] = cols.reshape(top[0].shape)

    def backward(self, top, propagate_down, bottom):
        if propagate_down[0]:
            col2im(top[0].diff, self.geometry, self._images(bottom[0].diff), self._ws)
