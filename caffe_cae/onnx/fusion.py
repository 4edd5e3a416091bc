"""Export-time rewrites that give onnxruntime less work for the same values.

* **Top-left unpooling folded into the next Deconvolution.**  Unpooling without switches puts
  input cell ``i`` at ``i*s`` of a zero map; a Deconvolution (stride ``t``) then spreads map cell
  ``u`` to ``u*t + k*d - p``.  Together that is one ConvTranspose of the *pooled* input with
  stride ``s*t``: the multiplications by the zeros (3/4 of the work of the papers' decoders) and
  the unpooled map are gone.  Applies when the unpooled blob feeds only that Deconvolution and is
  not an output.
* **Deconvolution of a 1x1 map as Gemm** (+ Reshape): onnxruntime's ConvTranspose takes 4x as
  long for it.  (Stride-1 Deconvolution as a Conv with the flipped kernel was measured too and is
  slower than ConvTranspose in every geometry of the papers: it multiplies the zero padding.)

Both change only the order in which float32 products are summed (differences of a few ulp).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np



@dataclass(frozen=True)
class UnpoolIntoDeconv:
    """The Deconvolution (the key of :func:`plan_unpool_folds`' result) reads the top of top-left
    Unpooling ``unpool`` (a layer index); ``geometry``: the ConvTranspose attributes that
    replace both."""

    unpool: int
    geometry: dict


def plan_unpool_folds(flow, layers, needed_layers, output_versions, shapes) -> dict[int, UnpoolIntoDeconv]:
    """Deconvolution layer index -> the fold, for every pair of the net's dataflow
    (``flow.sparse_pairs``: a top-left Unpooling whose top only that layer reads) that the export
    needs, whose unpooled value is not an output and whose geometry ConvTranspose can express.
    ``shapes``: (layer index, top index) -> the blob shape."""
    folds = {}
    for d, u in sorted(flow.sparse_pairs.items()):
        if d not in needed_layers or (u, 0) in output_versions:
            continue
        if layers[d].type != "Deconvolution" or layers[d].n_spatial != 2:
            continue
        pooled, unpooled = shapes[flow.reads[u][0]], shapes[(u, 0)]
        geometry = folded_transpose_geometry(layers[u].sparse_top_stride(), layers[d], pooled[2:], unpooled[2:])
        if geometry is not None:
            folds[d] = UnpoolIntoDeconv(unpool=u, geometry=geometry)
    return folds


def folded_transpose_geometry(unpool_stride, deconv, pooled_hw, unpooled_hw):
    """ConvTranspose attributes (strides, pads, output_padding) of the fold, or None when the
    unpooled map's trailing zero rows/columns cannot be expressed (output_padding >= stride).
    The unpooling places input cell ``i`` at ``i * unpool_stride`` (no clamping)."""
    strides, pads_begin, pads_end, output_padding = [], [], [], []
    for n_in, n_up, s, t, p in zip(pooled_hw, unpooled_hw, unpool_stride, deconv.stride, deconv.pad):
        spread = (n_in - 1) * s + 1
        # The deconvolution of the unpooled map is (n_up - spread) * t cells longer than the
        # ConvTranspose of the pooled input with stride s*t; those cells get only the bias.
        extra = (n_up - spread) * t - p
        strides.append(s * t)
        pads_begin.append(p)
        pads_end.append(max(-extra, 0))
        output_padding.append(max(extra, 0))
    if any(o >= s for o, s in zip(output_padding, strides)):
        return None
    return dict(strides=strides, pads=pads_begin + pads_end, output_padding=output_padding)


def single_pixel_deconvolution_as_gemm(deconv, bottom_shape, weight, bias):
    """(B, bias row) of ``Gemm`` + ``Reshape`` equal to a Deconvolution of a 1x1 map, or None.

    A 1x1 input (the papers' ``deconv2`` after the decoder's InnerProduct) makes output cell
    ``k`` = x . W[:, :, k] + b: one matrix product with ``W`` as a (C_in, C_out*kh*kw) matrix.
    Only without pad, dilation and groups (the output is then the whole kernel)."""
    if (deconv.channel_axis != 1 or deconv.n_spatial == 0 or any(n != 1 for n in bottom_shape[2:])
            or any(deconv.pad) or any(d != 1 for d in deconv.dilation) or deconv.group != 1):
        return None
    c_in, c_out = weight.shape[:2]
    cells = int(np.prod(weight.shape[2:]))
    b = bias if bias is not None else np.zeros(c_out, np.float32)
    return weight.reshape(c_in, c_out * cells), np.repeat(b.astype(np.float32), cells)
