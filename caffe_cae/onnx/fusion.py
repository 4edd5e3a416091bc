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

* **Per-channel affine chains folded into the weights** (:func:`fold_affine_into_linear`):
  BatchNorm with stored statistics, Scale and Bias after a Convolution, Deconvolution or
  InnerProduct disappear into its weights and bias (ResNet, MobileNet: one Conv per block).

All change only the order in which float32 operations round (differences of a few ulp).
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


# ------------------------------------------------------------------------------------------
# Per-channel affine chains (BatchNorm, Scale, Bias at inference) folded into the weights


#: Ops that fold into a linear node's weights when their other operand is a per-output-channel
#: constant: (op, whether the linear output may be the second operand).
_FOLDABLE = {"Mul": True, "Add": True, "Sub": False, "Div": False}


def fold_affine_into_linear(graph, keep: set[str]) -> int:
    """Fold ``Mul``/``Add``/``Sub``/``Div`` by per-channel constants into the Conv,
    ConvTranspose or Gemm that feeds them (BatchNorm with stored statistics, Scale and Bias
    after a Convolution/InnerProduct); returns the number of nodes removed.

    ``graph``: a :class:`caffe_cae.onnx.graph.GraphBuilder` after conversion; ``keep``: tensor
    names that must stay (graph outputs).  A linear node's output folds only when that operation
    is its single reader and the constant varies along the output channels at most (scalars
    too); a Div by a constant with a zero, or any non-finite constant, is left alone.  Values
    change only by rounding (the product is folded before the sum instead of after it)."""
    removed = 0
    while True:
        initializers = {t.name: t for t in graph.initializers}
        readers: dict[str, list] = {}
        for node in graph.nodes:
            for name in node.input:
                readers.setdefault(name, []).append(node)
        for node in graph.nodes:
            fold = _plan_fold(node, readers, initializers, keep)
            if fold is not None:
                _apply_fold(graph, node, *fold, initializers)
                removed += 1
                break
        else:
            return removed


def _plan_fold(node, readers, initializers, keep):
    if node.op_type not in ("Conv", "ConvTranspose", "Gemm") or len(node.output) != 1:
        return None
    if node.op_type == "Gemm" and any(a.name in ("alpha", "beta", "transA", "transB") for a in node.attribute):
        return None
    if any(name not in initializers for name in node.input[1:]) or node.output[0] in keep:
        return None
    users = readers.get(node.output[0], [])
    if len(users) != 1 or users[0].op_type not in _FOLDABLE or len(users[0].input) != 2:
        return None
    user = users[0]
    position = list(user.input).index(node.output[0])
    other = user.input[1 - position]
    if other not in initializers or (position == 1 and not _FOLDABLE[user.op_type]) or other == node.output[0]:
        return None
    from onnx import numpy_helper

    weight = numpy_helper.to_array(initializers[node.input[1]])
    out_channels = _out_channels(node, weight)
    value = numpy_helper.to_array(initializers[other]).astype(np.float32)
    vector = _channel_vector(value, out_channels, 2 if node.op_type == "Gemm" else weight.ndim)
    if vector is None or not np.all(np.isfinite(vector)) or (user.op_type == "Div" and np.any(vector == 0)):
        return None
    return user, vector, weight


def _out_channels(node, weight) -> int:
    if node.op_type == "Conv":
        return weight.shape[0]
    if node.op_type == "Gemm":
        return weight.shape[1]
    group = next((a.i for a in node.attribute if a.name == "group"), 1)
    return weight.shape[1] * group


def _channel_vector(value: np.ndarray, channels: int, out_rank: int) -> np.ndarray | None:
    """``value`` as a (channels,) vector when it broadcasts along output axis 1 only."""
    if value.ndim > out_rank:
        return None
    full = (1,) * (out_rank - value.ndim) + value.shape
    if any(d != 1 for k, d in enumerate(full) if k != 1) or full[1] not in (1, channels):
        return None
    return np.broadcast_to(value.reshape(-1), (channels,)).astype(np.float32)


def _apply_fold(graph, node, user, vector, weight, initializers) -> None:
    from onnx import numpy_helper

    bias = (numpy_helper.to_array(initializers[node.input[2]]).astype(np.float32)
            if len(node.input) > 2 else np.zeros(len(vector), np.float32))
    if user.op_type == "Mul":
        weight, bias = weight * _weight_factor(node, weight, vector), bias * vector
    elif user.op_type == "Div":
        weight, bias = weight / _weight_factor(node, weight, vector), bias / vector
    else:
        bias = bias + vector if user.op_type == "Add" else bias - vector
    base = node.name or node.output[0]
    new_inputs = [node.input[0], graph.const(f"{base}/W_folded", weight.astype(np.float32)),
                  graph.const(f"{base}/b_folded", bias.astype(np.float32))]
    del node.input[:]
    node.input.extend(new_inputs)
    node.output[0] = user.output[0]
    graph.nodes.remove(user)
    used = {name for n in graph.nodes for name in n.input}
    graph.initializers[:] = [t for t in graph.initializers if t.name in used]


def _weight_factor(node, weight, factor):
    """``factor`` (per output channel) shaped to broadcast over the node's weight layout."""
    if node.op_type == "Conv":
        return factor.reshape((-1,) + (1,) * (weight.ndim - 1))
    if node.op_type == "Gemm":
        return factor.reshape(1, -1)
    group = next((a.i for a in node.attribute if a.name == "group"), 1)
    per_group = weight.shape[1]
    shaped = factor.reshape(group, 1, per_group, *(1,) * (weight.ndim - 2))
    return np.repeat(shaped, weight.shape[0] // group, axis=1).reshape((weight.shape[0], per_group) + (1,) * (weight.ndim - 2))
