"""Pooling windows shared by Pooling and Noh's Unpooling (which inverts them): Caffe's kernel,
stride and pad fields, and the grid of (clipped) windows over a plane, as strided views."""
from __future__ import annotations

import numpy as np

from caffe_cae.im2col import Workspace
from caffe_cae.layers.base import Layer


def kernel_stride_pad(layer: Layer, pp, *, global_pooling: bool = False):
    """(kernel, stride, pad) as (h, w) pairs from a Pooling/UnpoolingParameter, Caffe's checks.

    ``kernel`` is None for global pooling (taken from the bottom at reshape time).
    """
    has = pp.HasField
    if global_pooling:
        if has("kernel_size") or has("kernel_h") or has("kernel_w"):
            raise layer.error("with global_pooling: true, the filter size cannot be specified")
        kernel = None
    else:
        if has("kernel_size") == (has("kernel_h") and has("kernel_w")):
            raise layer.error("filter size is kernel_size OR kernel_h and kernel_w; not both"
                              if has("kernel_size") else
                              "filter size is required: kernel_size, or both kernel_h and "
                              "kernel_w")
        kernel = ((pp.kernel_size,) * 2 if has("kernel_size") else (pp.kernel_h, pp.kernel_w))
        if min(kernel) <= 0:
            raise layer.error(f"filter dimensions cannot be zero, got kernel {list(kernel)}")
    if not ((not has("pad") and has("pad_h") and has("pad_w"))
            or (not has("pad_h") and not has("pad_w"))):
        raise layer.error("pad is pad OR pad_h and pad_w are required")
    if not ((not has("stride") and has("stride_h") and has("stride_w"))
            or (not has("stride_h") and not has("stride_w"))):
        raise layer.error("stride is stride OR stride_h and stride_w are required")
    pad = (pp.pad_h, pp.pad_w) if has("pad_h") else (pp.pad,) * 2
    stride = (pp.stride_h, pp.stride_w) if has("stride_h") else (pp.stride,) * 2
    if min(stride) <= 0:
        raise layer.error(f"stride must be positive, got {list(stride)}")
    return kernel, tuple(int(s) for s in stride), tuple(int(p) for p in pad)


class WindowGrid:
    """The pooling windows of one geometry: ``image`` (H, W) <-> ``pooled`` (PH, PW).

    ``source`` gives an array whose strided views ``view(src, i, j)`` (kernel offset i, j) are
    the (N, C, PH, PW) values at that offset of every window; cells outside the image are
    ``fill``.  Also used by Unpooling, whose unpooled map is the "image".
    """

    def __init__(self, image, pooled, kernel, stride, pad):
        self.image, self.pooled = tuple(image), tuple(pooled)
        self.kernel, self.stride, self.pad = tuple(kernel), tuple(stride), tuple(pad)
        self.extent = tuple((p - 1) * s + k for p, s, k in zip(pooled, stride, kernel))
        # Views can read the image itself when no window leaves it.
        self.in_image = not any(pad) and all(e <= i for e, i in zip(self.extent, image))
        # Every image cell in at most one window / in exactly one window.
        self.disjoint = all(k <= s for k, s in zip(kernel, stride))
        self.tiles_image = (self.in_image and tuple(kernel) == tuple(stride)
                            and self.extent == tuple(image))
        self.offsets = [(i, j) for i in range(kernel[0]) for j in range(kernel[1])]
        starts = [np.arange(p) * s - pd for p, s, pd in zip(pooled, stride, pad)]
        # AVE divisor: window end clipped to image + pad first (padded cells count).
        ends = [np.minimum(st + k, i + pd) for st, k, i, pd in zip(starts, kernel, image, pad)]
        self.pool_size = np.outer(ends[0] - starts[0], ends[1] - starts[1])
        lo = [np.maximum(st, 0) for st in starts]
        hi = [np.minimum(e, i) for e, i in zip(ends, image)]
        self.empty = np.logical_or.outer(hi[0] <= lo[0], hi[1] <= lo[1])  # no image cell
        # Mask bookkeeping: flat in-plane index of each window's offset (0, 0).
        self.base = np.add.outer(starts[0] * image[1], starts[1])
        self.offset_index = np.array([i * image[1] + j for i, j in self.offsets])

    def source(self, x: np.ndarray, fill: float, ws: Workspace, name: str) -> np.ndarray:
        if self.in_image:
            return x
        src = ws.get(name, x.shape[:2] + self.extent, x.dtype)
        src.fill(fill)
        self._interior(src)[...] = x[(slice(None), slice(None))
                                     + tuple(slice(0, n) for n in self._copied())]
        return src

    def scatter_buffer(self, like: np.ndarray, ws: Workspace, name: str,
                       zero: bool = True) -> np.ndarray:
        """An array to write into through ``view`` (zeroed unless ``zero`` is False and the
        windows tile the image exactly); see :meth:`gather_back`."""
        if self.in_image:
            if zero or not self.tiles_image:
                like.fill(0)
            return like
        buf = ws.get(name, like.shape[:2] + self.extent, like.dtype)
        buf.fill(0)
        return buf

    def gather_back(self, buf: np.ndarray, out: np.ndarray) -> None:
        """Assign the image part of a scatter buffer to ``out`` (zero where no window reaches)."""
        if buf is out:
            return
        out.fill(0)
        out[(slice(None), slice(None)) + tuple(slice(0, n) for n in self._copied())] = \
            self._interior(buf)

    def view(self, src: np.ndarray, i: int, j: int) -> np.ndarray:
        (ph, pw), (sh, sw) = self.pooled, self.stride
        return src[:, :, i:i + sh * (ph - 1) + 1:sh, j:j + sw * (pw - 1) + 1:sw]

    def _copied(self):
        """How many image rows/cols the source holds (windows may not reach the image end)."""
        return tuple(min(i, e - p) for i, e, p in zip(self.image, self.extent, self.pad))

    def _interior(self, src):
        return src[(slice(None), slice(None))
                   + tuple(slice(p, p + n) for p, n in zip(self.pad, self._copied()))]


def sum_windows(src, grid: WindowGrid, out: np.ndarray) -> None:
    """out = sum over each window (row-major order, as Caffe adds)."""
    offsets = grid.offsets
    np.copyto(out, grid.view(src, *offsets[0]))
    for i, j in offsets[1:]:
        out += grid.view(src, i, j)


def spread_windows(values, grid: WindowGrid, buf: np.ndarray) -> None:
    """buf[window cells] += values (N, C, PH, PW), for every kernel offset."""
    for i, j in grid.offsets:
        grid.view(buf, i, j)[...] += values
