"""Layers that move data without arithmetic: Reshape, Flatten, Split, Slice, Concat, Silence.

Reshape, Flatten and Split (and Slice/Concat with a single top/bottom) share memory with their
bottom as in Caffe: the top is a view of the bottom's data (Reshape/Flatten: and of its diff),
set up in ``forward``.  Their backward is then a no-op, except when the Net has given the top
its own diff buffer, in which case the diff is copied through.
"""
from __future__ import annotations

import math

import numpy as np

from caffe_cae.layers.base import Layer
from caffe_cae.layers.common import canonical_axis, pass_diff_back, refuse_in_place, share_data_and_diff
from caffe_cae.layers.registry import register


@register("Reshape")
class ReshapeLayer(Layer):
    """Reshape without copying. ``reshape_param.shape``: 0 copies the bottom axis at the same
    position (relative to ``axis``), -1 is inferred (at most one), other values are literal;
    ``axis``/``num_axes`` choose the span of bottom axes that is replaced (default: all)."""

    exact_bottoms = 1
    exact_tops = 1

    def shares_memory(self, bottom_index, top_index):
        return True

    def setup(self, bottom_shapes):
        refuse_in_place(self)
        self.copy_axes, self.inferred_axis, self.constant_count = [], -1, 1
        for i, dim in enumerate(self.param.reshape_param.shape.dim):
            if dim == 0:
                self.copy_axes.append(i)
            elif dim == -1:
                if self.inferred_axis != -1:
                    raise self.error("new shape contains multiple -1 dims; at most a single (1) value of -1 may be specified")
                self.inferred_axis = i
            elif dim < -1:
                raise self.error(f"new shape contains the invalid dim {dim}")
            else:
                self.constant_count *= int(dim)
        return []

    def reshape(self, bottom_shapes):
        in_shape = tuple(bottom_shapes[0])
        ndim, count = len(in_shape), math.prod(in_shape)
        p = self.param.reshape_param
        start = p.axis if p.axis >= 0 else ndim + p.axis + 1
        if not 0 <= start <= ndim:
            raise self.error(f"axis {p.axis} out of range for {ndim}-D input blob {list(in_shape)}")
        if p.num_axes < -1:
            raise self.error("num_axes must be >= 0, or -1 for all")
        end = ndim if p.num_axes == -1 else start + p.num_axes
        if end > ndim:
            raise self.error(f"end_axis = axis + num_axes = {end} is out of range for {ndim}-D input blob {list(in_shape)}")
        new_dims = [int(d) for d in p.shape.dim]
        out = list(in_shape[:start]) + new_dims + list(in_shape[end:])
        for i in self.copy_axes:
            if start + i >= ndim:
                raise self.error(
                    f"new shape contains a 0 at position {i}, but there was no corresponding bottom axis to copy "
                    f"(bottom shape {list(in_shape)})")
            out[start + i] = in_shape[start + i]
        if self.inferred_axis >= 0:
            explicit = self.constant_count * math.prod(in_shape[:start]) * math.prod(in_shape[end:])
            explicit *= math.prod(out[start + i] for i in self.copy_axes)
            if explicit == 0 or count % explicit:
                raise self.error(
                    f"bottom count ({count}, shape {list(in_shape)}) must be divisible by the product of "
                    f"the specified dimensions ({explicit})")
            out[start + self.inferred_axis] = count // explicit
        if math.prod(out) != count:
            raise self.error(f"output count must match input count: {list(in_shape)} -> {out}")
        return [tuple(out)]

    def forward(self, bottom, top):
        share_data_and_diff(top[0], bottom[0])

    def backward(self, top, propagate_down, bottom):
        if propagate_down[0]:
            pass_diff_back(top[0], bottom[0])


@register("Flatten")
class FlattenLayer(Layer):
    """Collapse axes ``axis``..``end_axis`` (inclusive; default 1..-1) into one; shares memory."""

    exact_bottoms = 1
    exact_tops = 1

    def shares_memory(self, bottom_index, top_index):
        return True

    def setup(self, bottom_shapes):
        refuse_in_place(self)
        return []

    def reshape(self, bottom_shapes):
        shape = tuple(bottom_shapes[0])
        p = self.param.flatten_param
        start = canonical_axis(self, p.axis, len(shape), "axis")
        end = canonical_axis(self, p.end_axis, len(shape), "end_axis")
        if end + 1 < start:  # Caffe: Blob::count(start, end + 1) CHECKs start <= end + 1
            raise self.error(f"end_axis {p.end_axis} (= {end}) lies before axis {p.axis} (= {start}) "
                             f"for a {len(shape)}-D blob {list(shape)}")
        return [shape[:start] + (math.prod(shape[start:end + 1]),) + shape[end + 1:]]

    def forward(self, bottom, top):
        share_data_and_diff(top[0], bottom[0])

    def backward(self, top, propagate_down, bottom):
        if propagate_down[0]:
            pass_diff_back(top[0], bottom[0])


@register("Split")
class SplitLayer(Layer):
    """Copies of one blob for several consumers (Caffe inserts these automatically): the tops
    share the bottom's data; each top keeps its own diff, and backward sums them."""

    exact_bottoms = 1
    min_tops = 1

    def shares_memory(self, bottom_index, top_index):
        return True

    def setup(self, bottom_shapes):
        refuse_in_place(self)
        return []

    def reshape(self, bottom_shapes):
        return [tuple(bottom_shapes[0])] * len(self.param.top)

    def forward(self, bottom, top):
        for t in top:
            t.share_data(bottom[0])

    def backward(self, top, propagate_down, bottom):
        if not propagate_down[0]:
            return
        dx = bottom[0].diff
        if len(top) == 1:
            dx[...] = top[0].diff
            return
        np.add(top[0].diff, top[1].diff, out=dx)
        for t in top[2:]:
            dx += t.diff


@register("Slice")
class SliceLayer(Layer):
    """Cut the bottom along ``axis`` (or legacy ``slice_dim``) at ``slice_point``s, or into
    equal parts (one per top) when no points are given."""

    exact_bottoms = 1
    min_tops = 1

    def shares_memory(self, bottom_index, top_index):
        return len(self.param.top) == 1  # one part: the top is the bottom (no copy)

    def setup(self, bottom_shapes):
        p = self.param.slice_param
        if p.HasField("axis") and p.HasField("slice_dim"):
            raise self.error("Either axis or slice_dim should be specified; not both.")
        return []

    def reshape(self, bottom_shapes):
        shape = tuple(bottom_shapes[0])
        p = self.param.slice_param
        n_top = len(self.param.top)
        if p.HasField("slice_dim"):
            if p.slice_dim >= len(shape):
                raise self.error(f"slice_dim {p.slice_dim} out of range for a {len(shape)}-D blob")
            self.axis = int(p.slice_dim)
        else:
            self.axis = canonical_axis(self, p.axis, len(shape))
        length = shape[self.axis]
        points = [int(s) for s in p.slice_point]
        if points:
            if len(points) != n_top - 1:
                raise self.error(f"{len(points)} slice_point(s) given for {n_top} tops (need {n_top - 1})")
            if n_top > length:
                raise self.error(f"{n_top} tops but the slice axis has only {length} entries")
            prev, sizes = 0, []
            for point in points:
                if point <= prev:
                    raise self.error(f"slice_point values must increase and be > 0, got {points}")
                sizes.append(point - prev)
                prev = point
            if prev > length:  # (a point equal to the length gives an empty last top, as in Caffe)
                raise self.error(f"slice_point {prev} is beyond the slice axis ({length} entries, shape {list(shape)})")
            sizes.append(length - prev)
        else:
            if length % n_top:
                raise self.error(f"Number of top blobs ({n_top}) should evenly divide input slice axis ({length})")
            sizes = [length // n_top] * n_top
        self.bounds = np.cumsum([0] + sizes)
        return [shape[:self.axis] + (s,) + shape[self.axis + 1:] for s in sizes]

    def _part(self, array, i):
        index = (slice(None),) * self.axis + (slice(self.bounds[i], self.bounds[i + 1]),)
        return array[index]

    def forward(self, bottom, top):
        if len(top) == 1:
            share_data_and_diff(top[0], bottom[0])
            return
        for i, t in enumerate(top):
            t.data[...] = self._part(bottom[0].data, i)

    def backward(self, top, propagate_down, bottom):
        if not propagate_down[0]:
            return
        if len(top) == 1:
            pass_diff_back(top[0], bottom[0])
            return
        for i, t in enumerate(top):
            self._part(bottom[0].diff, i)[...] = t.diff


@register("Concat")
class ConcatLayer(Layer):
    """Join bottoms along ``axis`` (or legacy ``concat_dim``); all other axes must agree."""

    min_bottoms = 1
    exact_tops = 1

    def shares_memory(self, bottom_index, top_index):
        return len(self.param.bottom) == 1  # one part: the top is the bottom (no copy)

    def setup(self, bottom_shapes):
        p = self.param.concat_param
        if p.HasField("axis") and p.HasField("concat_dim"):
            raise self.error("Either axis or concat_dim should be specified; not both.")
        return []

    def reshape(self, bottom_shapes):
        shapes = [tuple(s) for s in bottom_shapes]
        first = shapes[0]
        p = self.param.concat_param
        if p.HasField("concat_dim"):
            if p.concat_dim >= len(first):
                raise self.error(f"concat_dim {p.concat_dim} out of range for a {len(first)}-D blob")
            self.axis = int(p.concat_dim)
        else:
            self.axis = canonical_axis(self, p.axis, len(first))
        for i, s in enumerate(shapes[1:], 1):
            if len(s) != len(first):
                raise self.error(f"All inputs must have the same #axes: bottom 0 {list(first)}, bottom {i} {list(s)}")
            if any(a != b for j, (a, b) in enumerate(zip(first, s)) if j != self.axis):
                raise self.error(
                    f"All inputs must have the same shape, except at concat_axis {self.axis}: "
                    f"bottom 0 {list(first)}, bottom {i} {list(s)}")
        self.bounds = np.cumsum([0] + [s[self.axis] for s in shapes])
        return [first[:self.axis] + (int(self.bounds[-1]),) + first[self.axis + 1:]]

    def _part(self, array, i):
        index = (slice(None),) * self.axis + (slice(self.bounds[i], self.bounds[i + 1]),)
        return array[index]

    def forward(self, bottom, top):
        if len(bottom) == 1:
            share_data_and_diff(top[0], bottom[0])
            return
        for i, b in enumerate(bottom):
            self._part(top[0].data, i)[...] = b.data

    def backward(self, top, propagate_down, bottom):
        if len(bottom) == 1:
            if propagate_down[0]:
                pass_diff_back(top[0], bottom[0])
            return
        for i, b in enumerate(bottom):
            if propagate_down[i]:
                b.diff[...] = self._part(top[0].diff, i)


@register("Silence")
class SilenceLayer(Layer):
    """Swallows blobs so they are not net outputs; backward gives them zero diffs."""

    is_metric = True  # consumes blobs, computes nothing an inference graph needs

    min_bottoms = 1
    exact_tops = 0

    def reshape(self, bottom_shapes):
        return []

    def forward(self, bottom, top):
        pass

    def backward(self, top, propagate_down, bottom):
        for down, b in zip(propagate_down, bottom):
            if down:
                b.diff[...] = 0
