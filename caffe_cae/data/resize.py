"""OpenCV's ``cv::resize(..., INTER_LINEAR)`` on 8-bit images, and ``INTER_NEAREST``, in NumPy.

Caffe resizes with OpenCV (ImageData ``new_height``/``new_width``, WindowData's warp,
``convert_imageset --resize_*``).  OpenCV's 8-bit bilinear resize is fixed point: 11-bit
weights (rounded to nearest even), exact integer row sums, then a vertical blend that shifts
each row sum right by 4, keeps the high 16 bits of its product with the weight and rounds the
sum of the two by a final shift of 2 (OpenCV's SIMD formula, which its scalar code copies so
that every platform gives the same bytes).  A float bilinear resize differs by up to one unit.
"""
from __future__ import annotations

import numpy as np

COEF_BITS = 11
COEF_SCALE = 1 << COEF_BITS


def _taps(src_size: int, dst_size: int) -> tuple[np.ndarray, np.ndarray]:
    """First source index and the fraction of the next one, per output position (one axis)."""
    scale = src_size / dst_size
    pos = np.float32((np.arange(dst_size) + 0.5) * scale - 0.5)  # computed in double, stored as float
    first = np.floor(pos).astype(np.int64)
    frac = (pos - first).astype(np.float32)
    return first, frac


def _weights(frac: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    w0 = np.rint((np.float32(1) - frac) * np.float32(COEF_SCALE)).astype(np.int32)
    w1 = np.rint(frac * np.float32(COEF_SCALE)).astype(np.int32)
    return w0, w1


def resize_linear(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """``cv::resize(image, (width, height), INTER_LINEAR)`` of a uint8 ``H x W x C`` image."""
    src_h, src_w, channels = image.shape
    if (src_h, src_w) == (height, width):
        return image.copy()
    # columns: OpenCV clamps both the index and the weight at the borders
    xs, fx = _taps(src_w, width)
    low = xs < 0
    fx[low], xs[low] = 0, 0
    high = xs >= src_w - 1
    fx[high], xs[high] = 0, src_w - 1
    a0, a1 = _weights(fx)
    x1 = np.minimum(xs + 1, src_w - 1)
    # rows: only the row index is clamped (the weights stay)
    ys, fy = _taps(src_h, height)
    b0, b1 = _weights(fy)
    y0 = np.clip(ys, 0, src_h - 1)
    y1 = np.clip(ys + 1, 0, src_h - 1)

    used, where = np.unique(np.concatenate([y0, y1]), return_inverse=True)  # source rows read
    src = image[used].astype(np.int32)
    rows = src[:, xs, :] * a0[None, :, None] + src[:, x1, :] * a1[None, :, None]  # exact integer sums
    top, bottom = rows[where[:height]], rows[where[height:]]
    bw0, bw1 = b0[:, None, None], b1[:, None, None]
    blended = ((((top >> 4) * bw0) >> 16) + (((bottom >> 4) * bw1) >> 16) + 2) >> 2
    return np.clip(blended, 0, 255).astype(np.uint8)


def _nearest(src_size: int, dst_size: int) -> np.ndarray:
    """OpenCV's nearest source index per output position: ``floor(i * (1 / (dst / src)))`` in
    double precision, clamped (it is not always the exact ``i * src // dst``)."""
    inverse = 1.0 / (dst_size / src_size)
    return np.minimum(np.floor(np.arange(dst_size) * inverse).astype(np.int64), src_size - 1)


def resize_nearest(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """``cv::resize(image, (width, height), INTER_NEAREST)`` of an ``H x W [x C]`` image: each
    output pixel copies one source pixel, no values are mixed (label images)."""
    src_h, src_w = image.shape[:2]
    return image[_nearest(src_h, height)[:, None], _nearest(src_w, width)[None, :]]
