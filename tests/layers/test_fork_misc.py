"""The smaller fork layers and options against values worked out from their sources: Interp
(DeepLab v2 / PSPNet), ReLU6, ShuffleChannel, DepthwiseConvolution, Dropout's scale_train and
sample_weights_test, Pooling's ceil_mode, SegNet's class-weighted SoftmaxWithLoss."""
from __future__ import annotations

import numpy as np
import pytest

from caffe_cae.errors import CaffeCaeError
from caffe_cae.proto import caffe_pb2
from tests.helpers.run_layer import LayerRun, layer_text

# -- Interp ----------------------------------------------------------------------------------


def test_interp_zoom_aligns_the_corners():
    x = np.array([[[[0.0, 2.0], [4.0, 6.0]]]])
    (y,) = LayerRun(layer_text("Interp", "interp_param { zoom_factor: 2 }"), [x]).forward()
    np.testing.assert_array_equal(y, [[[[0, 1, 2], [2, 3, 4], [4, 5, 6]]]])


def test_interp_crops_then_shrinks():
    x = np.arange(36.0).reshape(1, 1, 6, 6)
    run = LayerRun(layer_text("Interp", "interp_param { shrink_factor: 2 pad_beg: -1 pad_end: -1 }"), [x])
    # the 4x4 middle (rows/columns 1..4) -> (4 - 1) / 2 + 1 = 2: its corners
    np.testing.assert_array_equal(run.forward()[0], [[[[7.0, 10.0], [25.0, 28.0]]]])


def test_interp_sizes_from_height_width_and_second_bottom():
    x = np.zeros((1, 2, 3, 4))
    assert LayerRun(layer_text("Interp", "interp_param { height: 5 width: 7 }"), [x]).top[0].shape == (1, 2, 5, 7)
    assert LayerRun(layer_text("Interp", bottoms=2), [x, np.zeros((1, 1, 9, 2))]).top[0].shape == (1, 2, 9, 2)
    both = LayerRun(layer_text("Interp", "interp_param { shrink_factor: 2 zoom_factor: 3 }"), [np.zeros((1, 1, 5, 6))])
    assert both.top[0].shape == (1, 1, 7, 7)  # (5-1)/2+1 = 3 -> 3 + 2*2 = 7; (6-1)/2+1 = 3 -> 7


def test_interp_rounds_the_ratio_to_float_as_the_fork():
    """rheight = float(in - 1) / (out - 1) is a float; sampling positions are ratio * i."""
    x = np.arange(4.0).reshape(1, 1, 1, 4)
    (y,) = LayerRun(layer_text("Interp", "interp_param { height: 1 width: 7 }"), [x]).forward()
    ratio = np.float32(3) / np.float32(6)
    np.testing.assert_array_equal(y[0, 0, 0], (ratio * np.arange(7, dtype=np.float32)))


@pytest.mark.parametrize("body, bottoms, message", [
    ("interp_param { zoom_factor: 2 pad_beg: 1 }", 1, "non-pos padding"),
    ("interp_param { zoom_factor: 2 height: 3 width: 3 }", 1, "Output dimension specified either by"),
    ("", 1, "Output dimension specified either by"),
])
def test_interp_refusals(body, bottoms, message):
    with pytest.raises(CaffeCaeError, match=message):
        LayerRun(layer_text("Interp", body, bottoms=bottoms), [np.zeros((1, 1, 3, 3))] * bottoms)


# -- ReLU6, ShuffleChannel, DepthwiseConvolution ---------------------------------------------


def test_relu6_clips_at_zero_and_six_and_passes_gradient_between():
    x = np.array([-1.0, 0.0, 3.0, 6.0, 7.0])
    run = LayerRun(layer_text("ReLU6"), [x])
    np.testing.assert_array_equal(run.forward()[0], [0, 0, 3, 6, 6])
    np.testing.assert_array_equal(run.backward([np.ones(5)])[0], [0, 0, 1, 0, 0])
    leaky = LayerRun(layer_text("ReLU6", "relu6_param { negative_slope: 0.1 }"), [x], dtype=np.float64)
    np.testing.assert_allclose(leaky.forward()[0], [-0.1, 0, 3, 6, 6])
    np.testing.assert_allclose(leaky.backward([np.ones(5)])[0], [0.1, 0.1, 1, 0, 0])
    nvcaffe = LayerRun(layer_text("ReLU6", "relu_param { negative_slope: 0.2 }"), [x], dtype=np.float64)
    np.testing.assert_allclose(nvcaffe.forward()[0], [-0.2, 0, 3, 6, 6])


def test_shuffle_channel_transposes_the_groups():
    x = np.arange(6.0).reshape(1, 6, 1, 1)
    run = LayerRun(layer_text("ShuffleChannel", "shuffle_channel_param { group: 2 }"), [x])
    (y,) = run.forward()
    np.testing.assert_array_equal(y.reshape(-1), [0, 3, 1, 4, 2, 5])
    np.testing.assert_array_equal(run.backward([y])[0], x)  # the inverse shuffle
    with pytest.raises(CaffeCaeError, match="must divide into group 4"):
        LayerRun(layer_text("ShuffleChannel", "shuffle_channel_param { group: 4 }"), [x])


def test_depthwise_convolution_is_a_grouped_convolution():
    body = ('convolution_param { num_output: 3 group: 3 kernel_size: 3 pad: 1 '
            'weight_filler { type: "gaussian" std: 1 } bias_filler { type: "gaussian" std: 1 } }')
    x = np.random.default_rng(1).standard_normal((2, 3, 5, 5))
    depthwise = LayerRun(layer_text("DepthwiseConvolution", body), [x], seed=4)
    plain = LayerRun(layer_text("Convolution", body), [x], seed=4)
    np.testing.assert_array_equal(depthwise.forward()[0], plain.forward()[0])
    with pytest.raises(CaffeCaeError, match=r"group \(1\) must equal the input channels \(3\)"):
        LayerRun(layer_text("DepthwiseConvolution", "convolution_param { num_output: 3 kernel_size: 1 }"), [x])


# -- Dropout's fork options ------------------------------------------------------------------


def test_dropout_scale_train_false_scales_at_test_time():
    x = np.ones((4, 5))
    test = LayerRun(layer_text("Dropout", "dropout_param { dropout_ratio: 0.25 scale_train: false }"), [x])
    np.testing.assert_array_equal(test.forward()[0], np.full((4, 5), np.float32(1.0 / np.float32(1 / 0.75))))
    assert not test.layer.identity_at_inference
    train = LayerRun(layer_text("Dropout", "dropout_param { dropout_ratio: 0.25 scale_train: false }"), [x],
                     phase=caffe_pb2.TRAIN)
    assert set(np.unique(train.forward()[0])) <= {0.0, 1.0}  # kept values unscaled


def test_dropout_sample_weights_test_draws_a_mask_at_test_time():
    run = LayerRun(layer_text("Dropout", "dropout_param { dropout_ratio: 0.5 sample_weights_test: true }"),
                   [np.ones((20, 20))])
    values = np.unique(run.forward()[0])
    np.testing.assert_array_equal(values, [0.0, 2.0])
    assert not run.layer.identity_at_inference


# -- Pooling's ceil_mode ---------------------------------------------------------------------


@pytest.mark.parametrize("body, size", [
    ("ceil_mode: false", 7),   # floor((14 + 2 - 3) / 2) + 1
    ("ceil_mode: true", 8),    # ceil(6.5) + 1
    ("", 8),
    ("round_mode: FLOOR ceil_mode: false", 7),
])
def test_pooling_ceil_mode_maps_onto_round_mode(body, size):
    run = LayerRun(layer_text("Pooling", f"pooling_param {{ pool: MAX kernel_size: 3 stride: 2 pad: 1 {body} }}"),
                   [np.zeros((1, 1, 14, 14))])
    assert run.top[0].shape == (1, 1, size, size)


def test_pooling_refuses_contradicting_ceil_mode_and_round_mode():
    with pytest.raises(CaffeCaeError, match="ceil_mode: false contradicts round_mode: CEIL"):
        LayerRun(layer_text("Pooling", "pooling_param { kernel_size: 2 round_mode: CEIL ceil_mode: false }"),
                 [np.zeros((1, 1, 4, 4))])


# -- SegNet's class weighting ----------------------------------------------------------------


def test_softmax_loss_class_weighting_multiplies_each_term_by_its_labels_weight():
    scores = np.zeros((1, 2, 1, 3))  # uniform: every probability 1/2
    labels = np.array([[[[0, 1, 1]]]], dtype=float)
    body = "loss_param { weight_by_label_freqs: true class_weighting: 4 class_weighting: 1 }"
    run = LayerRun(layer_text("SoftmaxWithLoss", body, bottoms=2), [scores, labels])
    (loss,) = run.forward()
    assert loss == pytest.approx((4 + 1 + 1) * np.log(2) / 3, rel=1e-6)
    run.top[0].diff[...] = 1
    dx, _ = run.backward([np.ones(())], [True, False])
    np.testing.assert_allclose(dx[0, :, 0, 0], [4 * -0.5 / 3, 4 * 0.5 / 3], rtol=1e-6)
    with pytest.raises(CaffeCaeError, match="Number of class weight values does not match"):
        LayerRun(layer_text("SoftmaxWithLoss", "loss_param { weight_by_label_freqs: true class_weighting: 1 }",
                            bottoms=2), [scores, labels])
