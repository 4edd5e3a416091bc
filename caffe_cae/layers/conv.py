"""Convolution and Deconvolution, as Caffe's BaseConvolutionLayer (N-D, groups, dilation, axis).

Shapes (``axis`` = channel axis, default 1; spatial axes = every axis after it):

* Convolution:   weight ``(C_out, C_in/group, *kernel)``; out = floor((in + 2p - (d(k-1)+1))/s) + 1
* Deconvolution: weight ``(C_in, C_out/group, *kernel)`` (Caffe's "reverse dimensions", also the
  ONNX ConvTranspose ``W`` unchanged); out = s(in-1) + d(k-1) + 1 - 2p
* bias ``(num_output,)`` when ``bias_term``.

A blob with only (N, C) axes has zero spatial axes: the layer is then a per-sample matrix
product producing (N, num_output), as in BVLC (no error).  Several bottoms are allowed (same
shape each; one top per bottom, all sharing the weights), as in Caffe.

Speed: the whole mini-batch goes through one im2col and one (batched, grouped) ``np.matmul``
per pass, see :mod:`caffe_cae.im2col` for the two column layouts.  The columns computed in
``forward`` are reused by ``backward`` for the weight gradient, so the bottom must not change
between the two (it never does in a Net).  Under the reference engine both layers run
``forward_reference``/``backward_reference`` instead: Caffe's ``conv_layer.cpp`` /
``deconv_layer.cpp``, one image at a time (im2col, one GEMM per group, col2im).
"""
from __future__ import annotations

import math

from caffe_cae import engine, tuning
from caffe_cae.im2col import (ConvGeometry, Workspace, col2im, col2im_reference, conv_out_size,
                              from_columns, im2col, im2col_reference, matmul_col2im, to_columns)
from caffe_cae.layers.base import Layer
from caffe_cae.layers.common import canonical_axis, conv_spatial_params
from caffe_cae.layers.registry import register
from caffe_cae.parallel import copyto, matmul, split


class BaseConvolution(Layer):
    """Shared setup/reshape and the three GEMM passes (Caffe's BaseConvolutionLayer)."""

    feature_tops = -1

    min_bottoms = 1
    min_tops = 1
    #: Deconvolution: the convolution runs from top to bottom ("reverse dimensions").
    reverse_dimensions = False
    #: Backward reuses the columns forward made from the bottom.  The Net clears this where a
    #: later in-place layer may overwrite the bottom's memory (through Split/Reshape/Flatten
    #: views): Caffe's backward reads the bottom as it is then, so the columns are redone.
    reuse_forward_columns: bool = True

    def check_blob_counts(self, n_bottom, n_top):
        super().check_blob_counts(n_bottom, n_top)
        if n_bottom != n_top:
            raise self.error(f"needs as many tops as bottoms, got {n_bottom} bottom(s) and "
                             f"{n_top} top(s)")

    # -- setup / reshape --------------------------------------------------------------------
    def setup(self, bottom_shapes):
        cp = self.param.convolution_param
        shape = tuple(bottom_shapes[0])
        self.channel_axis = canonical_axis(self, cp.axis, len(shape))
        self.num_axes = len(shape)
        self.n_spatial = len(shape) - self.channel_axis - 1
        self.kernel, self.stride, self.pad, self.dilation = conv_spatial_params(
            self, cp, self.n_spatial)
        self.channels = int(shape[self.channel_axis])
        self.num_output = int(cp.num_output)
        if self.num_output <= 0:
            raise self.error("num_output must be positive")
        self.group = int(cp.group)
        if self.group <= 0 or self.channels % self.group:
            raise self.error(f"input channels ({self.channels}) must be a multiple of group "
                             f"({self.group})")
        if self.num_output % self.group:
            raise self.error(f"num_output ({self.num_output}) must be a multiple of group "
                             f"({self.group})")
        if self.reverse_dimensions:
            conv_out, conv_in = self.channels, self.num_output
        else:
            conv_out, conv_in = self.num_output, self.channels
        self.conv_out_channels, self.conv_in_channels = conv_out, conv_in
        self.weight_shape = (conv_out, conv_in // self.group) + tuple(self.kernel)
        self.bias_term = bool(cp.bias_term)
        self._ws = Workspace()
        self._geometry = None
        self._reshaped_for = None
        shapes = [self.weight_shape]
        if self.bias_term:
            shapes.append((self.num_output,))
        return shapes

    def _output_spatial(self, in_spatial):
        raise NotImplementedError

    def reshape(self, bottom_shapes):
        key = tuple(tuple(s) for s in bottom_shapes)
        if key == self._reshaped_for:  # Caffe reshapes before every forward
            return self._top_shapes
        shape = tuple(bottom_shapes[0])
        if len(shape) != self.num_axes:
            raise self.error(f"bottom num_axes may not change (was {self.num_axes}, "
                             f"now {len(shape)}: {list(shape)})")
        if shape[self.channel_axis] != self.channels:
            raise self.error(
                f"Input size incompatible with convolution kernel: bottom "
                f"'{self.bottom_name(0)}' has {shape[self.channel_axis]} channels {list(shape)}, "
                f"the layer was set up for {self.channels}")
        for i, other in enumerate(bottom_shapes[1:], start=1):
            if tuple(other) != shape:
                raise self.error(f"all inputs must have the same shape: bottom "
                                 f"'{self.bottom_name(i)}' {list(other)} vs {list(shape)}")
        in_spatial = shape[self.channel_axis + 1:]
        out_spatial = self._output_spatial(in_spatial)
        if any(o <= 0 for o in out_spatial):
            raise self.error(
                f"output size {list(out_spatial)} is not positive for input {list(shape)} "
                f"(kernel {list(self.kernel)}, pad {list(self.pad)}, stride {list(self.stride)}, "
                f"dilation {list(self.dilation)})")
        self.num = math.prod(shape[:self.channel_axis])
        self.in_spatial, self.out_spatial = tuple(in_spatial), tuple(out_spatial)
        image = out_spatial if self.reverse_dimensions else in_spatial
        self._geometry = ConvGeometry(image, self.kernel, self.pad, self.stride, self.dilation)
        self._cached = {}
        top_shape = shape[:self.channel_axis] + (self.num_output,) + tuple(out_spatial)
        self._reshaped_for, self._top_shapes = key, [top_shape] * len(bottom_shapes)
        return list(self._top_shapes)


    def fill_params(self, rng):
        from caffe_cae.fillers import fill  # lazy: fillers are optional for pure inference

        cp = self.param.convolution_param
        w = self.blobs[0]
        w.data[...] = fill(cp.weight_filler, w.shape, rng, w.dtype)
        if self.bias_term:
            b = self.blobs[1]
            b.data[...] = fill(cp.bias_filler, b.shape, rng, b.dtype)

    # -- helpers ----------------------------------------------------------------------------
    def _as_conv(self, array, channels, spatial):
        """View a blob array as (num, channels, *spatial)."""
        return array.reshape((self.num, channels) + tuple(spatial))

    def _weights3(self, array):
        """Weight (or its diff) as (group, rows per group, cols per group) for batched GEMM."""
        return array.reshape(self.group, array.shape[0] // self.group, -1)

    def _grouped(self, cols):
        return cols.reshape(self.group, cols.shape[0] // self.group, cols.shape[1])

    def _gemm(self, a, b, name):
        """Grouped GEMM into a workspace buffer: (G, m, k) @ (G, k, n) -> (G*m, n)."""
        out = self._ws.get(name, (a.shape[0] * a.shape[1], b.shape[2]), b.dtype)
        matmul(a, b, out.reshape(a.shape[0], a.shape[1], b.shape[2]))
        return out

    def _add_weight_grad(self, a, b):
        """weight diff += a @ b^T per group (Caffe's weight_cpu_gemm, accumulating).  Computed
        as (b @ a^T)^T: OpenBLAS runs that orientation ~1.4x faster for these shapes (few
        output channels, thousands of columns)."""
        dw = self._weights3(self.blobs[0].diff)
        tmp = self._ws.get("dweight", (dw.shape[0], dw.shape[2], dw.shape[1]), dw.dtype)
        matmul(b, a.transpose(0, 2, 1), tmp, axis=-2)
        dw += tmp.transpose(0, 2, 1)

    def _add_weight_grad_per_image(self, a, b):
        """weight diff += sum over images of a[n] @ b[n]^T per group (Caffe's weight_cpu_gemm
        image after image); ``a`` (num, G, m, P), ``b`` (num, G, k, P)."""
        dw = self._weights3(self.blobs[0].diff)
        num = a.shape[0]
        chunk = max(1, min(num, tuning.PER_IMAGE_GRAD_ELEMENTS // dw.size))
        tmp = self._ws.get("dweight_images", (chunk,) + dw.shape, dw.dtype)
        bt = b.transpose(0, 1, 3, 2)
        for lo in range(0, num, chunk):  # usually one pass; chunks only bound the scratch
            hi = min(num, lo + chunk)
            part = tmp[:hi - lo]
            matmul(a[lo:hi], bt[lo:hi], part, axis=0)
            dw += part.sum(axis=0, dtype=dw.dtype)

    def _per_image(self, array, channels):
        """A blob array as (num, group, channels / group, positions): per-image GEMM operands."""
        return array.reshape(self.num, self.group, channels // self.group, -1)

    def _add_bias_grad(self, dy):
        """bias diff += dy summed over images and positions."""
        self.blobs[1].diff += dy.reshape(self.num, self.num_output, -1).sum(
            axis=(0, 2), dtype=dy.dtype)

    def _add_bias(self, y):
        y3 = y.reshape(self.num, self.num_output, -1)
        bias = self.blobs[1].data[:, None]

        def images(lo, hi):
            y3[lo:hi] += bias

        split(images, self.num, y3.size)


    # -- reference engine: Caffe's BaseConvolutionLayer helpers, one image each ---------------
    def _forward_gemm(self, image):
        """forward_cpu_gemm: W @ im2col(image) per group, shaped (conv_out, *geometry.out)."""
        g = self._geometry
        col = im2col_reference(image, g).reshape(self.group, -1, g.out_size)
        product = self._weights3(self.blobs[0].data) @ col
        return product.reshape((self.conv_out_channels,) + g.out)

    def _backward_gemm(self, output):
        """backward_cpu_gemm: col2im(W^T @ output) per group, shaped like the image."""
        w = self._weights3(self.blobs[0].data)
        col = w.transpose(0, 2, 1) @ output.reshape(self.group, w.shape[1], -1)
        return col2im_reference(col, self._geometry, self.conv_in_channels)

    def _weight_gemm(self, image, output):
        """weight_cpu_gemm: weight diff += output @ im2col(image)^T per group."""
        dw = self._weights3(self.blobs[0].diff)
        col = im2col_reference(image, self._geometry).reshape(self.group, dw.shape[2], -1)
        dw += output.reshape(self.group, dw.shape[1], -1) @ col.transpose(0, 2, 1)

    def _forward_bias(self, y):
        """forward_cpu_bias: every position of the image ``y`` += its channel's bias."""
        y += self.blobs[1].data.reshape((-1,) + (1,) * self.n_spatial)

    def _backward_bias(self, dy):
        """backward_cpu_bias: bias diff += the image ``dy`` summed over positions."""
        self.blobs[1].diff += dy.reshape(self.num_output, -1).sum(axis=1, dtype=dy.dtype)

    def _bottom_images(self, array):
        return self._as_conv(array, self.channels, self.in_spatial)

    def _top_images(self, array):
        return self._as_conv(array, self.num_output, self.out_spatial)


@register("Convolution")
class ConvolutionLayer(BaseConvolution):
    """Caffe's Convolution (cross-correlation, no kernel flip)."""

    def _output_spatial(self, in_spatial):
        return tuple(conv_out_size(i, k, p, s, d)
                     for i, k, p, s, d in zip(in_spatial, self.kernel, self.pad, self.stride,
                                              self.dilation))

    def forward_reference(self, bottom, top):
        """Caffe's ConvolutionLayer::Forward_cpu."""
        for b, t in zip(bottom, top):
            x, y = self._bottom_images(b.data), self._top_images(t.data)
            for n in range(self.num):
                y[n] = self._forward_gemm(x[n])
                if self.bias_term:
                    self._forward_bias(y[n])

    def backward_reference(self, top, propagate_down, bottom):
        """Caffe's ConvolutionLayer::Backward_cpu."""
        for i, (b, t) in enumerate(zip(bottom, top)):
            x, dx = self._bottom_images(b.data), self._bottom_images(b.diff)
            dy = self._top_images(t.diff)
            for n in range(self.num):
                if self.bias_term and self.param_needs_gradient(1):
                    self._backward_bias(dy[n])
                if self.param_needs_gradient(0):
                    self._weight_gemm(x[n], dy[n])
                if propagate_down[i]:
                    dx[n] = self._backward_gemm(dy[n])

    def forward(self, bottom, top):
        if engine.reference():
            return self.forward_reference(bottom, top)
        g = self._geometry
        w = self._weights3(self.blobs[0].data)
        for i, (b, t) in enumerate(zip(bottom, top)):
            x = self._as_conv(b.data, self.channels, self.in_spatial)
            col = im2col(x, g, self._ws, f"col{i}")
            if self.reuse_forward_columns:
                self._cached[i] = col
            if g.batch_inner:
                out = self._gemm(w, self._grouped(col), "out")
                if self.bias_term:
                    out += self.blobs[1].data[:, None]
                from_columns(out, g, self._as_conv(t.data, self.num_output, self.out_spatial))
                continue
            y = self._per_image(t.data, self.num_output)
            matmul(w, col.reshape(y.shape[:2] + (-1, y.shape[3])), y, axis=0)
            if self.bias_term:
                self._add_bias(t.data)

    def backward(self, top, propagate_down, bottom):
        if engine.reference():
            return self.backward_reference(top, propagate_down, bottom)
        g = self._geometry
        w = self._weights3(self.blobs[0].data)
        for i, (b, t) in enumerate(zip(bottom, top)):
            if self.bias_term and self.param_needs_gradient(1):
                self._add_bias_grad(t.diff)
            if g.batch_inner:
                dy = to_columns(self._as_conv(t.diff, self.num_output, self.out_spatial), g,
                                self._ws, "dy")
            else:
                dy = self._per_image(t.diff, self.num_output)
            if self.param_needs_gradient(0):
                col = self._cached.get(i)
                if col is None or col.dtype != dy.dtype:
                    x = self._as_conv(b.data, self.channels, self.in_spatial)
                    col = im2col(x, g, self._ws, f"col{i}")
                if g.batch_inner:
                    self._add_weight_grad(self._grouped(dy), self._grouped(col))
                else:
                    self._add_weight_grad_per_image(
                        dy, col.reshape(dy.shape[:2] + (-1, dy.shape[3])))
            if propagate_down[i]:
                dx = self._as_conv(b.diff, self.channels, self.in_spatial)
                if g.batch_inner:
                    matmul_col2im(w.transpose(0, 2, 1), self._grouped(dy), g, dx, self._ws)
                    continue
                dcol = self._ws.get("dcol", (self.num, self.group, w.shape[2], dy.shape[3]),
                                    dy.dtype)
                matmul(w.transpose(0, 2, 1), dy, dcol, axis=0)
                col2im(dcol.reshape(self.num, -1, dy.shape[3]), g, dx, self._ws)


@register("DepthwiseConvolution")
class DepthwiseConvolutionLayer(ConvolutionLayer):
    """yonghenglh6/DepthwiseConvolution's type (README 1348985: "replacing the type of mobile
    convolution layer with DepthwiseConvolution is all"): its CPU path is Caffe's Convolution
    with ``convolution_param.group``; its GPU kernel assumes one group per input channel, so
    another group is refused (the fork's two paths would disagree)."""

    def setup(self, bottom_shapes):
        shapes = super().setup(bottom_shapes)
        if self.group != self.channels:
            raise self.error(f"group ({self.group}) must equal the input channels ({self.channels}): "
                             f"the fork computes a depthwise convolution")
        return shapes


@register("Deconvolution")
class DeconvolutionLayer(BaseConvolution):
    """Caffe's Deconvolution: the transpose (backward-data pass) of Convolution.

    **Sparse bottoms.**  Behind a top-left Unpooling (the papers' Model 4 decoder) only every
    ``s``-th cell per axis of the bottom can be non-zero.  The Net then sets
    ``bottom_spread = s`` for the forward pass in which the Unpooling wrote the bottom, and the
    forward pass and the weight gradient use only those cells: the same products minus the
    multiplications by zero (3/4 of them for 2x2), i.e. a deconvolution of the compact grid
    with stride ``s * stride``.  The bottom gradient is computed for every cell, as Caffe's.
    """

    reverse_dimensions = True
    #: Set by the Net before each forward (None: a dense bottom).
    accepts_sparse_bottom = True
    _sparse: ConvGeometry | None = None  # the geometry the last forward used, if sparse

    def _output_spatial(self, in_spatial):
        return tuple(
            s * (i - 1) + d * (k - 1) + 1 - 2 * p
            for i, k, p, s, d in zip(in_spatial, self.kernel, self.pad, self.stride,
                                     self.dilation))

    def _sparse_geometry(self, n_bottoms: int) -> ConvGeometry | None:
        """The geometry of the compact grid (deconvolution with stride s * stride), or None."""
        spread = self.bottom_spread
        if spread is None or n_bottoms != 1 or len(spread) != self.n_spatial or max(spread) == 1:
            return None
        key = (spread, self.in_spatial)
        if self._cached.get("sparse_key") != key:
            g = ConvGeometry(self.out_spatial, self.kernel, self.pad,
                             [s * t for s, t in zip(spread, self.stride)], self.dilation)
            compact = tuple(-(-i // s) for i, s in zip(self.in_spatial, spread))
            self._cached["sparse_key"] = key
            self._cached["sparse_geometry"] = g if g.out == compact else None
        return self._cached["sparse_geometry"]

    def _operand(self, b, g: ConvGeometry, sparse: bool):
        """The bottom as (num, C, *positions of ``g``): the compact grid when ``sparse``."""
        x = self._as_conv(b.data, self.channels, self.in_spatial)
        if not sparse:
            return x
        grid = x[(slice(None), slice(None)) + tuple(slice(None, None, s) for s in self.bottom_spread)]
        if g.batch_inner:
            return grid  # to_columns copies it anyway
        compact = self._ws.get("compact", grid.shape, grid.dtype)
        copyto(compact, grid)
        return compact

    def forward_reference(self, bottom, top):
        """Caffe's DeconvolutionLayer::Forward_cpu (every bottom cell: no bottom_spread)."""
        self._sparse = None
        for b, t in zip(bottom, top):
            x, y = self._bottom_images(b.data), self._top_images(t.data)
            for n in range(self.num):
                y[n] = self._backward_gemm(x[n])
                if self.bias_term:
                    self._forward_bias(y[n])

    def backward_reference(self, top, propagate_down, bottom):
        """Caffe's DeconvolutionLayer::Backward_cpu."""
        for i, (b, t) in enumerate(zip(bottom, top)):
            x, dx = self._bottom_images(b.data), self._bottom_images(b.diff)
            dy = self._top_images(t.diff)
            for n in range(self.num):
                if self.bias_term and self.param_needs_gradient(1):
                    self._backward_bias(dy[n])
                if self.param_needs_gradient(0):
                    self._weight_gemm(dy[n], x[n])
                if propagate_down[i]:
                    dx[n] = self._forward_gemm(dy[n])

    def forward(self, bottom, top):
        if engine.reference():
            return self.forward_reference(bottom, top)
        sparse = self._sparse_geometry(len(bottom))
        self._sparse = sparse
        g = sparse or self._geometry
        w = self._weights3(self.blobs[0].data)
        for i, (b, t) in enumerate(zip(bottom, top)):
            y = self._as_conv(t.data, self.num_output, self.out_spatial)
            x4 = self._operand(b, g, sparse is not None)
            if g.batch_inner:
                x = to_columns(x4, g, self._ws, f"x{i}" if sparse is None else "x_sparse")
                if self.reuse_forward_columns:
                    self._cached[i] = x
                matmul_col2im(w.transpose(0, 2, 1), self._grouped(x), g, y, self._ws)
            else:
                x = self._per_image(x4, self.channels)
                if self.reuse_forward_columns:
                    self._cached[i] = x
                col = self._ws.get("col", (self.num, self.group, w.shape[2], x.shape[3]),
                                   x.dtype)
                matmul(w.transpose(0, 2, 1), x, col, axis=0)
                col2im(col.reshape(self.num, -1, x.shape[3]), g, y, self._ws)
            if self.bias_term:
                self._add_bias(y)

    def backward(self, top, propagate_down, bottom):
        if engine.reference():
            return self.backward_reference(top, propagate_down, bottom)
        g = self._geometry
        w = self._weights3(self.blobs[0].data)
        for i, (b, t) in enumerate(zip(bottom, top)):
            dy = self._as_conv(t.diff, self.num_output, self.out_spatial)
            if self.bias_term and self.param_needs_gradient(1):
                self._add_bias_grad(dy)
            dense_col = self._add_weight_grad_of(i, b, dy) if self.param_needs_gradient(0) else None
            if propagate_down[i]:
                col = dense_col if dense_col is not None else im2col(dy, g, self._ws, "dcol")
                if g.batch_inner:
                    dx = self._gemm(w, self._grouped(col), "dx")
                    from_columns(dx, g, self._as_conv(b.diff, self.channels, self.in_spatial))
                else:
                    col = col.reshape(self.num, self.group, -1, col.shape[2])
                    matmul(w, col, self._per_image(b.diff, self.channels), axis=0)

    def _add_weight_grad_of(self, i, b, dy):
        """weight diff += bottom (x) columns of top_diff, over the grid the forward used (the
        compact one only with the forward's own operand: the zeros are known only then).
        Returns the columns of top_diff when they are the full ones (backward reuses them)."""
        x = self._cached.get(i)
        if x is not None and x.dtype != dy.dtype:
            x = None
        sparse = self._sparse if x is not None else None
        g = sparse or self._geometry
        if x is None:
            x4 = self._operand(b, g, False)
            x = (to_columns(x4, g, self._ws, f"x{i}") if g.batch_inner
                 else self._per_image(x4, self.channels))
        col = im2col(dy, g, self._ws, "dcol" if sparse is None else "dcol_sparse")
        if g.batch_inner:
            self._add_weight_grad(self._grouped(x), self._grouped(col))
        else:
            self._add_weight_grad_per_image(x, col.reshape(self.num, self.group, -1, col.shape[2]))
        return col if sparse is None else None
