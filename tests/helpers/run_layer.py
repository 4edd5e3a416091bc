"""Run one layer outside a Net, as the Net does: blob counts, setup, parameter blobs, fillers,
reshape, forward (and backward on request)."""
from __future__ import annotations

import numpy as np

from caffe_cae.blob import Blob
from caffe_cae.layers import create_layer
from caffe_cae.proto import caffe_pb2
from caffe_cae.prototxt import parse_text


class LayerRun:
    """A set-up layer with its blobs: ``layer``, ``bottom``, ``top``, ``params`` (arrays)."""

    def __init__(self, text: str, bottoms, phase=caffe_pb2.TEST, dtype=np.float32, seed=0,
                 n_tops: int | None = None):
        param = parse_text(text, caffe_pb2.LayerParameter, "<test>")
        self.layer = create_layer(param, phase)
        bottoms = [np.asarray(b, dtype=dtype) for b in bottoms]
        n_tops = len(param.top) if n_tops is None else n_tops
        self.layer.check_blob_counts(len(bottoms), n_tops)
        self.bottom = []
        for i, array in enumerate(bottoms):
            blob = Blob(array.shape, dtype, f"bottom{i}")
            blob.data[...] = array
            self.bottom.append(blob)
        shapes = [b.shape for b in self.bottom]
        self.layer.blobs = [Blob(s, dtype, f"param{k}") for k, s in enumerate(self.layer.setup(shapes))]
        self.top = [Blob(s, dtype, f"top{i}") for i, s in enumerate(self.layer.reshape(shapes))]
        self.layer.fill_params(np.random.default_rng(seed))

    @property
    def params(self) -> list[np.ndarray]:
        return [b.data for b in self.layer.blobs]

    def forward(self) -> list[np.ndarray]:
        self.layer.forward(self.bottom, self.top)
        return [t.data for t in self.top]

    def backward(self, top_diffs, propagate_down=None) -> list[np.ndarray]:
        for blob, diff in zip(self.top, top_diffs):
            blob.diff[...] = diff
        down = [True] * len(self.bottom) if propagate_down is None else propagate_down
        self.layer.backward(self.top, down, self.bottom)
        return [b.diff for b in self.bottom]


def layer_text(type_name: str, body: str = "", bottoms: int = 1, tops: int = 1) -> str:
    return (f'name: "l" type: "{type_name}"' + "".join(f' bottom: "b{i}"' for i in range(bottoms))
            + "".join(f' top: "t{i}"' for i in range(tops)) + f" {body}")
