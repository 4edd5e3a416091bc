"""``Blob``: a named pair of arrays (data, diff), like Caffe's Blob.

Layers write *into* the arrays (``top.data[...] = ...`` or ufuncs with ``out=``) instead of
rebinding them, so blobs that share memory (Split and Reshape tops, in-place layers, shared
parameters) behave as in Caffe, and buffers are reused across iterations.
"""
from __future__ import annotations

import numpy as np


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

    def reshape(self, shape) -> None:
        """Give the blob ``shape``; memory is reallocated (zeroed) only when the shape changes."""
        shape = tuple(int(d) for d in shape)
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
