"""Unpooling as in Hyeonwoo Noh's Caffe fork (DeconvNet, 2015) -- the layer of the CAE papers.

``type: "Unpooling"`` (V1: ``UNPOOLING``) with ``unpooling_param``; output (N, C, unpool_h,
unpool_w) where ``unpool_size`` or both ``unpool_h``/``unpool_w`` are required and pad must be 0
(the fork's checks).

* ``unpool: MAX`` with a second bottom = the mask top of a MAX Pooling layer ("with switches"):
  each value goes back to the position its maximum came from.  The mask holds, as a float, the
  flat index ``h * unpool_w + w`` inside the sample's own (n, c) plane (Caffe's Pooling mask
  convention; it addresses the unpooled map, so unpool size must equal the pooling input size).
  Where two inputs name one position the later one in (ph, pw) order wins, as on the fork's CPU.
* ``unpool: MAX`` without the mask ("without switches", the papers' Model 4): the value goes
  to the *top-left* cell of its window, ``(clamp(ph*stride_h - pad_h, 0, unpool_h-1),
  clamp(pw*stride_w - pad_w, 0, unpool_w-1))``; every other cell is 0.
  Backward (both forms): bottom_diff = top_diff at that same position; the mask gets no
  gradient.
* ``unpool: AVE``: each value spread over its window divided by the window size (window end
  clipped to the map; the fork's CPU version forgets to zero the top first and accumulates over
  calls -- not reproduced, the GPU version's result is computed).  Backward = window mean.
* ``unpool: TILE``: each value copied to every cell of its window.  Backward reproduces the
  fork's quirk: the window *mean* of top_diff (true gradient / window size).

The fast path is the top-left placement on a regular grid (Model 4), split over the images on
:mod:`caffe_cae.parallel`'s threads; everything else, and everything under the reference
engine, runs ``forward_reference``/``backward_reference``.
"""
from __future__ import annotations

import numpy as np

from caffe_cae import engine
from caffe_cae.im2col import Workspace
from caffe_cae.layers.base import Layer
from caffe_cae.layers.windows import WindowGrid, kernel_stride_pad, spread_windows, sum_windows
from caffe_cae.layers.registry import register
from caffe_cae.parallel import copyto, split
from caffe_cae.proto import caffe_pb2

U = caffe_pb2.UnpoolingParameter


def _last_writer_positions(n_in: int, stride: int, pad: int, n_out: int):
    """Clamped top-left target of every input row/col, and the (source, target) pairs that
    survive when several inputs clamp onto one target (the last input wins)."""
    target = np.clip(np.arange(n_in) * stride - pad, 0, n_out - 1)
    keep = np.append(target[1:] != target[:-1], True)
    return target, np.flatnonzero(keep), target[keep]


@register("Unpooling")
class UnpoolingLayer(Layer):
    """Noh's UnpoolingLayer (CPU semantics, see the module docstring)."""

    feature_tops = -1

    min_bottoms = 1
    exact_tops = 1
    #: Top-left placement without clamping: the stride of the grid that holds the only
    #: non-zero top cells (see ``DeconvolutionLayer.bottom_spread``); None otherwise.
    top_left_spread: tuple[int, int] | None = None

    def __init__(self, param, phase=caffe_pb2.TEST):
        super().__init__(param, phase)
        self.method = param.unpooling_param.unpool
        self.max_bottoms = 2 if self.method == U.MAX else 1
        self.gradient_check = "kink" if self.method == U.MAX else "smooth"

    def sparse_top_stride(self):
        return self.top_left_spread

    def allow_force_backward(self, bottom_index):
        return bottom_index == 0  # the mask is an index, not a value

    def setup(self, bottom_shapes):
        up = self.param.unpooling_param
        self.kernel, self.stride, self.pad = kernel_stride_pad(self, up)
        if any(self.pad):
            raise self.error(f"currently, only zero padding is allowed (pad {list(self.pad)})")
        has = up.HasField
        if has("unpool_size") and not has("unpool_h") and not has("unpool_w"):
            self.unpooled = (int(up.unpool_size),) * 2
        elif has("unpool_h") and has("unpool_w") and not has("unpool_size"):
            self.unpooled = (int(up.unpool_h), int(up.unpool_w))
        else:
            raise self.error("the output size is unpool_size OR unpool_h and unpool_w "
                             "(required)")
        if min(self.unpooled) <= 0:
            raise self.error(f"unpooled size must be positive, got {list(self.unpooled)}")
        self._ws = Workspace()
        return []

    def reshape(self, bottom_shapes):
        shape = tuple(bottom_shapes[0])
        if len(shape) != 4:
            raise self.error(f"input must have 4 axes (num, channels, height, width), got "
                             f"{list(shape)}")
        if len(bottom_shapes) > 1 and tuple(bottom_shapes[1]) != shape:
            raise self.error(f"mask bottom '{self.bottom_name(1)}' has shape "
                             f"{list(bottom_shapes[1])}, expected {list(shape)} like "
                             f"'{self.bottom_name(0)}'")
        self.in_size = shape[2:]
        uh, uw = self.unpooled
        if self.method == U.MAX:
            self._rows = _last_writer_positions(shape[2], self.stride[0], self.pad[0], uh)
            self._cols = _last_writer_positions(shape[3], self.stride[1], self.pad[1], uw)
            # Plain strided placement when no input is clamped onto the map border.
            self._regular = ((shape[2] - 1) * self.stride[0] <= uh - 1
                             and (shape[3] - 1) * self.stride[1] <= uw - 1)
            # Declared for the Net: after forward, every top cell off the stride grid is 0.
            self.top_left_spread = tuple(self.stride) if self._regular and len(bottom_shapes) == 1 else None
        else:
            self.grid = WindowGrid(self.unpooled, self.in_size, self.kernel, self.stride,
                                   self.pad)
            if self.grid.empty.any():
                raise self.error(f"unpooled size {list(self.unpooled)} is too small for input "
                                 f"{list(shape)}: some windows lie outside it")
        return [shape[:2] + self.unpooled]


    # -- MAX helpers ------------------------------------------------------------------------
    def _top_left_view(self, a):
        sh, sw = self.stride
        h, w = self.in_size
        return a[:, :, 0:(h - 1) * sh + 1:sh, 0:(w - 1) * sw + 1:sw]

    def _switch_index(self, mask: np.ndarray, n_c: int) -> np.ndarray:
        """Global flat top index of every input from the float per-plane mask."""
        plane = self.unpooled[0] * self.unpooled[1]
        idx = self._ws.get("index", mask.shape, np.int64)
        np.copyto(idx, mask, casting="unsafe")  # truncation toward zero, like static_cast<int>
        lo, hi = idx.min(), idx.max()
        if lo < 0 or hi >= plane:
            raise self.error(f"mask bottom '{self.bottom_name(1)}' holds index "
                             f"{lo if lo < 0 else hi} outside the {self.unpooled[0]}x"
                             f"{self.unpooled[1]} unpooled plane (unpool size must equal the "
                             f"pooling input size)")
        idx.reshape(n_c, -1)[...] += (np.arange(n_c, dtype=np.int64) * plane)[:, None]
        return idx.reshape(-1)

    # -- forward / backward -----------------------------------------------------------------
    def _fast_top_left(self, bottom) -> bool:
        """The papers' Model 4: top-left placement on a regular grid (no switches)."""
        return (self.method == U.MAX and self._regular and len(bottom) == 1
                and not engine.reference())

    def forward(self, bottom, top):
        if not self._fast_top_left(bottom):
            return self.forward_reference(bottom, top)
        x, y = bottom[0].data, top[0].data

        def images(lo, hi):
            y[lo:hi].fill(0)
            self._top_left_view(y)[lo:hi] = x[lo:hi]

        split(images, y.shape[0], y.size)

    def backward(self, top, propagate_down, bottom):
        if not self._fast_top_left(bottom):
            return self.backward_reference(top, propagate_down, bottom)
        if propagate_down[0]:
            copyto(bottom[0].diff, self._top_left_view(top[0].diff))

    def forward_reference(self, bottom, top):
        x, y = bottom[0].data, top[0].data
        if self.method == U.MAX:
            y.fill(0)
            if len(bottom) > 1:  # with switches: top[mask] = bottom (the last writer wins)
                idx = self._switch_index(bottom[1].data, x.shape[0] * x.shape[1])
                y.reshape(-1)[idx] = x.reshape(-1)
            else:  # each window's (clamped) top-left cell
                (_, rsrc, rdst), (_, csrc, cdst) = self._rows, self._cols
                y[:, :, rdst[:, None], cdst] = x[:, :, rsrc[:, None], csrc]
            return
        buf = self.grid.scatter_buffer(y, self._ws, "top")
        if self.method == U.AVE:
            spread_windows(x / self.grid.pool_size.astype(x.dtype), self.grid, buf)
        else:  # TILE
            spread_windows(x, self.grid, buf)
        self.grid.gather_back(buf, y)

    def backward_reference(self, top, propagate_down, bottom):
        if not propagate_down[0]:
            return
        dy, dx = top[0].diff, bottom[0].diff
        if self.method == U.MAX:  # bottom_diff = top_diff where the value went
            if len(bottom) > 1:
                idx = self._switch_index(bottom[1].data, dx.shape[0] * dx.shape[1])
                np.take(dy.reshape(-1), idx, out=dx.reshape(-1))
            else:
                rows, cols = self._rows[0], self._cols[0]
                dx[...] = dy[:, :, rows[:, None], cols]
            return
        # AVE and TILE (the fork's quirk): window sum of top_diff / window size
        src = self.grid.source(dy, 0.0, self._ws, "dtop")
        sum_windows(src, self.grid, dx)
        dx /= self.grid.pool_size.astype(dx.dtype)
