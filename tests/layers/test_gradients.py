"""Numerical gradient checks (float64, central differences) for EVERY registered layer type.

``CONFIGS`` is the table: one row per (layer type, configuration).  ``EXEMPT`` lists the types
that have no gradient to check, with the reason.  ``test_every_registered_type_is_covered``
fails as soon as a layer type is registered without a row here (and a row whose type is not
registered fails too).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pytest

from caffe_cae.layers import LAYERS
from caffe_cae.layers.base import Layer
from caffe_cae.layers.registry import register
from caffe_cae.proto import caffe_pb2
from caffe_cae.prototxt import parse_text
from caffe_cae.testing import GradientCheckError, check_gradients, check_in_place

TRAIN, TEST = caffe_pb2.TRAIN, caffe_pb2.TEST

#: Types without a gradient, and why.
EXEMPT = {
    "Input": "data layer: no bottoms",
    "HDF5Data": "data layer: no bottoms, reads files",
    "MemoryData": "data layer: no bottoms",
    "DummyData": "data layer: no bottoms",
    "Data": "data layer: no bottoms, reads a database",
    "ImageData": "data layer: no bottoms, reads image files",
    "WindowData": "data layer: no bottoms, reads image files",
    "Accuracy": "not differentiable; Caffe's backward aborts (NOT_IMPLEMENTED)",
    "Threshold": "a step function; Caffe's backward aborts (Not Implemented Yet)",
    "ArgMax": "outputs indices; Caffe's backward aborts (Not Implemented Yet)",
    "Parameter": "no computation: the top shares data and diff with the parameter blob "
                 "(tests/layers/test_indexing.py checks the sharing)",
    "HDF5Output": "no tops: writes its bottoms to a file; Caffe's backward does nothing",
    "PriorBox": "SSD: its boxes depend on the bottoms' shapes only (no backward in the fork)",
    "DetectionOutput": "SSD: selection by NMS, no backward in the fork",
    "DenseImageData": "data layer: no bottoms, reads images",
    "Python": "runs the module's own backward: checked in tests/layers/test_python_layer.py",
}


@dataclass
class Case:
    id: str
    type: str
    text: str  # LayerParameter body without name/type/bottom/top (added from the fields below)
    shapes: list
    values: list = field(default_factory=list)
    tops: int = 1
    phase: int = TEST
    tolerance: float = 1e-6
    ignored_tops: tuple = ()
    grad_scale: dict | None = None
    check_bottoms: tuple | None = None  # default: every bottom with allow_force_backward

    def layer_text(self) -> str:
        bottoms = "".join(f' bottom: "b{i}"' for i in range(len(self.shapes)))
        tops = "".join(f' top: "t{i}"' for i in range(self.tops))
        return f'name: "{self.id}" type: "{self.type}"{bottoms}{tops} {self.text}'


# -- value generators ------------------------------------------------------------------------


def labels(num_classes, ignore=None):
    """Integer class labels as floats; ``ignore``: that label on ~1/4 of the positions."""

    def make(rng, shape):
        values = rng.integers(0, num_classes, shape).astype(np.float64)
        if ignore is not None:
            values[rng.random(shape) < 0.25] = ignore
        return values

    return make


def uniform(low, high):
    return lambda rng, shape: rng.uniform(low, high, shape)


def away_from_zero(low, high):
    """|x| in [low, high] with random signs."""
    return lambda rng, shape: rng.uniform(low, high, shape) * rng.choice([-1.0, 1.0], shape)


def binary(rng, shape):
    return rng.integers(0, 2, shape).astype(np.float64)


def sequence_markers(rng, shape):
    """cont (T, N): 0/1 with 0 at t = 0, so the state a previous forward left has no effect."""
    values = binary(rng, shape)
    values[0] = 0
    return values


def probabilities(rng, shape):
    """Rows of positive probabilities summing to 1 (MultinomialLogisticLoss inputs)."""
    p = rng.uniform(0.1, 1.0, shape)
    return p / p.reshape(shape[0], -1).sum(axis=1).reshape((-1,) + (1,) * (len(shape) - 1))


def infogain_matrix(rng, shape):
    return rng.uniform(0, 1, shape)


RECURRENT = ('recurrent_param {{ num_output: {} weight_filler {{ type: "uniform" min: -0.5 max: 0.5 }} '
             'bias_filler {{ type: "uniform" min: -0.3 max: 0.3 }} {}}}')


def sce_targets_with_ignored(rng, shape):
    targets = rng.uniform(0, 1, shape)
    targets[rng.random(shape) < 0.3] = -1  # ignore_label: -1
    return targets


def pool_mask(in_h, in_w, kernel, stride):
    """A valid MAX Pooling mask (float index h*W + w inside each plane, one cell per window).

    Overlapping windows get distinct cells: when two windows share an argmax, unpooling writes
    one output twice and its backward (like Caffe's) is no longer the forward's adjoint.
    """

    def draw(rng, plane_shape):
        ph = np.arange(plane_shape[0])[:, None]
        pw = np.arange(plane_shape[1])[None, :]
        h = np.minimum(ph * stride + rng.integers(0, kernel, plane_shape), in_h - 1)
        w = np.minimum(pw * stride + rng.integers(0, kernel, plane_shape), in_w - 1)
        return h * in_w + w

    def make(rng, shape):
        planes = np.empty(shape)
        for n, c in np.ndindex(*shape[:2]):
            plane = draw(rng, shape[2:])
            while len(np.unique(plane)) < plane.size:
                plane = draw(rng, shape[2:])
            planes[n, c] = plane
        return planes

    return make


def contrastive_inputs(n, c, margin, legacy, seed=3):
    """a, b, sim with every pair's d (or d^2 for legacy) well away from the margin's kink."""
    rng = np.random.default_rng(seed)
    a = rng.normal(0, 0.5, (n, c, 1, 1))
    sim = np.tile([1.0, 0.0], n)[:n].reshape(n, 1, 1, 1)
    b = np.empty_like(a)
    for i in range(n):
        # dissimilar pairs alternate between inside the margin (active) and outside it
        target = 0.5 * margin if i % 4 != 3 else 1.5 * margin
        distance = np.sqrt(target) if legacy else target
        direction = rng.normal(size=(c, 1, 1))
        b[i] = a[i] + direction / np.linalg.norm(direction) * distance
    return [a, b, sim]


def rois(rows):
    """Fixed ROI rows [batch index, x1, y1, x2, y2] (ROIPooling's second bottom)."""
    return lambda rng, shape: np.array(rows, dtype=np.float64).reshape(shape)


def relu6_inputs(rng, shape):
    """Values on both sides of ReLU6's kinks (0 and 6), none within 0.1 of them."""
    values = rng.uniform(0.1, 2.9, shape) * rng.choice([-2.0, 2.0, 3.0], shape)
    values[np.abs(values - 6) < 0.1] += 0.3
    return values


def distinct_across(n_bottoms, shape, seed=5):
    """Values distinct across several bottoms (for Eltwise MAX), well separated."""
    rng = np.random.default_rng(seed)
    count = int(np.prod(shape))
    grid = rng.permutation((np.arange(n_bottoms * count) - n_bottoms * count / 2 + 0.5) * 0.05)
    return [grid[i * count:(i + 1) * count].reshape(shape) for i in range(n_bottoms)]


GAUSS = 'weight_filler { type: "gaussian" std: 0.5 } bias_filler { type: "gaussian" std: 0.5 }'


def conv(extra, filler=GAUSS):
    return f"convolution_param {{ {extra} {filler} }}"


# -- the table -------------------------------------------------------------------------------

CONFIGS = [
    # Convolution
    Case("conv_k3s1p0", "Convolution", conv("num_output: 4 kernel_size: 3"), [(2, 3, 5, 5)]),
    Case("conv_k3s2p1_odd", "Convolution", conv("num_output: 3 kernel_size: 3 stride: 2 pad: 1"),
         [(2, 2, 7, 6)]),
    Case("conv_group2", "Convolution", conv("num_output: 6 kernel_size: 3 pad: 1 group: 2"),
         [(1, 4, 5, 5)]),
    Case("conv_k5s2p2_group2", "Convolution",
         conv("num_output: 4 kernel_size: 5 stride: 2 pad: 2 group: 2"), [(2, 4, 7, 7)]),
    Case("conv_dilation2", "Convolution",
         conv("num_output: 2 kernel_size: 3 pad: 1 dilation: 2"), [(1, 2, 7, 6)]),
    Case("conv_rect", "Convolution",
         conv("num_output: 3 kernel_h: 3 kernel_w: 2 stride_h: 2 stride_w: 1 pad_h: 1 pad_w: 0"),
         [(2, 2, 6, 5)]),
    Case("conv_nobias", "Convolution",
         conv("num_output: 3 kernel_size: 3 pad: 1 bias_term: false",
              'weight_filler { type: "gaussian" std: 0.5 }'), [(1, 2, 4, 5)]),
    Case("conv_1x1", "Convolution", conv("num_output: 5 kernel_size: 1"), [(2, 3, 3, 2)]),
    Case("conv_xavier_fillers", "Convolution",
         conv("num_output: 2 kernel_size: 2 stride: 2",
              'weight_filler { type: "xavier" } bias_filler { type: "constant" value: 0.1 }'),
         [(1, 2, 5, 5)]),
    # Deconvolution (weights (C_in, C_out/group, kh, kw))
    Case("deconv_k4s1", "Deconvolution", conv("num_output: 2 kernel_size: 4"), [(2, 3, 3, 3)]),
    Case("deconv_k3s2p1", "Deconvolution", conv("num_output: 3 kernel_size: 3 stride: 2 pad: 1"),
         [(1, 2, 4, 3)]),
    Case("deconv_group2", "Deconvolution",
         conv("num_output: 6 kernel_size: 3 stride: 2 group: 2"), [(1, 4, 3, 3)]),
    Case("deconv_dilation2", "Deconvolution",
         conv("num_output: 2 kernel_size: 3 dilation: 2 pad: 1"), [(1, 2, 4, 4)]),
    Case("deconv_rect", "Deconvolution",
         conv("num_output: 2 kernel_h: 2 kernel_w: 3 stride_h: 2 stride_w: 1 pad_w: 1"),
         [(2, 2, 3, 4)]),
    Case("deconv_unpool_fixed", "Deconvolution",
         conv("num_output: 3 group: 3 kernel_size: 2 stride: 2 bias_term: false",
              'weight_filler { type: "gaussian" std: 1 }'), [(2, 3, 3, 3)]),
    Case("deconv_on_1x1", "Deconvolution", conv("num_output: 2 kernel_size: 5"), [(3, 4, 1, 1)]),
    # Pooling
    Case("pool_max_k2s2", "Pooling", "pooling_param { pool: MAX kernel_size: 2 stride: 2 }",
         [(2, 2, 6, 6)]),
    Case("pool_max_k2s2_7x7_mask", "Pooling",
         "pooling_param { pool: MAX kernel_size: 2 stride: 2 }", [(2, 2, 7, 7)], tops=2,
         ignored_tops=(1,)),
    Case("pool_max_k3s2_7x8", "Pooling", "pooling_param { pool: MAX kernel_size: 3 stride: 2 }",
         [(1, 3, 7, 8)]),
    Case("pool_max_k3s2p1", "Pooling",
         "pooling_param { pool: MAX kernel_size: 3 stride: 2 pad: 1 }", [(2, 1, 6, 6)]),
    Case("pool_max_k3s3p1_clip", "Pooling",
         "pooling_param { pool: MAX kernel_size: 3 stride: 3 pad: 1 }", [(1, 2, 8, 8)]),
    Case("pool_max_rect", "Pooling",
         "pooling_param { pool: MAX kernel_h: 3 kernel_w: 2 stride_h: 2 stride_w: 1 }",
         [(1, 2, 7, 5)]),
    Case("pool_max_global", "Pooling", "pooling_param { pool: MAX global_pooling: true }",
         [(2, 3, 4, 3)]),
    Case("pool_ave_k3s2p1", "Pooling",
         "pooling_param { pool: AVE kernel_size: 3 stride: 2 pad: 1 }", [(2, 2, 7, 7)]),
    Case("pool_ave_k2s2_odd", "Pooling", "pooling_param { pool: AVE kernel_size: 2 stride: 2 }",
         [(1, 2, 5, 5)]),
    Case("pool_ave_k3s3p1_clip", "Pooling",
         "pooling_param { pool: AVE kernel_size: 3 stride: 3 pad: 1 }", [(1, 1, 8, 8)]),
    Case("pool_ave_global", "Pooling", "pooling_param { pool: AVE global_pooling: true }",
         [(2, 3, 3, 4)]),
    # Unpooling (Noh's fork)
    Case("unpool_max_fixed", "Unpooling",
         "unpooling_param { unpool: MAX kernel_size: 2 stride: 2 unpool_size: 8 }",
         [(2, 2, 4, 4)]),
    Case("unpool_max_fixed_odd", "Unpooling",
         "unpooling_param { unpool: MAX kernel_size: 2 stride: 2 unpool_size: 7 }",
         [(1, 2, 4, 4)]),
    Case("unpool_max_mask", "Unpooling",
         "unpooling_param { unpool: MAX kernel_size: 2 stride: 2 unpool_size: 6 }",
         [(2, 3, 3, 3), (2, 3, 3, 3)], values=[None, pool_mask(6, 6, 2, 2)]),
    Case("unpool_max_mask_k3s2_7x7", "Unpooling",
         "unpooling_param { unpool: MAX kernel_size: 3 stride: 2 unpool_size: 7 }",
         [(1, 2, 3, 3), (1, 2, 3, 3)], values=[None, pool_mask(7, 7, 3, 2)]),
    Case("unpool_max_rect", "Unpooling",
         "unpooling_param { unpool: MAX kernel_size: 2 stride: 2 unpool_h: 6 unpool_w: 4 }",
         [(1, 2, 3, 2)]),
    Case("unpool_ave_k2s2", "Unpooling",
         "unpooling_param { unpool: AVE kernel_size: 2 stride: 2 unpool_size: 6 }",
         [(2, 2, 3, 3)]),
    Case("unpool_ave_k3s2", "Unpooling",
         "unpooling_param { unpool: AVE kernel_size: 3 stride: 2 unpool_size: 7 }",
         [(1, 2, 3, 3)]),
    # TILE's backward divides by the pool size although forward does not (Noh's code, CPU and
    # GPU): with non-overlapping full k x k windows the backward is exactly 1/k^2 of the truth.
    Case("unpool_tile_k2s2_quirk", "Unpooling",
         "unpooling_param { unpool: TILE kernel_size: 2 stride: 2 unpool_size: 6 }",
         [(1, 2, 3, 3)], grad_scale={0: 0.25}),
    # InnerProduct
    Case("ip_4d", "InnerProduct", f"inner_product_param {{ num_output: 5 {GAUSS} }}",
         [(2, 3, 2, 2)]),
    Case("ip_axis2", "InnerProduct", f"inner_product_param {{ num_output: 5 axis: 2 {GAUSS} }}",
         [(2, 3, 4)]),
    Case("ip_axis_neg1", "InnerProduct",
         f"inner_product_param {{ num_output: 3 axis: -1 {GAUSS} }}", [(2, 3, 4)]),
    Case("ip_transpose", "InnerProduct",
         f"inner_product_param {{ num_output: 4 transpose: true {GAUSS} }}", [(3, 6)]),
    Case("ip_nobias", "InnerProduct",
         'inner_product_param { num_output: 3 bias_term: false '
         'weight_filler { type: "gaussian" std: 0.5 } }', [(4, 7)]),
    Case("ip_sparse_filler", "InnerProduct",
         'inner_product_param { num_output: 6 weight_filler { type: "gaussian" sparse: 3 } }',
         [(2, 5)]),
    # Neurons
    Case("sigmoid", "Sigmoid", "", [(2, 3, 4, 5)]),
    Case("sigmoid_2d_odd", "Sigmoid", "", [(3, 7)], values=[uniform(-6, 6)]),
    Case("tanh", "TanH", "", [(2, 3, 3, 2)]),
    Case("relu", "ReLU", "", [(2, 3, 4, 5)]),
    Case("relu_leaky", "ReLU", "relu_param { negative_slope: 0.1 }", [(2, 3, 5)]),
    Case("dropout_test", "Dropout", "dropout_param { dropout_ratio: 0.5 }", [(2, 3, 4)]),
    Case("dropout_train", "Dropout", "dropout_param { dropout_ratio: 0.5 }", [(2, 3, 4, 5)],
         phase=TRAIN),
    Case("dropout_train_r02", "Dropout", "dropout_param { dropout_ratio: 0.2 }", [(3, 7)],
         phase=TRAIN),
    Case("power_sq_scale_shift", "Power", "power_param { power: 2 scale: 0.5 shift: 1 }",
         [(2, 3, 4)]),
    Case("power_default_identity", "Power", "", [(2, 5)]),
    Case("power_1_affine", "Power", "power_param { power: 1 scale: -2 shift: 3 }", [(2, 5)]),
    Case("power_0_constant", "Power", "power_param { power: 0 scale: 2 shift: 1 }", [(2, 5)]),
    Case("power_scale_0", "Power", "power_param { power: 3 scale: 0 shift: 2 }", [(2, 5)]),
    Case("power_3_shift0", "Power", "power_param { power: 3 scale: 0.7 }", [(2, 3, 2)],
         values=[away_from_zero(0.5, 1.5)]),
    Case("power_sq_shift0", "Power", "power_param { power: 2 scale: -1.5 }", [(2, 4)]),
    Case("power_sqrt_shift", "Power", "power_param { power: 0.5 scale: 1 shift: 2 }", [(2, 6)],
         values=[uniform(-1, 1)]),
    Case("power_neg1_shift0", "Power", "power_param { power: -1 }", [(3, 4)],
         values=[away_from_zero(1, 2)]),
    Case("power_frac_shift_scale", "Power", "power_param { power: 1.5 scale: 2 shift: 3 }",
         [(2, 5)], values=[uniform(-1, 1)]),
    Case("absval", "AbsVal", "", [(2, 3, 4)]),
    # Shapes and routing
    Case("reshape_0011", "Reshape", "reshape_param { shape { dim: 0 dim: 0 dim: 1 dim: 1 } }",
         [(2, 6)]),
    Case("reshape_neg1", "Reshape", "reshape_param { shape { dim: 0 dim: -1 dim: 4 } }",
         [(2, 3, 4, 2)]),
    Case("reshape_axis_num_axes", "Reshape",
         "reshape_param { shape { dim: 2 dim: 2 } axis: 1 num_axes: 1 }", [(2, 4, 3)]),
    Case("flatten", "Flatten", "", [(2, 3, 2, 2)]),
    Case("flatten_axis2", "Flatten", "flatten_param { axis: 2 }", [(2, 3, 4, 2)]),
    Case("flatten_end_axis", "Flatten", "flatten_param { axis: 1 end_axis: 2 }", [(2, 3, 4, 5)]),
    Case("split_3", "Split", "", [(2, 3, 2)], tops=3),
    Case("split_1", "Split", "", [(3, 4)], tops=1),
    Case("slice_points", "Slice", "slice_param { axis: 1 slice_point: 2 slice_point: 5 }",
         [(2, 6, 3, 2)], tops=3),
    Case("slice_even", "Slice", "slice_param { axis: 1 }", [(2, 6, 2)], tops=3),
    Case("slice_axis0", "Slice", "slice_param { axis: 0 slice_point: 1 }", [(3, 2, 2)], tops=2),
    Case("slice_dim_alias", "Slice", "slice_param { slice_dim: 2 slice_point: 2 }",
         [(2, 2, 5)], tops=2),
    Case("slice_neg_axis", "Slice", "slice_param { axis: -1 slice_point: 3 }", [(2, 3, 4)],
         tops=2),
    Case("concat_axis1", "Concat", "", [(2, 1, 3, 2), (2, 3, 3, 2), (2, 2, 3, 2)]),
    Case("concat_axis0", "Concat", "concat_param { axis: 0 }", [(1, 3, 2), (2, 3, 2)]),
    Case("concat_dim_alias", "Concat", "concat_param { concat_dim: 2 }",
         [(2, 2, 1), (2, 2, 3)]),
    Case("concat_neg_axis", "Concat", "concat_param { axis: -1 }", [(2, 3, 2), (2, 3, 4)]),
    Case("silence", "Silence", "", [(2, 3), (4,)], tops=0),
    Case("eltwise_sum", "Eltwise", "", [(2, 3, 4)] * 2),
    Case("eltwise_sum_coeff", "Eltwise",
         "eltwise_param { operation: SUM coeff: 1 coeff: -0.5 coeff: 2 }", [(2, 3, 2, 2)] * 3),
    Case("eltwise_prod", "Eltwise", "eltwise_param { operation: PROD }", [(2, 3, 4)] * 2),
    Case("eltwise_prod_3", "Eltwise", "eltwise_param { operation: PROD }", [(2, 5)] * 3),
    Case("eltwise_prod_unstable", "Eltwise",
         "eltwise_param { operation: PROD stable_prod_grad: false }", [(2, 5)] * 3,
         values=[away_from_zero(0.5, 1.5)] * 3),
    Case("eltwise_max_2", "Eltwise", "eltwise_param { operation: MAX }", [(2, 3, 4)] * 2,
         values=distinct_across(2, (2, 3, 4))),
    Case("eltwise_max_3", "Eltwise", "eltwise_param { operation: MAX }", [(2, 3, 2, 2)] * 3,
         values=distinct_across(3, (2, 3, 2, 2))),
    # Softmax and losses (labels/targets are never checked: allow_force_backward is False)
    Case("softmax", "Softmax", "", [(2, 5)]),
    Case("softmax_spatial", "Softmax", "", [(2, 4, 3, 2)]),
    Case("softmax_axis2", "Softmax", "softmax_param { axis: 2 }", [(2, 3, 4)]),
    Case("softmax_loss", "SoftmaxWithLoss", "", [(4, 5), (4,)], values=[None, labels(5)]),
    Case("softmax_loss_spatial", "SoftmaxWithLoss", "", [(2, 4, 3, 2), (2, 1, 3, 2)],
         values=[None, labels(4)]),
    Case("softmax_loss_ignore_valid", "SoftmaxWithLoss", "loss_param { ignore_label: 2 }",
         [(2, 4, 3, 2), (2, 1, 3, 2)], values=[None, labels(4, ignore=2)]),
    Case("softmax_loss_full", "SoftmaxWithLoss",
         "loss_param { ignore_label: 0 normalization: FULL }", [(2, 3, 2, 2), (2, 1, 2, 2)],
         values=[None, labels(3, ignore=0)]),
    Case("softmax_loss_batch_size", "SoftmaxWithLoss", "loss_param { normalization: BATCH_SIZE }",
         [(3, 4, 2, 1), (3, 1, 2, 1)], values=[None, labels(4)]),
    Case("softmax_loss_none", "SoftmaxWithLoss", "loss_param { normalization: NONE }",
         [(2, 3), (2,)], values=[None, labels(3)]),
    Case("softmax_loss_normalize_false", "SoftmaxWithLoss", "loss_param { normalize: false }",
         [(2, 3, 2, 2), (2, 1, 2, 2)], values=[None, labels(3)]),
    Case("softmax_loss_axis2", "SoftmaxWithLoss", "softmax_param { axis: 2 }",
         [(2, 3, 4), (2, 3)], values=[None, labels(4)]),
    Case("euclidean_loss", "EuclideanLoss", "", [(2, 3, 2), (2, 3, 2)]),
    Case("euclidean_loss_2d", "EuclideanLoss", "", [(4, 5), (4, 5)]),
    Case("euclidean_loss_shapes_differ", "EuclideanLoss", "", [(3, 4, 1, 1), (3, 4)]),
    Case("sce_loss", "SigmoidCrossEntropyLoss", "", [(2, 3, 4), (2, 3, 4)],
         values=[uniform(-4, 4), uniform(0, 1)]),
    Case("sce_loss_binary", "SigmoidCrossEntropyLoss", "", [(3, 1, 2, 2), (3, 1, 2, 2)],
         values=[None, binary]),
    Case("sce_loss_full", "SigmoidCrossEntropyLoss", "loss_param { normalization: FULL }",
         [(2, 5), (2, 5)], values=[None, uniform(0, 1)]),
    Case("sce_loss_ignore_valid", "SigmoidCrossEntropyLoss",
         "loss_param { ignore_label: -1 normalization: VALID }", [(2, 6), (2, 6)],
         values=[None, sce_targets_with_ignored]),
    Case("contrastive_legacy", "ContrastiveLoss",
         "contrastive_loss_param { margin: 1 legacy_version: true }",
         [(8, 3, 1, 1), (8, 3, 1, 1), (8, 1, 1, 1)],
         values=contrastive_inputs(8, 3, 1.0, legacy=True)),
    # Caffe's non-legacy backward divides by (d + 1e-4) instead of d: not the exact
    # derivative, so the relative error is ~1e-4/d (Caffe's own test uses 1e-2).
    Case("contrastive", "ContrastiveLoss", "contrastive_loss_param { margin: 2 }",
         [(8, 3, 1, 1), (8, 3, 1, 1), (8, 1, 1, 1)],
         values=contrastive_inputs(8, 3, 2.0, legacy=False), tolerance=1e-3),
    # -- ELU, BNLL, Exp, Log, Clip, Swish, Tile, Reduction, Crop, SPP, Im2col, Embed, Filter,
    #    BatchReindex (index/selector/reference bottoms get no gradient: check_bottoms)
    Case("elu", "ELU", "", [(2, 3, 4, 5)]),
    Case("elu_alpha05", "ELU", "elu_param { alpha: 0.5 }", [(2, 3, 4)],
         values=[away_from_zero(0.05, 2)]),
    Case("elu_alpha2_4d", "ELU", "elu_param { alpha: 2 }", [(1, 2, 3, 3)],
         values=[away_from_zero(0.05, 3)]),
    Case("bnll", "BNLL", "", [(2, 3, 4)], values=[uniform(-6, 6)]),
    Case("exp_default", "Exp", "", [(2, 3, 4)]),
    Case("exp_base2_scale_shift", "Exp", "exp_param { base: 2 scale: 0.5 shift: -1 }",
         [(2, 5)]),
    Case("exp_scale_only", "Exp", "exp_param { scale: -0.7 }", [(3, 4)]),
    Case("exp_e_shift", "Exp", "exp_param { shift: 0.5 }", [(2, 3, 2)]),
    Case("log_default", "Log", "", [(2, 3, 4)], values=[uniform(0.2, 3)]),
    Case("log_base10_scale_shift", "Log", "log_param { base: 10 scale: 2 shift: 0.5 }",
         [(2, 5)], values=[uniform(0.1, 2)]),
    Case("log_base2_scale", "Log", "log_param { base: 2 scale: 0.5 }", [(3, 4)],
         values=[uniform(0.5, 4)]),
    Case("clip", "Clip", "clip_param { min: -0.5 max: 0.8 }", [(2, 3, 4)]),
    Case("clip_narrow", "Clip", "clip_param { min: 0.15 max: 0.45 }", [(4, 5)]),
    Case("swish", "Swish", "", [(2, 3, 4, 5)]),
    Case("swish_beta", "Swish", "swish_param { beta: 1.5 }", [(3, 5)]),
    Case("swish_beta_neg", "Swish", "swish_param { beta: -0.8 }", [(2, 6)]),
    Case("tile_axis1", "Tile", "tile_param { axis: 1 tiles: 3 }", [(2, 3, 2, 2)]),
    Case("tile_axis2", "Tile", "tile_param { axis: 2 tiles: 2 }", [(2, 2, 3, 2)]),
    Case("tile_axis0", "Tile", "tile_param { axis: 0 tiles: 2 }", [(2, 3)]),
    Case("tile_axis_neg1", "Tile", "tile_param { axis: -1 tiles: 4 }", [(2, 3, 2)]),
    Case("reduction_sum_all", "Reduction", "", [(2, 3, 4)]),
    Case("reduction_asum_axis1", "Reduction",
         "reduction_param { operation: ASUM axis: 1 coeff: 2 }", [(2, 3, 4)],
         values=[away_from_zero(0.1, 2)]),
    Case("reduction_sumsq_axis2", "Reduction", "reduction_param { operation: SUMSQ axis: 2 }",
         [(2, 3, 4, 2)]),
    Case("reduction_mean_neg1", "Reduction",
         "reduction_param { operation: MEAN axis: -1 coeff: -0.5 }", [(2, 3, 4)]),
    Case("reduction_sum_coeff", "Reduction", "reduction_param { axis: 1 coeff: 3 }",
         [(3, 2, 2)]),
    Case("crop_axis2_offsets", "Crop", "crop_param { axis: 2 offset: 1 offset: 2 }",
         [(2, 3, 6, 7), (2, 3, 4, 4)], check_bottoms=(0,)),
    Case("crop_axis1_one_offset", "Crop", "crop_param { axis: 1 offset: 1 }",
         [(2, 4, 5, 5), (2, 2, 3, 3)], check_bottoms=(0,)),
    Case("crop_default", "Crop", "", [(2, 3, 5, 5), (1, 1, 3, 2)], check_bottoms=(0,)),
    Case("crop_axis0", "Crop", "crop_param { axis: 0 offset: 1 }", [(3, 4), (2, 2)],
         check_bottoms=(0,)),
    Case("spp_max_h3", "SPP", "spp_param { pyramid_height: 3 pool: MAX }", [(2, 2, 7, 9)]),
    Case("spp_ave_h2", "SPP", "spp_param { pyramid_height: 2 pool: AVE }", [(2, 3, 6, 6)]),
    Case("spp_max_h1", "SPP", "spp_param { pyramid_height: 1 }", [(2, 3, 4, 5)]),
    Case("spp_ave_h3_odd", "SPP", "spp_param { pyramid_height: 3 pool: AVE }", [(1, 2, 9, 7)]),
    Case("im2col_k3p1", "Im2col", "convolution_param { kernel_size: 3 pad: 1 }",
         [(2, 3, 5, 6)]),
    Case("im2col_k2s2", "Im2col", "convolution_param { kernel_size: 2 stride: 2 }",
         [(1, 2, 5, 4)]),
    Case("im2col_dilation_rect", "Im2col",
         "convolution_param { kernel_h: 2 kernel_w: 3 dilation: 2 pad_h: 1 stride_h: 1 stride_w: 2 }",
         [(2, 2, 6, 7)]),
    Case("im2col_1d_axis2", "Im2col", "convolution_param { kernel_size: 3 axis: 2 }",
         [(2, 3, 2, 6)]),
    Case("embed", "Embed",
         'embed_param { num_output: 4 input_dim: 7 weight_filler { type: "uniform" min: -1 '
         'max: 1 } bias_filler { type: "gaussian" std: 0.5 } }',
         [(2, 3)], values=[labels(7)], check_bottoms=()),
    Case("embed_nobias_repeats", "Embed",
         'embed_param { num_output: 3 input_dim: 3 bias_term: false '
         'weight_filler { type: "gaussian" } }',
         [(5,)], values=[np.array([2.0, 0.0, 2.0, 1.0, 2.0])], check_bottoms=()),
    Case("filter_two", "Filter", "", [(5, 3, 2, 2), (5, 4), (5,)], tops=2,
         values=[None, None, np.array([1.0, 0.0, 1.0, 1.0, 0.0])], check_bottoms=(0, 1)),
    Case("filter_selector_4d", "Filter", "", [(4, 3), (4, 1, 1, 1)],
         values=[None, np.array([0.0, 2.0, 0.0, -1.0])], check_bottoms=(0,)),
    Case("batch_reindex", "BatchReindex", "", [(4, 3, 2), (6,)],
         values=[None, np.array([2.0, 0.0, 3.0, 2.0, 2.0, 1.0])], check_bottoms=(0,)),
    Case("batch_reindex_subset", "BatchReindex", "", [(5, 2), (2,)],
         values=[None, np.array([4.0, 1.0])], check_bottoms=(0,)),
    # -- recurrent (RNN, LSTM, LSTMUnit), classification losses (InfogainLoss, HingeLoss,
    # MultinomialLogisticLoss); HDF5Output is exempt.  Recurrent layers: cont gets no diff, and
    # like Caffe's unrolled net no diff flows into exposed initial states (bottoms 2+) nor
    # out of the exposed final-state tops (ignored).
    Case("rnn", "RNN", RECURRENT.format(4, ""), [(3, 2, 3), (3, 2)],
         values=[None, sequence_markers]),
    Case("rnn_4d_input", "RNN", RECURRENT.format(3, ""), [(4, 3, 2, 2), (4, 3)],
         values=[None, sequence_markers]),
    Case("rnn_static", "RNN", RECURRENT.format(3, ""), [(3, 2, 2), (3, 2), (2, 4)],
         values=[None, sequence_markers]),
    Case("rnn_expose_hidden", "RNN", RECURRENT.format(3, "expose_hidden: true "),
         [(3, 2, 2), (3, 2), (1, 2, 3)], values=[None, binary], tops=2, ignored_tops=(1,),
         check_bottoms=(0,)),
    Case("lstm", "LSTM", RECURRENT.format(3, ""), [(4, 2, 3), (4, 2)],
         values=[None, sequence_markers]),
    Case("lstm_static", "LSTM", RECURRENT.format(2, ""), [(3, 2, 3), (3, 2), (2, 2, 2)],
         values=[None, sequence_markers]),
    Case("lstm_expose_hidden", "LSTM", RECURRENT.format(3, "expose_hidden: true "),
         [(3, 2, 2), (3, 2), (1, 2, 3), (1, 2, 3)], values=[None, binary], tops=3,
         ignored_tops=(1, 2), check_bottoms=(0,)),
    Case("lstm_expose_hidden_static", "LSTM", RECURRENT.format(2, "expose_hidden: true "),
         [(2, 3, 2), (2, 3), (3, 2), (1, 3, 2), (1, 3, 2)], values=[None, binary], tops=3,
         ignored_tops=(1, 2), check_bottoms=(0, 2)),
    Case("lstm_unit", "LSTMUnit", "", [(1, 3, 4), (1, 3, 16), (1, 3)],
         values=[None, None, lambda rng, shape: np.array([[1.0, 0.0, 1.0]])], tops=2),
    Case("infogain_loss_h_bottom", "InfogainLoss", "", [(4, 5), (4,), (5, 5)],
         values=[None, labels(5), infogain_matrix], check_bottoms=(0,)),
    Case("infogain_loss_spatial_ignore", "InfogainLoss", "loss_param { ignore_label: 1 }",
         [(2, 3, 2, 2), (2, 1, 2, 2), (3, 3)], values=[None, labels(3, ignore=1), infogain_matrix],
         check_bottoms=(0,)),
    Case("infogain_loss_axis2_full", "InfogainLoss",
         "infogain_loss_param { axis: 2 } loss_param { normalization: FULL }",
         [(2, 3, 4), (2, 3), (4, 4)], values=[None, labels(4), infogain_matrix], check_bottoms=(0,)),
    # prob top: not a loss, its diff is ignored by Caffe's backward
    Case("infogain_loss_prob_top", "InfogainLoss", "loss_weight: 1 loss_weight: 0",
         [(3, 4), (3,), (4, 4)], values=[None, labels(4), infogain_matrix], tops=2,
         ignored_tops=(1,), check_bottoms=(0,)),
    Case("hinge_loss_l1", "HingeLoss", "", [(4, 5), (4,)],
         values=[away_from_zero(1.2, 2.5), labels(5)]),
    Case("hinge_loss_l2", "HingeLoss", "hinge_loss_param { norm: L2 }", [(3, 2, 2, 1), (3,)],
         values=[None, labels(4)]),
    Case("multinomial_logistic_loss", "MultinomialLogisticLoss", "", [(4, 5), (4,)],
         values=[probabilities, labels(5)]),
    Case("multinomial_logistic_loss_4d", "MultinomialLogisticLoss", "", [(3, 2, 2, 1), (3, 1, 1, 1)],
         values=[probabilities, labels(4)]),
    # -- BatchNorm, Scale, Bias, LRN, MVN, PReLU
    Case("bn_train_batch", "BatchNorm",
         "batch_norm_param { moving_average_fraction: 0.9 eps: 0.001 }", [(3, 2, 3, 4)],
         phase=TRAIN),
    Case("bn_train_2d", "BatchNorm", "batch_norm_param { moving_average_fraction: 0.5 }",
         [(5, 3)], phase=TRAIN),
    Case("bn_test_batchstats", "BatchNorm", "batch_norm_param { use_global_stats: false }",
         [(4, 3, 2, 2)]),
    # Global statistics as created (s = 0: mean = var = 0): y = x / sqrt(eps).
    Case("bn_test_global", "BatchNorm", "batch_norm_param { eps: 0.5 }", [(2, 3, 2, 2)]),
    Case("bn_train_global", "BatchNorm", "batch_norm_param { use_global_stats: true eps: 0.1 }",
         [(2, 3, 4)], phase=TRAIN),
    Case("scale_learned", "Scale",
         'scale_param { filler { type: "uniform" min: 0.5 max: 1.5 } }', [(2, 3, 4)]),
    Case("scale_bias_term", "Scale",
         'scale_param { filler { type: "gaussian" } bias_term: true '
         'bias_filler { type: "gaussian" } }', [(2, 3, 2, 2)]),
    Case("scale_axis1_numaxes2", "Scale",
         'scale_param { num_axes: 2 filler { type: "gaussian" } }', [(2, 3, 4, 2)]),
    Case("scale_axis_neg2_to_end", "Scale",
         'scale_param { axis: -2 num_axes: -1 filler { type: "gaussian" } }', [(2, 3, 4, 2)]),
    Case("scale_scalar_bias", "Scale",
         'scale_param { num_axes: 0 filler { type: "gaussian" } bias_term: true '
         'bias_filler { type: "gaussian" } }', [(2, 3, 2)]),
    Case("scale_bottom", "Scale", "", [(2, 3, 4), (3, 4)]),
    Case("scale_bottom_axis0_bias", "Scale",
         'scale_param { axis: 0 bias_term: true bias_filler { type: "gaussian" } }',
         [(3, 2, 4), (3,)]),
    Case("scale_bottom_scalar", "Scale", "", [(2, 3), ()]),
    Case("bias_learned", "Bias", 'bias_param { filler { type: "gaussian" } }', [(2, 3, 4)]),
    Case("bias_axis2_to_end", "Bias",
         'bias_param { axis: 2 num_axes: -1 filler { type: "gaussian" } }', [(2, 3, 4, 5)]),
    Case("bias_scalar", "Bias", 'bias_param { num_axes: 0 filler { type: "gaussian" } }',
         [(2, 3)]),
    Case("bias_bottom", "Bias", "", [(2, 3, 4), (3, 4)]),
    Case("bias_bottom_axis0", "Bias", "bias_param { axis: 0 }", [(3, 2, 2), (3, 2)]),
    Case("lrn_across5", "LRN", "lrn_param { local_size: 5 alpha: 0.5 beta: 0.75 }",
         [(2, 7, 3, 3)]),
    Case("lrn_across3_k2", "LRN", "lrn_param { local_size: 3 alpha: 0.3 beta: 0.5 k: 2 }",
         [(2, 4, 2, 3)]),
    Case("lrn_across7_few_channels", "LRN", "lrn_param { local_size: 7 alpha: 1 }",
         [(1, 3, 2, 2)]),
    Case("lrn_within3", "LRN",
         "lrn_param { local_size: 3 alpha: 0.5 beta: 0.75 norm_region: WITHIN_CHANNEL k: 3 }",
         [(2, 2, 4, 5)]),
    Case("lrn_within5_small_map", "LRN",
         "lrn_param { local_size: 5 alpha: 2 beta: 0.6 norm_region: WITHIN_CHANNEL }",
         [(1, 2, 3, 4)]),
    Case("mvn_default", "MVN", "", [(2, 3, 4, 5)]),
    Case("mvn_mean_only", "MVN", "mvn_param { normalize_variance: false }", [(2, 3, 3, 2)]),
    Case("mvn_across", "MVN", "mvn_param { across_channels: true }", [(2, 3, 2, 3)]),
    Case("mvn_2d_legacy_top", "MVN", "mvn_param { across_channels: true }", [(3, 5)]),
    # Caffe's backward drops eps from the derivative of 1/(std + eps): relative error ~eps/std.
    Case("mvn_eps_large", "MVN", "mvn_param { eps: 0.001 }", [(2, 2, 3, 3)], tolerance=1e-3),
    Case("prelu", "PReLU", 'prelu_param { filler { type: "uniform" min: 0.05 max: 0.5 } }',
         [(2, 3, 3, 4)]),
    Case("prelu_shared", "PReLU", "prelu_param { channel_shared: true }", [(2, 3, 2, 2)]),
    Case("prelu_2d", "PReLU", 'prelu_param { filler { type: "gaussian" } }', [(4, 3)]),
    # -- fork layers
    # SSD's Normalize: the fork's bottom gradient is exact for a shared scale, and for
    # per-channel scales only when they are equal (constant fillers here).
    Case("normalize_across_shared", "Normalize",
         'norm_param { scale_filler { type: "uniform" min: 0.5 max: 1.5 } }', [(2, 3, 4, 5)]),
    Case("normalize_across_per_channel", "Normalize",
         'norm_param { channel_shared: false scale_filler { type: "constant" value: 0.7 } }',
         [(2, 3, 2, 3)]),
    Case("normalize_spatial_per_channel", "Normalize",
         'norm_param { across_spatial: false channel_shared: false '
         'scale_filler { type: "constant" value: 20 } }', [(2, 4, 3, 2)]),
    Case("normalize_spatial_shared_2d", "Normalize",
         'norm_param { across_spatial: false scale_filler { type: "uniform" min: 0.5 max: 2 } }',
         [(3, 5)]),
    Case("permute_nchw_nhwc", "Permute", "permute_param { order: 0 order: 2 order: 3 order: 1 }",
         [(2, 3, 4, 5)]),
    Case("permute_partial_order", "Permute", "permute_param { order: 3 order: 1 }", [(2, 3, 2, 4)]),
    Case("permute_identity", "Permute", "permute_param { order: 0 order: 1 }", [(2, 3, 2)]),
    # SegNet's Upsample (the mask from MAX pooling, disjoint windows)
    Case("upsample_scale2", "Upsample", "upsample_param { scale: 2 }", [(2, 3, 3, 4), (2, 3, 3, 4)],
         values=[None, pool_mask(6, 8, 2, 2)]),
    Case("upsample_pad_out_h", "Upsample", "upsample_param { scale: 2 pad_out_h: true }",
         [(1, 2, 3, 3), (1, 2, 3, 3)], values=[None, pool_mask(5, 6, 2, 2)]),
    Case("upsample_h_w", "Upsample", "upsample_param { upsample_h: 7 upsample_w: 7 }",
         [(1, 2, 3, 3), (1, 2, 3, 3)], values=[None, pool_mask(7, 7, 3, 2)]),
    # Noh's / SegNet's BN (parameter gradients assigned, as in the forks)
    Case("bn_learn", "BN", 'bn_param { scale_filler { type: "uniform" min: 0.5 max: 1.5 } '
         'shift_filler { type: "gaussian" std: 1 } }', [(3, 2, 3, 4)]),
    Case("bn_learn_fc", "BN", 'bn_param { scale_filler { type: "uniform" min: 0.5 max: 1.5 } '
         'shift_filler { type: "constant" value: 0.001 } }', [(5, 3, 1, 1)]),
    Case("bn_inference", "BN", 'bn_param { bn_mode: INFERENCE scale_filler { type: "uniform" '
         'min: 0.5 max: 1.5 } shift_filler { type: "gaussian" std: 1 } }', [(2, 3, 3, 2)]),
    Case("bn_learn_stats_tops", "BN", 'bn_param { scale_filler { type: "constant" value: 1.5 } }',
         [(2, 2, 3, 3)], tops=3, ignored_tops=(1, 2)),
    # py-faster-rcnn's ROIPooling (the ROIs get no gradient)
    Case("roi_pooling", "ROIPooling",
         "roi_pooling_param { pooled_h: 3 pooled_w: 2 spatial_scale: 0.125 }",
         [(2, 3, 7, 8), (4, 5)], values=[None, rois([[0, 2, 3, 40, 30], [1, 0, 0, 63, 47],
                                                     [0, 17.5, 8, 18, 9], [1, -10, 20, 30, 100]])]),
    Case("roi_pooling_overlapping_bins", "ROIPooling",
         "roi_pooling_param { pooled_h: 4 pooled_w: 4 spatial_scale: 1 }", [(1, 2, 6, 6), (2, 5)],
         values=[None, rois([[0, 1, 1, 3, 4], [0, 0, 0, 5, 5]])]),
    # DeepLab's / PSPNet's Interp
    Case("interp_zoom3", "Interp", "interp_param { zoom_factor: 3 }", [(2, 2, 3, 4)]),
    Case("interp_shrink_cropped", "Interp",
         "interp_param { shrink_factor: 2 pad_beg: -1 pad_end: -1 }", [(1, 2, 7, 8)]),
    Case("interp_height_width", "Interp", "interp_param { height: 5 width: 2 }", [(1, 2, 3, 4)]),
    Case("interp_second_bottom", "Interp", "", [(1, 2, 3, 4), (1, 1, 6, 7)]),
    Case("interp_shrink_zoom", "Interp", "interp_param { shrink_factor: 2 zoom_factor: 2 }",
         [(1, 2, 5, 6)]),
    Case("interp_same_size", "Interp", "interp_param { height: 3 width: 4 }", [(1, 2, 3, 4)]),
    Case("relu6", "ReLU6", "", [(2, 3, 4, 5)], values=[relu6_inputs]),
    Case("relu6_leaky", "ReLU6", "relu6_param { negative_slope: 0.1 }", [(2, 3, 5)],
         values=[relu6_inputs]),
    Case("shuffle_channel_g3", "ShuffleChannel", "shuffle_channel_param { group: 3 }",
         [(2, 6, 2, 3)]),
    Case("depthwise_conv", "DepthwiseConvolution",
         conv("num_output: 3 group: 3 kernel_size: 3 pad: 1 stride: 2"), [(2, 3, 5, 6)]),
    Case("dropout_scale_train_false_train", "Dropout",
         "dropout_param { dropout_ratio: 0.3 scale_train: false }", [(2, 3, 4)], phase=TRAIN),
    Case("dropout_scale_train_false_test", "Dropout",
         "dropout_param { dropout_ratio: 0.3 scale_train: false }", [(2, 3, 4)]),
    Case("dropout_sample_weights_test", "Dropout",
         "dropout_param { dropout_ratio: 0.4 sample_weights_test: true }", [(2, 5)]),
    Case("softmax_loss_segnet_class_weighting", "SoftmaxWithLoss",
         "loss_param { weight_by_label_freqs: true class_weighting: 0.5 class_weighting: 2 "
         "class_weighting: 1.5 ignore_label: 1 }", [(2, 3, 2, 2), (2, 1, 2, 2)],
         values=[None, labels(3, ignore=1)]),
    Case("pool_max_ceil_mode_false", "Pooling",
         "pooling_param { pool: MAX kernel_size: 3 stride: 2 pad: 1 ceil_mode: false }",
         [(1, 2, 6, 6)]),
]


def _case_id(case):
    return case.id


@pytest.mark.usefixtures("each_engine")
@pytest.mark.parametrize("case", CONFIGS, ids=_case_id)
def test_layer_gradient(case):
    assert case.type in LAYERS, f"layer type {case.type!r} is not registered"
    report = check_gradients(case.layer_text(), case.shapes, case.values, phase=case.phase,
                             tolerance=case.tolerance, ignored_tops=case.ignored_tops,
                             grad_scale=case.grad_scale, check_bottoms=case.check_bottoms)
    assert report.checked > 0 or case.type == "Silence"


# Layers Caffe runs in place with an exact backward (the CAE nets use in-place Sigmoid).
IN_PLACE = [
    ("sigmoid", "Sigmoid", "", TEST),
    ("tanh", "TanH", "", TEST),
    ("relu", "ReLU", "", TEST),
    ("relu_leaky", "ReLU", "relu_param { negative_slope: 0.1 }", TEST),
    ("dropout_test", "Dropout", "", TEST),
    ("dropout_train", "Dropout", "dropout_param { dropout_ratio: 0.3 }", TRAIN),
    ("elu", "ELU", "", TEST),
    ("elu_alpha05", "ELU", "elu_param { alpha: 0.5 }", TEST),
    ("exp", "Exp", "exp_param { base: 2 scale: 0.5 shift: -1 }", TEST),
    ("swish", "Swish", "swish_param { beta: 1.5 }", TEST),
    ("batchnorm_train", "BatchNorm", "", TRAIN),
    ("batchnorm_test", "BatchNorm", "batch_norm_param { use_global_stats: false }", TEST),
    ("scale_bias", "Scale",
     'scale_param { filler { type: "gaussian" } bias_term: true bias_filler { type: "gaussian" } }',
     TEST),
    ("bias", "Bias", 'bias_param { filler { type: "gaussian" } }', TEST),
    ("prelu", "PReLU", 'prelu_param { filler { type: "gaussian" } }', TEST),
    # fork layers that DeconvNet, SegNet and MobileNet-v2 ports run in place
    ("relu6", "ReLU6", "", TEST),
    ("bn_learn", "BN", 'bn_param { scale_filler { type: "constant" value: 2 } }', TEST),
    ("bn_inference", "BN", 'bn_param { bn_mode: INFERENCE scale_filler { type: "constant" value: 2 } '
     'shift_filler { type: "constant" value: 0.5 } }', TEST),
]


@pytest.mark.usefixtures("each_engine")
@pytest.mark.parametrize("type_name,text,phase", [c[1:] for c in IN_PLACE],
                         ids=[c[0] for c in IN_PLACE])
def test_in_place_matches_out_of_place(type_name, text, phase):
    assert type_name in LAYERS, f"layer type {type_name!r} is not registered"
    check_in_place(f'name: "l" type: "{type_name}" bottom: "x" top: "x" {text}', (2, 3, 4, 5),
                   phase=phase)


def test_every_registered_type_is_covered():
    covered = {case.type for case in CONFIGS}
    missing = sorted(set(LAYERS) - covered - set(EXEMPT))
    assert not missing, f"registered layer types without a gradient configuration: {missing}"


def test_table_ids_are_unique_and_parse():
    ids = [case.id for case in CONFIGS]
    assert len(ids) == len(set(ids))
    for case in CONFIGS:
        parse_text(case.layer_text(), caffe_pb2.LayerParameter, case.id)
    assert not {case.type for case in CONFIGS} & set(EXEMPT)


# -- the checker checks: fake layers registered only inside these tests ---------------------


class _Scale3(Layer):
    """y = 3x with a bias-like parameter p: y = 3x + p (p shaped like one sample)."""

    exact_bottoms = 1
    exact_tops = 1
    wrong_bottom = False  # backward gives 2*dy instead of 3*dy
    accumulate_bottom = False  # bottom diff += instead of =
    assign_param = False  # param diff = instead of +=

    def setup(self, bottom_shapes):
        return [tuple(bottom_shapes[0][1:])]

    def reshape(self, bottom_shapes):
        return [tuple(bottom_shapes[0])]

    def fill_params(self, rng):
        self.blobs[0].data[...] = rng.standard_normal(self.blobs[0].shape)

    def forward(self, bottom, top):
        top[0].data[...] = 3 * bottom[0].data + self.blobs[0].data

    def backward(self, top, propagate_down, bottom):
        factor = 2 if self.wrong_bottom else 3
        if propagate_down[0]:
            if self.accumulate_bottom:
                bottom[0].diff[...] += factor * top[0].diff
            else:
                bottom[0].diff[...] = factor * top[0].diff
        grad = top[0].diff.sum(axis=0)
        if self.assign_param:
            self.blobs[0].diff[...] = grad
        else:
            self.blobs[0].diff[...] += grad


class _Square(Layer):
    """y = x^2 whose backward reads the bottom: right out of place, wrong in place."""

    exact_bottoms = 1
    exact_tops = 1
    modify_bottom = False

    def reshape(self, bottom_shapes):
        return [tuple(bottom_shapes[0])]

    def forward(self, bottom, top):
        x = bottom[0].data
        top[0].data[...] = x * x
        if self.modify_bottom:
            x += 0.0 * x + 1e-3

    def backward(self, top, propagate_down, bottom):
        bottom[0].diff[...] = 2 * bottom[0].data * top[0].diff


class _Kinked(Layer):
    """y = |x| with the right gradient, flagged as a kink layer."""

    exact_bottoms = 1
    exact_tops = 1
    gradient_check = "kink"

    def reshape(self, bottom_shapes):
        return [tuple(bottom_shapes[0])]

    def forward(self, bottom, top):
        top[0].data[...] = np.abs(bottom[0].data)

    def backward(self, top, propagate_down, bottom):
        bottom[0].diff[...] = np.sign(bottom[0].data) * top[0].diff


class _HalfLoss(Layer):
    """loss = sum(x^2)/2; ``ignore_weight`` forgets to multiply by the top diff (loss weight)."""

    exact_bottoms = 1
    exact_tops = 1
    is_loss = True
    ignore_weight = False

    def reshape(self, bottom_shapes):
        return [()]

    def forward(self, bottom, top):
        top[0].data[...] = 0.5 * np.sum(bottom[0].data ** 2)

    def backward(self, top, propagate_down, bottom):
        weight = 1.0 if self.ignore_weight else top[0].diff
        bottom[0].diff[...] = weight * bottom[0].data


@pytest.fixture
def fake_layer():
    """Register test-only layer classes; they are removed from the registry afterwards."""
    names = []

    def make(name, base, **attrs):
        cls = register(name)(type(name, (base,), attrs))
        names.append(name)
        return cls

    yield make
    for name in names:
        LAYERS.pop(name, None)


def _text(type_name):
    return f'name: "fake" type: "{type_name}" bottom: "x" top: "y"'


def test_checker_accepts_a_correct_layer(fake_layer):
    fake_layer("GradcheckScale3", _Scale3)
    report = check_gradients(_text("GradcheckScale3"), [(2, 3, 4)])
    assert report.checked == 24 + 12 and report.max_scaled_error < 1e-8


@pytest.mark.parametrize("flaw", ["wrong_bottom", "accumulate_bottom", "assign_param"])
def test_checker_fails_on_a_wrong_backward(fake_layer, flaw):
    fake_layer("GradcheckScale3Flawed", _Scale3, **{flaw: True})
    with pytest.raises(GradientCheckError, match=r"layer 'fake' \(GradcheckScale3Flawed\)"):
        check_gradients(_text("GradcheckScale3Flawed"), [(2, 3, 4)])


def test_checker_fails_when_a_loss_ignores_its_weight(fake_layer):
    fake_layer("GradcheckLossOk", _HalfLoss)
    check_gradients(_text("GradcheckLossOk"), [(3, 2)])
    fake_layer("GradcheckLossNoWeight", _HalfLoss, ignore_weight=True)
    with pytest.raises(GradientCheckError, match="bottom 0 gradient mismatch"):
        check_gradients(_text("GradcheckLossNoWeight"), [(3, 2)])


def test_checker_draws_kink_layers_away_from_kinks(fake_layer):
    fake_layer("GradcheckKinked", _Kinked)
    report = check_gradients(_text("GradcheckKinked"), [(3, 4, 5)])
    assert report.blobs[0].skipped_kinks == 0 and report.checked == 60


def test_checker_refuses_inputs_sitting_on_kinks(fake_layer):
    fake_layer("GradcheckKinkedZeros", _Kinked)
    with pytest.raises(GradientCheckError, match="sit on a kink"):
        check_gradients(_text("GradcheckKinkedZeros"), [(2, 3)], [np.zeros((2, 3))])


def test_checker_grad_scale_is_applied(fake_layer):
    fake_layer("GradcheckScaledBackward", _Scale3, wrong_bottom=True)
    check_gradients(_text("GradcheckScaledBackward"), [(2, 3)], grad_scale={0: 2 / 3})


def test_fake_layers_do_not_leak():
    assert not [name for name in LAYERS if name.startswith("Gradcheck")]


def test_checker_fails_when_forward_modifies_its_bottom(fake_layer):
    fake_layer("GradcheckSquare", _Square)
    check_gradients(_text("GradcheckSquare"), [(2, 3)])
    fake_layer("GradcheckSquareModifies", _Square, modify_bottom=True)
    with pytest.raises(GradientCheckError, match="forward modified bottom 0"):
        check_gradients(_text("GradcheckSquareModifies"), [(2, 3)])


def test_in_place_check_fails_when_backward_needs_the_overwritten_bottom(fake_layer):
    fake_layer("GradcheckSquareInPlace", _Square)
    with pytest.raises(GradientCheckError, match="in-place bottom diff differs"):
        check_in_place(_text("GradcheckSquareInPlace"), (2, 3))
