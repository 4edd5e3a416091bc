"""py-faster-rcnn's ROIPooling (rbgirshick/caffe-fast-rcnn,
``src/caffe/layers/roi_pooling_layer.cpp``, commit 4c85442; the CPU code).

Bottoms: the feature map (N, C, H, W) and the ROIs (R, 5) rows ``[batch index, x1, y1, x2,
y2]`` in image pixels.  Top: (R, C, pooled_h, pooled_w).  Per ROI, with C's ``round`` (half away
from zero): ``start = round(x1 * spatial_scale)``, ``end = round(x2 * spatial_scale)``, size
``max(end - start + 1, 1)``; bin ``ph`` covers rows ``floor(ph * size/pooled_h)`` to
``ceil((ph + 1) * size/pooled_h)`` (float arithmetic) shifted by start and clipped to the map;
the bin's output is its maximum (the first in row-major order), 0 for an empty bin.

Backward as the fork: every cell of the ROI's clipped region [start, end] gets the diffs of the
bins whose argmax it is, among the bins its own row/column range ``floor((h - start) /
bin_size)`` .. ``ceil((h - start + 1) / bin_size)`` names.  The ROIs get no gradient.
"""
from __future__ import annotations

import numpy as np

from caffe_cae.layers.base import Layer
from caffe_cae.layers.registry import register

FLT_MAX = float(np.finfo(np.float32).max)


def c_round(values: np.ndarray) -> np.ndarray:
    """C's ``round``: halves away from zero (NumPy rounds them to even)."""
    return np.sign(values) * np.floor(np.abs(values) + 0.5)


@register("ROIPooling")
class ROIPoolingLayer(Layer):
    """Fast R-CNN's max pooling of regions (see the module docstring)."""

    exact_bottoms = 2
    exact_tops = 1
    gradient_check = "kink"
    feature_tops = 1

    def allow_force_backward(self, bottom_index):
        return bottom_index == 0

    def setup(self, bottom_shapes):
        p = self.param.roi_pooling_param
        if p.pooled_h <= 0:
            raise self.error("pooled_h must be > 0")
        if p.pooled_w <= 0:
            raise self.error("pooled_w must be > 0")
        self.pooled = (int(p.pooled_h), int(p.pooled_w))
        self.spatial_scale = np.float32(p.spatial_scale)
        return []

    def reshape(self, bottom_shapes):
        data, rois = tuple(bottom_shapes[0]), tuple(bottom_shapes[1])
        if len(data) != 4:
            raise self.error(f"bottom 0 must have 4 axes (num, channels, height, width), got {list(data)}")
        if int(np.prod(rois[1:], dtype=np.int64)) != 5:
            raise self.error(f"ROI layer C x W x H must be == 5 (bottom '{self.bottom_name(1)}' is "
                             f"{list(rois)})")
        return [(rois[0], data[1]) + self.pooled]

    def _geometry(self, roi: np.ndarray):
        """(batch index, start (h, w), end (h, w), bin size (h, w) as float32) of one ROI."""
        coords = c_round(roi[1:5].astype(np.float32) * self.spatial_scale).astype(np.int64)
        start_w, start_h, end_w, end_h = (int(v) for v in coords)
        size_h, size_w = max(end_h - start_h + 1, 1), max(end_w - start_w + 1, 1)
        bins = (np.float32(size_h) / np.float32(self.pooled[0]),
                np.float32(size_w) / np.float32(self.pooled[1]))
        return int(roi[0]), (start_h, start_w), (end_h, end_w), bins

    def _bin_edges(self, pooled: int, bin_size: np.float32, start: int, limit: int):
        steps = np.arange(pooled + 1, dtype=np.float32) * bin_size
        lo = np.floor(steps[:-1]).astype(np.int64) + start
        hi = np.ceil(steps[1:]).astype(np.int64) + start
        return np.clip(lo, 0, limit), np.clip(hi, 0, limit)

    def forward(self, bottom, top):
        x = bottom[0].data
        rois = bottom[1].data.reshape(bottom[1].data.shape[0], 5)
        y = top[0].data
        n_batch, channels, height, width = x.shape
        ph, pw = self.pooled
        self.argmax = np.full(y.shape, -1, dtype=np.int64)
        for r in range(rois.shape[0]):
            b, start, _, bins = self._geometry(rois[r])
            if not 0 <= b < n_batch:
                raise self.error(f"ROI {r} names batch item {b}, the batch has {n_batch}")
            h_lo, h_hi = self._bin_edges(ph, bins[0], start[0], height)
            w_lo, w_hi = self._bin_edges(pw, bins[1], start[1], width)
            columns = (np.arange(width)[None, :] >= w_lo[:, None]) & (np.arange(width)[None, :] < w_hi[:, None])
            for i in range(ph):
                if h_hi[i] <= h_lo[i]:
                    y[r, :, i, :] = 0
                    continue
                band = x[b, :, h_lo[i]:h_hi[i], :]                      # (C, bh, W)
                masked = np.where(columns[None, :, None, :], band[:, None, :, :], -np.inf)
                flat = masked.reshape(channels, pw, -1)                   # (C, pw, bh*W)
                best = flat.argmax(axis=2)                                # first max, row-major
                value = np.take_along_axis(flat, best[..., None], axis=2)[..., 0]
                found = (w_hi > w_lo)[None, :] & (value > -FLT_MAX)
                y[r, :, i, :] = np.where(w_hi > w_lo, np.where(found, value, -FLT_MAX), 0)
                self.argmax[r, :, i, :] = np.where(
                    found, (h_lo[i] + best // width) * width + best % width, -1)

    def backward(self, top, propagate_down, bottom):
        if not propagate_down[0]:
            return
        dx = bottom[0].diff
        dx.fill(0)
        rois = bottom[1].data.reshape(bottom[1].data.shape[0], 5)
        dy = top[0].diff
        _, channels, height, width = dx.shape
        ph, pw = self.pooled
        for r in range(rois.shape[0]):
            b, start, end, bins = self._geometry(rois[r])
            index = self.argmax[r]                                        # (C, ph, pw)
            hit = index >= 0
            h, w = np.where(hit, index // width, 0), np.where(hit, index % width, 0)
            # the fork walks the ROI's clipped region and, per cell, the bins named below
            inside = (hit & (h >= max(0, start[0])) & (h < min(height, end[0] + 1))
                      & (w >= max(0, start[1])) & (w < min(width, end[1] + 1)))
            first_h = np.clip(np.floor((h - start[0]).astype(np.float32) / bins[0]), 0, ph)
            last_h = np.clip(np.ceil((h - start[0] + 1).astype(np.float32) / bins[0]), 0, ph)
            first_w = np.clip(np.floor((w - start[1]).astype(np.float32) / bins[1]), 0, pw)
            last_w = np.clip(np.ceil((w - start[1] + 1).astype(np.float32) / bins[1]), 0, pw)
            rows = np.arange(ph)[None, :, None]
            cols = np.arange(pw)[None, None, :]
            named = (rows >= first_h) & (rows < last_h) & (cols >= first_w) & (cols < last_w)
            take = inside & named
            plane = dx[b].reshape(channels, -1)
            c_index = np.broadcast_to(np.arange(channels)[:, None, None], index.shape)
            np.add.at(plane, (c_index[take], index[take]), dy[r][take])
