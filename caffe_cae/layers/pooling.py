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
input, each a whole-batch array operation.  MAX has a fast path (the batch split over
:mod:`caffe_cae.parallel`'s threads, int8 offsets, a scatter without accumulation where the
windows are disjoint) and, under the reference engine, Caffe's argmax loop and
``bottom_diff[mask] += top_diff`` (``forward_reference``/``backward_reference``).
"""
from __future__ import annotations

import math

import numpy as np

from caffe_cae import engine
from caffe_cae.im2col import Workspace
from caffe_cae.layers.base import Layer
from caffe_cae.layers.registry import register
from caffe_cae.layers.windows import WindowGrid, kernel_stride_pad, spread_windows, sum_windows
from caffe_cae.parallel import split
from caffe_cae.proto import caffe_pb2

P = caffe_pb2.PoolingParameter
FLT_MAX = float(np.finfo(np.float32).max)


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


    # -- reference engine: Caffe's loops over the windows -------------------------------
    def forward_reference(self, bottom, top):
        x, y, grid = bottom[0].data, top[0].data, self.grid
        if self.method == P.AVE:  # the sum of each window (padded cells 0) / pool_size
            sum_windows(grid.source(x, 0.0, self._ws, "src"), grid, y)
            y /= grid.pool_size.astype(y.dtype)
            return
        src = grid.source(x, -np.inf, self._ws, "src")  # padded cells never win
        views = [grid.view(src, i, j) for i, j in grid.offsets]
        y[...] = views[0]
        idx = np.zeros(y.shape, np.int64)  # the winning kernel offset
        for k, v in enumerate(views[1:], start=1):
            better = v > y  # strict: the first maximum in scan order stays
            y[better], idx[better] = v[better], k
        y[:, :, grid.empty] = -FLT_MAX  # a window without image cells
        self._argmax = idx
        self._write_mask(idx, top)

    def backward_reference(self, top, propagate_down, bottom):
        if not propagate_down[0]:
            return
        grid, dx, dy = self.grid, bottom[0].diff, top[0].diff
        if self.method == P.AVE:  # each window's cells += top_diff / pool_size
            buf = grid.scatter_buffer(dx, self._ws, "dsrc")
            spread_windows(dy / grid.pool_size.astype(dy.dtype), grid, buf)
            grid.gather_back(buf, dx)
            return
        if self._argmax is None:
            raise self.error("backward before forward")
        # bottom_diff[plane + mask] += top_diff in Caffe's (n, c, ph, pw) order; an empty
        # window's mask -1 reaches the previous plane's last cell (the first plane's is lost).
        plane = dx.shape[2] * dx.shape[3]
        local = np.where(grid.empty, -1, grid.base + grid.offset_index[self._argmax])
        planes = np.arange(dx.shape[0] * dx.shape[1]).reshape(dx.shape[:2] + (1, 1))
        index = local + plane * planes
        keep = index >= 0
        dx.fill(0)
        np.add.at(dx.reshape(-1), index[keep], dy[keep])

    def _write_mask(self, idx, top):
        """The mask top: float per-plane argmax index h*W + w (-1 for an empty window)."""
        if len(top) > 1:
            mask = top[1].data
            np.take(self.grid.offset_index.astype(mask.dtype), idx, out=mask)
            mask += self.grid.base.astype(mask.dtype)
            if self.grid.empty.any():
                mask[:, :, self.grid.empty] = -1

    # -- forward ----------------------------------------------------------------------------
    def forward(self, bottom, top):
        if engine.reference() or self.method == P.AVE:
            return self.forward_reference(bottom, top)
        idx = self._max_forward(bottom[0].data, top[0].data)
        self._write_mask(idx, top)

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
        if engine.reference():
            return self.backward_reference(top, propagate_down, bottom)
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
