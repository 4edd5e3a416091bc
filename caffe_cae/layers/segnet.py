"""SegNet's Upsample layer (Alex Kendall's alexgkendall/caffe-segnet,
``src/caffe/layers/upsample_layer.cpp``, commit 03d1e9f).

``type: "Upsample"``, bottoms (values, the mask top of a MAX Pooling layer), ``upsample_param``:
the output is ``upsample_h`` x ``upsample_w`` when both are given, else
``H * scale_h - pad_out_h`` x ``W * scale_w - pad_out_w`` (``scale`` for both, default 2;
``pad_out_*`` only with scale 2).  Each value goes to the flat index its mask holds inside its
own (n, c) plane of the output (Caffe's pooling mask ``h * W + w`` of the pooling *input*), the
rest is 0; where two values name one cell the later one wins.  Backward: each value's diff is
the top diff at that cell; the mask gets none.

The fork fixes the output size at the first Reshape and keeps it when the input is reshaped
(then its index check aborts); here the size follows the current input.
"""
from __future__ import annotations

import numpy as np

from caffe_cae.im2col import Workspace
from caffe_cae.layers.base import Layer
from caffe_cae.layers.registry import register


@register("Upsample")
class UpsampleLayer(Layer):
    """SegNet's unpooling by the pooling mask (see the module docstring)."""

    exact_bottoms = 2
    exact_tops = 1
    feature_tops = -1

    def allow_force_backward(self, bottom_index):
        return bottom_index == 0  # the mask holds indices

    def setup(self, bottom_shapes):
        p = self.param.upsample_param
        has = p.HasField
        self._ws = Workspace()
        if not ((has("upsample_h") and has("upsample_w"))
                or (not has("scale") and has("scale_h") and has("scale_w"))
                or (not has("scale_h") and not has("scale_w"))):
            raise self.error("upsample_h & upsample_w are required, else (DEPRECATED) scale OR "
                             "scale_h & scale_w are required.")
        if has("upsample_h") and has("upsample_w"):
            self.size = (int(p.upsample_h), int(p.upsample_w))
            if min(self.size) <= 1:
                raise self.error(f"upsample_h and upsample_w must be > 1, got {list(self.size)}")
            self.scale = self.pad_out = None
            return []
        self.size = None
        self.scale = (int(p.scale_h), int(p.scale_w)) if has("scale_h") else (int(p.scale),) * 2
        if min(self.scale) <= 1:
            raise self.error(f"scale must be > 1, got {list(self.scale)}")
        self.pad_out = (int(p.pad_out_h), int(p.pad_out_w))
        for axis, (pad, scale) in enumerate(zip(self.pad_out, self.scale)):
            if pad and scale != 2:
                raise self.error(f"Output {'height' if axis == 0 else 'width'} padding compensation "
                                 f"requires scale_{'h' if axis == 0 else 'w'} == 2, otherwise the "
                                 f"output size is ill-defined.")
        return []

    def reshape(self, bottom_shapes):
        shape, mask = tuple(bottom_shapes[0]), tuple(bottom_shapes[1])
        if len(shape) != 4:
            raise self.error(f"Input must have 4 axes, corresponding to (num, channels, height, width), "
                             f"got {list(shape)}")
        if mask != shape:
            raise self.error(f"mask bottom '{self.bottom_name(1)}' has shape {list(mask)}, expected "
                             f"{list(shape)} like '{self.bottom_name(0)}'")
        if self.size is not None:
            out = self.size
        else:
            out = tuple(n * s - pad for n, s, pad in zip(shape[2:], self.scale, self.pad_out))
        self.out_size = out
        return [shape[:2] + out]

    def _indices(self, mask: np.ndarray) -> np.ndarray:
        """Global flat top index of every input value (static_cast<int> of the float mask)."""
        plane = self.out_size[0] * self.out_size[1]
        idx = self._ws.get("index", mask.shape, np.int64)
        np.copyto(idx, mask, casting="unsafe")  # truncation toward zero
        lo, hi = int(idx.min()), int(idx.max())
        if hi >= plane or lo < 0:
            raise self.error(f"upsample top index {hi if hi >= plane else lo} out of range - check "
                             f"scale settings match input pooling layer's downsample setup (output "
                             f"{self.out_size[0]}x{self.out_size[1]})")
        n_c = mask.shape[0] * mask.shape[1]
        idx.reshape(n_c, -1)[...] += (np.arange(n_c, dtype=np.int64) * plane)[:, None]
        return idx.reshape(-1)

    def forward(self, bottom, top):
        y = top[0].data
        y.fill(0)
        y.reshape(-1)[self._indices(bottom[1].data)] = bottom[0].data.reshape(-1)

    def backward(self, top, propagate_down, bottom):
        if propagate_down[0]:
            idx = self._indices(bottom[1].data)
            np.take(top[0].diff.reshape(-1), idx, out=bottom[0].diff.reshape(-1))
