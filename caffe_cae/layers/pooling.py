"""Pooling (MAX with optional mask top, AVE, global), with Caffe's exact window rules.

Output size (per spatial axis, computed in float as Caffe does)::

    pooled = ceil((in + 2*pad - kernel) / stride) + 1        (round_mode CEIL, the default)
    pooled = floor((in + 2*pad - kernel) / stride) + 1       (round_mode FLOOR, or the forks'
                                                              ceil_mode: false, e.g. DenseNet)
    if any pad > 0 and (pooled - 1) * stride >= in + pad: pooled -= 1   (last window must
                                         start inside image + pad; checked on both axes)

Window of output (ph, pw): rows ``[ph*stride - pad, ph*stride - pad + kernel)`` clipped to the
image.  MAX: the *first* maximum in row-major scan order wins (Caffe compares with strict
``>``).  AVE: the divisor counts padded cells -- the window end is clipped to ``in + pad``
before ``pool_size`` is computed, then to the image.

**Mask convention** (the index that bites): with two tops, top[1] holds for each output the
argmax as a *float* ``h * W + w`` -- a flat index inside that sample's own (n, c) input plane,
not a global index (ONNX MaxPool's indices are int64 over N*C*H*W instead).  Noh's Unpooling
reads this mask.  Caffe ignores the mask top's diff.

Vectorisation: windows are visited as ``kernel_h * kernel_w`` strided views of the (padded)
input, each a whole-batch array operation (MAX: the batch split over
:mod:`caffe_cae.parallel`'s threads).
"""
from __future__ import annotations

import math

import numpy as np

from caffe_cae.im2col import Workspace
from caffe_cae.layers.base import Layer
from caffe_cae.layers.registry import register
from caffe_cae.parallel import split
from caffe_cae.proto import caffe_pb2

P = caffe_pb2.PoolingParameter
FLT_MAX = float(np.finfo(np.float32).max)


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


@register("Pooling")
class PoolingLayer(Layer):
    """Caffe's Pooling layer (CPU semantics).  STOCHASTIC pooling is refused."""

    feature_tops = 1  # the output; the mask holds no units

    exact_bottoms = 1
    min_tops = 1

    def __init__(self, param, phase=caffe_pb2.TEST):
        super().__init__(param, phase)
        is_max = param.pooling_param.pool == P.MAX
        self.max_tops = 2 if is_max else 1  # MAX may output the mask
        self.gradient_check = "kink" if is_max else "smooth"
        self._n_tops = max(1, len(param.top))  # the Net confirms it in check_blob_counts

    def setup(self, bottom_shapes):
        pp = self.param.pooling_param
        if pp.pool == P.STOCHASTIC:
            raise self.error("pool: STOCHASTIC is not supported (only MAX and AVE)")
        self.method = pp.pool
        self.global_pooling = pp.global_pooling
        self.kernel, self.stride, self.pad = kernel_stride_pad(
            self, pp, global_pooling=self.global_pooling)
        if self.global_pooling and (any(self.pad) or any(s != 1 for s in self.stride)):
            raise self.error("with global_pooling: true, only pad = 0 and stride = 1")
        if any(self.pad) and self.kernel is not None and (
                self.pad[0] >= self.kernel[0] or self.pad[1] >= self.kernel[1]):
            raise self.error(f"pad {list(self.pad)} must be smaller than kernel "
                             f"{list(self.kernel)}")
        self.round_mode = pp.round_mode
        if pp.HasField("ceil_mode"):  # DenseNet's Caffe (BVLC PR 3057): the bool before round_mode
            from_ceil_mode = P.CEIL if pp.ceil_mode else P.FLOOR
            if pp.HasField("round_mode") and pp.round_mode != from_ceil_mode:
                raise self.error(f"ceil_mode: {str(pp.ceil_mode).lower()} contradicts round_mode: "
                                 f"{P.RoundMode.Name(pp.round_mode)}; give one of them")
            self.round_mode = from_ceil_mode
        self._ws = Workspace()
        self._reshaped_for = None
        return []

    def reshape(self, bottom_shapes):
        shape = tuple(bottom_shapes[0])
        if shape == self._reshaped_for:  # Caffe reshapes before every forward
            return [self._top_shape] * self._n_tops
        if len(shape) != 4:
            raise self.error(f"input must have 4 axes (num, channels, height, width), got "
                             f"{list(shape)}")
        image = shape[2:]
        kernel = image if self.global_pooling else self.kernel
        rnd = math.floor if self.round_mode == P.FLOOR else math.ceil
        pooled = []
        for i, k, p, s in zip(image, kernel, self.pad, self.stride):
            # Caffe: static_cast<int>(ceil(static_cast<float>(in + 2p - k) / s)) + 1
            n = int(rnd(float(np.float32(i + 2 * p - k) / np.float32(s)))) + 1
            # Caffe clips the last window of *every* axis as soon as any pad is non-zero.
            if any(self.pad) and (n - 1) * s >= i + p:
                n -= 1
            if n <= 0:
                raise self.error(f"pooled size {n} is not positive for input {list(shape)} "
                                 f"(kernel {list(kernel)}, stride {list(self.stride)}, pad "
                                 f"{list(self.pad)})")
            pooled.append(n)
        self.kernel = tuple(kernel)  # global pooling: the bottom's H, W (as Caffe's kernel_h_)
        self.grid = WindowGrid(image, pooled, kernel, self.stride, self.pad)
        self._argmax = None
        top = shape[:2] + tuple(pooled)
        self._reshaped_for, self._top_shape = shape, top
        return [top] * self._n_tops

    def check_blob_counts(self, n_bottom, n_top):
        super().check_blob_counts(n_bottom, n_top)
        self._n_tops = n_top


    # -- forward ----------------------------------------------------------------------------
    def forward(self, bottom, top):
        x = bottom[0].data
        if self.method == P.AVE:
            src = self.grid.source(x, 0.0, self._ws, "src")
            y = top[0].data
            sum_windows(src, self.grid, y)
            y /= self.grid.pool_size.astype(y.dtype)
            return
        idx = self._max_forward(x, top[0].data)
        if len(top) > 1:  # float per-plane argmax index h*W + w (-1 for an empty window)
            mask = top[1].data
            np.take(self.grid.offset_index.astype(mask.dtype), idx, out=mask)
            mask += self.grid.base.astype(mask.dtype)
            if self.grid.empty.any():
                mask[:, :, self.grid.empty] = -1

    def _max_forward(self, x, y):
        """y = window maxima; returns the winning kernel-offset number per output."""
        grid = self.grid
        src = grid.source(x, -np.inf, self._ws, "src")
        n_off = len(grid.offsets)
        idx_type = np.int8 if n_off <= 127 else np.int32
        idx = self._ws.get("argmax", y.shape, idx_type)
        better = self._ws.get("better", y.shape, np.bool_)
        step = self._ws.get("step", y.shape, idx_type)

        def images(lo, hi):  # images lo..hi-1 (the split shares them out to the threads)
            y_, idx_, better_, step_ = y[lo:hi], idx[lo:hi], better[lo:hi], step[lo:hi]
            np.copyto(y_, grid.view(src, *grid.offsets[0])[lo:hi])
            idx_.fill(0)
            for k, (i, j) in enumerate(grid.offsets[1:], start=1):
                v = grid.view(src, i, j)[lo:hi]
                np.greater(v, y_, out=better_)  # strict: the first maximum in scan order stays
                np.maximum(y_, v, out=y_)
                # idx = where(better, k, idx) with cheap integer ops
                np.subtract(idx_type(k), idx_, out=step_)
                np.multiply(step_, better_, out=step_, casting="unsafe")
                idx_ += step_

        split(images, y.shape[0], y.size * n_off)
        if grid.empty.any():  # Caffe leaves -FLT_MAX in a window without image cells
            y[:, :, grid.empty] = -FLT_MAX
        self._argmax = idx
        return idx

    # -- backward ---------------------------------------------------------------------------
    def backward(self, top, propagate_down, bottom):
        if not propagate_down[0]:
            return
        grid = self.grid
        dx = bottom[0].diff
        dy = top[0].diff
        stray = None  # MAX diffs of windows without image cells
        if self.method == P.AVE or not grid.disjoint:
            buf = grid.scatter_buffer(dx, self._ws, "dsrc")
        if self.method == P.AVE:
            scaled = self._ws.get("scaled", dy.shape, dy.dtype)
            np.divide(dy, grid.pool_size.astype(dy.dtype), out=scaled)
            spread_windows(scaled, grid, buf)
        else:
            idx = self._argmax
            if idx is None:
                raise self.error("backward before forward")
            hit = self._ws.get("hit", dy.shape, np.bool_)
            if grid.empty.any():  # argmax -1: handled after the regular scatter
                stray = dy[:, :, grid.empty]
                dy = np.where(grid.empty, 0, dy).astype(dy.dtype)
            if grid.disjoint:  # each cell has one window: write, no accumulation
                buf = grid.scatter_buffer(dx, self._ws, "dsrc", zero=False)

                def images(lo, hi, dy=dy):
                    hit_, dy_, idx_ = hit[lo:hi], dy[lo:hi], idx[lo:hi]
                    for k, (i, j) in enumerate(grid.offsets):
                        np.equal(idx_, k, out=hit_)
                        np.multiply(dy_, hit_, out=grid.view(buf, i, j)[lo:hi])

                split(images, dy.shape[0], dy.size * len(grid.offsets))
            else:
                part = self._ws.get("part", dy.shape, dy.dtype)
                for k, (i, j) in enumerate(grid.offsets):
                    np.equal(idx, k, out=hit)
                    np.multiply(dy, hit, out=part)
                    grid.view(buf, i, j)[...] += part
        grid.gather_back(buf, dx)
        if stray is not None:
            # A window without image cells keeps argmax -1 and Caffe's backward does
            # bottom_diff[-1] += top_diff with bottom_diff pointing at the current (n, c) plane:
            # the diff lands in the last cell of the previous plane (the very first plane's
            # goes outside the blob and is lost), added after that plane's own windows.
            planes = dx.reshape(-1, dx.shape[2] * dx.shape[3])
            stray = stray.reshape(planes.shape[0], -1)
            for k in range(stray.shape[1]):
                planes[:-1, -1] += stray[1:, k]
