"""``Blob``: a named pair of arrays (data, diff), like Caffe's Blob.

Layers write *into* the arrays (``top.data[...] = ...`` or ufuncs with ``out=``) instead of
rebinding them, so blobs that share memory (Split and Reshape tops, in-place layers, shared
parameters) behave as in Caffe, and buffers are reused across iterations.
"""
from __future__ import annotations

import numpy as np

from caffe_cae.errors import CaffeCaeError


class Blob:
    """data and diff of one shape; float32 unless built for a float64 gradient check."""

    __slots__ = ("name", "data", "diff")

    def __init__(self, shape=(), dtype=np.float32, name: str = ""):
        self.name = name
        self.data = np.zeros(tuple(shape), dtype=dtype)
        self.diff = np.zeros(tuple(shape), dtype=dtype)

    @property
    def shape(self) -> tuple[int, ...]:
        return self.data.shape

    @property
    def count(self) -> int:
        return int(self.data.size)

    @property
    def dtype(self):
        return self.data.dtype

    # Caffe's legacy 4-D accessors (Blob::LegacyShape): a missing axis reads as 1.
    def _legacy_dim(self, axis: int) -> int:
        if self.data.ndim > 4:
            raise CaffeCaeError(f"blob '{self.name}': cannot use legacy accessors on blobs with > 4 axes "
                             f"(shape {list(self.shape)})")
        return int(self.data.shape[axis]) if axis < self.data.ndim else 1

    @property
    def num(self) -> int:
        return self._legacy_dim(0)

    @property
    def channels(self) -> int:
        return self._legacy_dim(1)

    @property
    def height(self) -> int:
        return self._legacy_dim(2)

    @property
    def width(self) -> int:
        return self._legacy_dim(3)

    def reshape(self, *shape) -> None:
        """Give the blob a new shape, as pycaffe's ``blob.reshape(7, 1, 28, 28)`` (a single
        tuple/list works too); memory is reallocated (zeroed) only when the shape changes.
        After reshaping an input blob call ``net.reshape()`` (or just ``net.forward()``)."""
        if len(shape) == 1 and not isinstance(shape[0], (int, np.integer)):
            shape = shape[0]
        shape = tuple(int(d) for d in shape)
        if any(d < 0 for d in shape):
            raise CaffeCaeError(f"blob '{self.name}': negative dimension in shape {list(shape)}")
        if shape != self.data.shape:
            self.data = np.zeros(shape, dtype=self.data.dtype)
            self.diff = np.zeros(shape, dtype=self.diff.dtype)

    def share_data(self, other: "Blob") -> None:
        """Use ``other``'s data memory (viewed with this blob's shape when the counts agree)."""
        self.data = other.data.reshape(self.data.shape)

    def share_diff(self, other: "Blob") -> None:
        self.diff = other.diff.reshape(self.diff.shape)

    def __repr__(self) -> str:
        return f"Blob({self.name!r}, shape={list(self.shape)}, dtype={self.dtype})"
