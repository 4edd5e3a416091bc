"""``Interp``: DeepLab v2's bilinear resize, also PSPNet's (deeplab-public-ver2
``interp_layer.cpp`` and ``util/interp.cpp`` by George Papandreou; read in hszhao/PSPNet's copy,
``src/caffe/interp_layer.cpp`` and ``src/caffe/util/interp.cpp``, commit 88d0b3e).

The input is first cropped by ``pad_beg`` / ``pad_end`` (both <= 0; the fork crops the same
``-pad_beg`` rows and columns at the start), giving the effective size ``in_eff``.  Output
size (one way): ``zoom_factor`` z: ``in_eff + (in_eff - 1) * (z - 1)``; ``shrink_factor`` s:
``(in_eff - 1) / s + 1`` (integer division); both (DeepLab): shrink, then zoom;
``height`` + ``width``; or a second bottom's H, W (PSPNet).

Sampling aligns the corners: output row ``i`` reads input row ``r = i * (in_eff - 1) /
(out - 1)`` (float: ``rheight`` rounded to float, then the product), blending rows ``floor(r)``
and ``floor(r) + 1`` (the last row blends with itself) with weights ``1 - frac``, ``frac``;
columns likewise; equal sizes copy.  Backward is the adjoint (each output's diff spread back
with the same four weights).
"""
from __future__ import annotations

import numpy as np

from caffe_cae.layers.base import Layer
from caffe_cae.layers.registry import register


def interp_weights(size_in: int, size_out: int):
    """(low index, high index, low weight, high weight) of every output row, float32 as the
    fork computes them."""
    if size_out > 1:
        ratio = np.float32(np.float32(size_in - 1) / np.float32(size_out - 1))
    else:
        ratio = np.float32(0)
    position = ratio * np.arange(size_out, dtype=np.float32)
    low = position.astype(np.int64)  # truncation, positions are >= 0
    high = low + (low < size_in - 1)
    frac = (position - low.astype(np.float32)).astype(np.float32)
    return low, high, np.float32(1) - frac, frac


@register("Interp")
class InterpLayer(Layer):
    """Bilinear interpolation with aligned corners (see the module docstring)."""

    min_bottoms = 1
    max_bottoms = 2
    exact_tops = 1

    def allow_force_backward(self, bottom_index):
        return bottom_index == 0  # bottom 1 gives only its size

    def setup(self, bottom_shapes):
        p = self.param.interp_param
        has = p.HasField
        self.pad = (int(p.pad_beg), int(p.pad_end))
        if max(self.pad) > 0:
            raise self.error("Only supports non-pos padding (cropping) for now")
        specs = [has("zoom_factor") or has("shrink_factor"), has("height") and has("width"),
                 len(bottom_shapes) == 2]
        if sum(specs) != 1:
            raise self.error("Output dimension specified either by zoom factor or shrink factor or "
                             "the 2nd bottom or explicitly (height and width)")
        return []

    def reshape(self, bottom_shapes):
        shape = tuple(bottom_shapes[0])
        if len(shape) != 4:
            raise self.error(f"input must have 4 axes (num, channels, height, width), got {list(shape)}")
        p = self.param.interp_param
        has = p.HasField
        eff = tuple(n + self.pad[0] + self.pad[1] for n in shape[2:])
        if has("zoom_factor") or has("shrink_factor"):
            out = eff
            if has("shrink_factor"):
                if p.shrink_factor < 1:
                    raise self.error("Shrink factor must be positive")
                out = tuple((n - 1) // p.shrink_factor + 1 for n in out)
            if has("zoom_factor"):
                if p.zoom_factor < 1:
                    raise self.error("Zoom factor must be positive")
                out = tuple(n + (n - 1) * (p.zoom_factor - 1) for n in out)
        elif has("height") and has("width"):
            out = (int(p.height), int(p.width))
        else:
            out = tuple(bottom_shapes[1][2:4])
        if min(eff) <= 0 or min(out) <= 0:
            raise self.error(f"height and width should be positive (input {list(shape)}, cropped "
                             f"{list(eff)}, output {list(out)})")
        self.eff, self.out = eff, out
        self.rows = interp_weights(eff[0], out[0])
        self.cols = interp_weights(eff[1], out[1])
        return [shape[:2] + out]

    def _cropped(self, a: np.ndarray) -> np.ndarray:
        start = -self.pad[0]
        return a[:, :, start:start + self.eff[0], start:start + self.eff[1]]

    def forward(self, bottom, top):
        x = self._cropped(bottom[0].data)
        y = top[0].data
        if self.eff == self.out:
            np.copyto(y, x)
            return
        r_lo, r_hi, r_w0, r_w1 = self.rows
        c_lo, c_hi, c_w0, c_w1 = self.cols
        dtype = y.dtype
        w0, w1 = c_w0.astype(dtype), c_w1.astype(dtype)
        h0, h1 = r_w0.astype(dtype)[:, None], r_w1.astype(dtype)[:, None]
        top_rows, bottom_rows = x[:, :, r_lo, :], x[:, :, r_hi, :]
        upper = w0 * top_rows[..., c_lo] + w1 * top_rows[..., c_hi]
        lower = w0 * bottom_rows[..., c_lo] + w1 * bottom_rows[..., c_hi]
        np.add(h0 * upper, h1 * lower, out=y)

    def backward(self, top, propagate_down, bottom):
        if not propagate_down[0]:
            return
        dx_all = bottom[0].diff
        dx_all.fill(0)
        dx = self._cropped(dx_all)
        dy = top[0].diff
        if self.eff == self.out:
            dx += dy
            return
        r_lo, r_hi, r_w0, r_w1 = self.rows
        c_lo, c_hi, c_w0, c_w1 = self.cols
        dtype = dy.dtype
        h0, h1 = r_w0.astype(dtype)[:, None], r_w1.astype(dtype)[:, None]
        w0, w1 = c_w0.astype(dtype), c_w1.astype(dtype)
        # spread over columns into an (N, C, out_h, in_w) buffer, then over rows
        by_rows = np.zeros(dy.shape[:3] + (self.eff[1],), dtype=dtype)
        for index, weight in ((c_lo, w0), (c_hi, w1)):
            np.add.at(by_rows, (Ellipsis, index), dy * weight)
        for index, weight in ((r_lo, h0), (r_hi, h1)):
            np.add.at(dx, (slice(None), slice(None), index), by_rows * weight)
