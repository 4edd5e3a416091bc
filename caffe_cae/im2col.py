"""im2col / col2im for Caffe's (de)convolutions, batched over the whole mini-batch.

Caffe convolves one image at a time (``im2col`` then one GEMM per image and group).  Here one
im2col covers *all* images and a layer does one (batched, grouped) ``np.matmul`` per pass.
Rows of a column matrix are (c, k...) -- c: channel, k: kernel offset per spatial axis; its
columns are output positions.  Two layouts, picked per geometry for speed (same numerics up to
float summation order):

* per image (``batch_inner=False``, large images): ``col`` is (num, C * prod(kernel), prod(out))
  -- one column matrix per image, as Caffe's.  im2col reads the images in place, the GEMMs are
  batched over the images (``np.matmul`` on 3-D arrays: each image's product lands directly in
  the top / bottom-diff blob, no transposed copies) and col2im adds whole-batch slices.
* batch inner (``batch_inner=True``, small images, e.g. 8x8): ``col`` is
  (C * prod(kernel), prod(out) * num), columns ordered (o..., n).  The images are first
  transposed to (C, spatial..., num), so every strided copy and every col2im accumulation runs
  over long contiguous rows of o_last*N values instead of o_last-long rows, and one large GEMM
  covers the whole batch.

``im2col`` is one ``as_strided`` copy; ``col2im`` loops over the kernel offsets (kh*kw
iterations), adding one strided slice each (no ``np.add.at``).  Both, and the layout copies,
are split over channels or images on :mod:`caffe_cae.parallel`'s threads.  Scratch arrays
live in a :class:`Workspace` and are reused across calls.

:func:`im2col_reference` and :func:`col2im_reference` are Caffe's ``im2col_cpu`` /
``col2im_cpu`` for one image, plainly: what the reference engine uses.
"""
from __future__ import annotations

import functools
import itertools
import math

import numpy as np
from numpy.lib.stride_tricks import as_strided

from caffe_cae import tuning
from caffe_cae.parallel import copyto, matmul, split, threads


class Workspace:
    """Named scratch arrays, reallocated only when the requested shape or dtype changes."""

    def __init__(self):
        self._arrays: dict[str, np.ndarray] = {}

    def get(self, name: str, shape, dtype) -> np.ndarray:
        """An array of ``shape``/``dtype`` (zeroed when newly allocated, else stale values)."""
        shape = tuple(int(d) for d in shape)
        array = self._arrays.get(name)
        if array is None or array.shape != shape or array.dtype != dtype:
            from caffe_cae.limits import check_allocation  # Caffe needs the same buffer; refuse, not crash

            check_allocation(math.prod(shape), np.dtype(dtype).itemsize, f"scratch buffer '{name}' {list(shape)}")
            array = np.zeros(shape, dtype=dtype)
            self._arrays[name] = array
        return array

    def clear(self) -> None:
        self._arrays.clear()


def conv_out_size(size: int, kernel: int, pad: int, stride: int, dilation: int) -> int:
    """Caffe's ``(size + 2*pad - (dilation*(kernel-1)+1)) / stride + 1`` in C++ int arithmetic
    (the division truncates toward zero, so a kernel up to stride-1 cells wider than the padded
    input still gives one output, its outside cells reading zeros)."""
    span = size + 2 * pad - (dilation * (kernel - 1) + 1)
    return (span // stride if span >= 0 else -(-span // stride)) + 1


class ConvGeometry:
    """Spatial geometry of a convolution (the "image" is the convolution's input side).

    For Convolution the image is the bottom; for Deconvolution it is the top (Caffe runs
    deconvolution as the transposed convolution of the top).  ``out`` is Caffe's
    ``floor((image + 2*pad - (dilation*(kernel-1)+1)) / stride) + 1`` per spatial axis.
    """

    def __init__(self, image, kernel, pad, stride, dilation):
        self.image = tuple(int(v) for v in image)
        self.kernel = tuple(int(v) for v in kernel)
        self.pad = tuple(int(v) for v in pad)
        self.stride = tuple(int(v) for v in stride)
        self.dilation = tuple(int(v) for v in dilation)
        self.out = tuple(
            conv_out_size(i, k, p, s, d)
            for i, k, p, s, d in zip(self.image, self.kernel, self.pad, self.stride,
                                     self.dilation)
        )
        # Zero-bordered image extent that every window fits in.
        self.padded = tuple(
            max(i + 2 * p, (o - 1) * s + d * (k - 1) + 1)
            for i, k, p, s, d, o in zip(self.image, self.kernel, self.pad, self.stride,
                                        self.dilation, self.out)
        )
        self.has_pad = self.padded != self.image
        self.kernel_size = math.prod(self.kernel)
        self.out_size = math.prod(self.out)
        self.batch_inner = self.out_size < tuning.BATCH_INNER_BELOW

    @functools.cached_property
    def offsets(self) -> list[tuple[int, ...]]:
        """Every kernel offset, row-major (built on first use: shape inference never needs it)."""
        return list(itertools.product(*(range(k) for k in self.kernel)))

    @property
    def positions_first(self) -> bool:
        """col2im loops over output positions rather than kernel offsets (fewer of them: a
        large kernel on a small map, e.g. a deconvolution of a 1x1 code)."""
        return self.out_size < self.kernel_size

    def positions_reversed(self):
        """Output positions in reverse row-major order: adding whole windows in this order
        gives every image cell its contributions in ascending kernel-offset order, Caffe's."""
        return itertools.product(*(range(o - 1, -1, -1) for o in self.out))

    def _window_slices(self, position):
        """Padded-image slices of the window of output ``position`` (kernel offsets in order)."""
        return tuple(
            slice(p * s, p * s + d * (k - 1) + 1, d)
            for p, s, d, k in zip(position, self.stride, self.dilation, self.kernel)
        )

    def __repr__(self) -> str:
        return (f"ConvGeometry(image={self.image}, kernel={self.kernel}, pad={self.pad}, "
                f"stride={self.stride}, dilation={self.dilation}, out={self.out})")

    # -- helpers ---------------------------------------------------------------------------
    def _interior(self):
        return tuple(slice(p, p + i) for p, i in zip(self.pad, self.image))

    def _offset_slices(self, offset):
        """Padded-image slices hit by kernel offset ``offset`` at every output position."""
        return tuple(
            slice(k * d, k * d + s * (o - 1) + 1, s)
            for k, d, s, o in zip(offset, self.dilation, self.stride, self.out)
        )

    def column_count(self, num: int) -> int:
        return num * self.out_size


def im2col_reference(image: np.ndarray, g: ConvGeometry) -> np.ndarray:
    """Caffe's ``im2col_cpu`` of one image (C, *image): rows (c, kernel offset...), columns the
    output positions, cells outside the image read as 0."""
    channels = image.shape[0]
    padded = np.zeros((channels,) + g.padded, image.dtype)
    padded[(slice(None),) + g._interior()] = image
    rows = [padded[(slice(None),) + g._offset_slices(offset)] for offset in g.offsets]
    return np.stack(rows, axis=1).reshape(channels * g.kernel_size, g.out_size)


def col2im_reference(col: np.ndarray, g: ConvGeometry, channels: int) -> np.ndarray:
    """Caffe's ``col2im_cpu``: the image (C, *image) to which every column entry is added back,
    kernel offset after kernel offset."""
    padded = np.zeros((channels,) + g.padded, col.dtype)
    rows = col.reshape((channels, g.kernel_size) + g.out)
    for k, offset in enumerate(g.offsets):
        padded[(slice(None),) + g._offset_slices(offset)] += rows[:, k]
    return padded[(slice(None),) + g._interior()]


def im2col(x: np.ndarray, g: ConvGeometry, ws: Workspace, name: str = "col") -> np.ndarray:
    """Columns of ``x`` (num, C, *image): (num, C * prod(kernel), prod(out)) per image, or
    (C * prod(kernel), prod(out) * num) when ``g.batch_inner``.

    The returned array is a workspace buffer named ``name`` (valid until the next call that
    uses the same name).
    """
    num, channels = x.shape[:2]
    all_ = slice(None)
    if g.batch_inner:
        # Transposed image (C, *padded, num): padding border stays zero (never written).
        image = ws.get(name + ".image", (channels,) + g.padded + (num,), x.dtype)
        copyto(image[(all_,) + g._interior() + (all_,)], np.moveaxis(x, 0, -1))
        sc, ss, sn = image.strides[0], image.strides[1:-1], image.strides[-1]
        shape = (channels,) + g.kernel + g.out + (num,)
        strides = ((sc,) + tuple(s * d for s, d in zip(ss, g.dilation))
                   + tuple(s * t for s, t in zip(ss, g.stride)) + (sn,))
        rows = (channels * g.kernel_size, g.out_size * num)
    else:
        if g.has_pad:
            image = ws.get(name + ".image", (num, channels) + g.padded, x.dtype)
            copyto(image[(all_, all_) + g._interior()], x)
        else:
            image = x
        sn, sc, ss = image.strides[0], image.strides[1], image.strides[2:]
        shape = (num, channels) + g.kernel + g.out
        strides = ((sn, sc) + tuple(s * d for s, d in zip(ss, g.dilation))
                   + tuple(s * t for s, t in zip(ss, g.stride)))
        rows = (num, channels * g.kernel_size, g.out_size)
    view = as_strided(image, shape=shape, strides=strides, writeable=False)
    col = ws.get(name, shape, x.dtype)
    copyto(col, view)
    return col.reshape(rows)


def col2im(col: np.ndarray, g: ConvGeometry, out: np.ndarray, ws: Workspace,
           name: str = "col2im") -> None:
    """Sum columns back into images: ``out`` (num, C, *image) is assigned (Caffe's col2im).

    ``col`` is in the geometry's layout (see :func:`im2col`).  Every image cell adds its
    contributions in kernel-offset order, whatever the thread split.
    """
    num, channels = out.shape[:2]
    all_ = slice(None)
    if g.batch_inner:
        image = ws.get(name + ".image", (channels,) + g.padded + (num,), out.dtype)
        colv = col.reshape((channels,) + g.kernel + g.out + (num,))
        interior = g._interior()

        kernel_axes = (all_,) * len(g.kernel)

        def channels_part(lo, hi):
            part = image[lo:hi]
            part.fill(0)
            if g.positions_first:
                for position in g.positions_reversed():
                    part[(all_,) + g._window_slices(position) + (all_,)] += colv[(slice(lo, hi),) + kernel_axes + position]
            else:
                for offset in g.offsets:
                    part[(all_,) + g._offset_slices(offset) + (all_,)] += colv[(slice(lo, hi),) + offset]
            np.copyto(out[:, lo:hi], np.moveaxis(part[(all_,) + interior + (all_,)], -1, 0))

        def images_part(lo, hi):  # few channels (a 1-channel reconstruction): split the batch
            part = image[..., lo:hi]
            part.fill(0)
            if g.positions_first:
                for position in g.positions_reversed():
                    part[(all_,) + g._window_slices(position) + (all_,)] += colv[(all_,) + kernel_axes + position + (slice(lo, hi),)]
            else:
                for offset in g.offsets:
                    part[(all_,) + g._offset_slices(offset) + (all_,)] += colv[(all_,) + offset + (Ellipsis, slice(lo, hi))]
            np.copyto(out[lo:hi], np.moveaxis(part[(all_,) + interior + (all_,)], -1, 0))

        if channels >= threads():
            split(channels_part, channels, colv.size)
        else:
            split(images_part, num, colv.size)
        return
    image = ws.get(name + ".image", (num, channels) + g.padded, out.dtype) if g.has_pad else out
    colv = col.reshape((num, channels) + g.kernel + g.out)

    kernel_axes = (all_,) * len(g.kernel)

    def images_part(lo, hi):
        part = image[lo:hi]
        part.fill(0)
        if g.positions_first:
            for position in g.positions_reversed():
                part[(all_, all_) + g._window_slices(position)] += colv[(slice(lo, hi), all_) + kernel_axes + position]
        else:
            for offset in g.offsets:
                part[(all_, all_) + g._offset_slices(offset)] += colv[(slice(lo, hi), all_) + offset]
        if g.has_pad:
            np.copyto(out[lo:hi], part[(all_, all_) + g._interior()])

    split(images_part, num, colv.size)


def matmul_col2im(a: np.ndarray, b: np.ndarray, g: ConvGeometry, out: np.ndarray,
                  ws: Workspace, name: str = "col2im") -> None:
    """``col2im(a @ b)`` for a batch-inner geometry: ``a`` (G, C/G * prod(kernel), k) and
    ``b`` (G, k, prod(out) * num) -- the backward-data pass of Convolution and the forward
    pass of Deconvolution.

    A column matrix above ``tuning.CHUNKED_COL2IM_ABOVE`` elements (e.g. 17x17 kernels on few
    channels: 16 M floats) is never built: for one group and a 2-D kernel, each kernel row's
    columns are multiplied and summed into the image while they are still in the cache.  The
    values are the same (each column entry is the same dot product over ``k``; every image
    cell adds its contributions in the same kernel-offset order).
    """
    groups, rows, _ = a.shape
    cols = b.shape[2]
    if (groups != 1 or len(g.kernel) != 2 or not g.batch_inner
            or rows * cols <= tuning.CHUNKED_COL2IM_ABOVE or g.positions_first):
        col = ws.get(name + ".col", (groups * rows, cols), b.dtype)
        matmul(a, b, col.reshape(groups, rows, cols))
        col2im(col, g, out, ws, name)
        return
    num, channels = out.shape[:2]
    kh, kw = g.kernel
    all_ = slice(None)
    per_row = a[0].reshape(channels, kh, kw, a.shape[2])
    weights = ws.get(name + ".row_weights", (channels, kw, a.shape[2]), a.dtype)
    row_cols = ws.get(name + ".row_cols", (channels * kw, cols), b.dtype)
    image = ws.get(name + ".image", (channels,) + g.padded + (num,), out.dtype)
    split(lambda lo, hi: image[lo:hi].fill(0), channels, image.size)
    for i in range(kh):
        np.copyto(weights, per_row[:, i])
        matmul(weights.reshape(channels * kw, -1), b[0], row_cols)
        colv = row_cols.reshape((channels, kw) + g.out + (num,))

        def channels_part(lo, hi, i=i, colv=colv):
            part = image[lo:hi]
            for j in range(kw):
                part[(all_,) + g._offset_slices((i, j)) + (all_,)] += colv[lo:hi, j]

        split(channels_part, channels, colv.size)
    interior = image[(all_,) + g._interior() + (all_,)]
    split(lambda lo, hi: np.copyto(out[:, lo:hi], np.moveaxis(interior[lo:hi], -1, 0)),
          channels, out.size)


def to_columns(a: np.ndarray, g: ConvGeometry, ws: Workspace, name: str) -> np.ndarray:
    """(num, C, *out) -> (C, num * prod(out)) in the batch-inner or (n, o) column order (a
    copy; the per-image layout needs none: it is ``a.reshape(num, C, prod(out))``)."""
    num, channels = a.shape[:2]
    if g.batch_inner:
        buf = ws.get(name, (channels,) + g.out + (num,), a.dtype)
        copyto(buf, np.moveaxis(a, 0, -1))
    else:
        buf = ws.get(name, (channels, num) + g.out, a.dtype)
        copyto(buf, a.swapaxes(0, 1))
    return buf.reshape(channels, num * g.out_size)


def from_columns(buf: np.ndarray, g: ConvGeometry, out: np.ndarray) -> None:
    """Inverse of :func:`to_columns`: assign (C, cols) to ``out`` (num, C, *out)."""
    num, channels = out.shape[:2]
    if g.batch_inner:
        source = np.moveaxis(buf.reshape((channels,) + g.out + (num,)), -1, 0)
    else:
        source = buf.reshape((channels, num) + g.out).swapaxes(0, 1)
    # split over channels (axis 1): each part reads a contiguous block of ``buf``
    split(lambda lo, hi: np.copyto(out[:, lo:hi], source[:, lo:hi]), channels, out.size)
