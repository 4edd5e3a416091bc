"""Review: numerical gradients of layers with non-default axes and asymmetric geometry."""
import pytest

from caffe_cae.testing.gradcheck import check_gradients

CASES = [
    ('top: "t" type: "Softmax" softmax_param { axis: -1 }', [(2, 3, 4)]),
    ('top: "t" type: "Softmax" softmax_param { axis: 0 }', [(3, 2, 4)]),
    ('top: "t" type: "Concat" concat_param { axis: -1 }', [(2, 3, 4), (2, 3, 2)]),
    ('top: "t" type: "Concat" concat_param { axis: 0 }', [(2, 3, 4), (1, 3, 4)]),
    ('top: "a" top: "b" top: "c" type: "Slice" slice_param { axis: -1 slice_point: 1 slice_point: 3 }', [(2, 3, 4)]),
    ('top: "t" type: "InnerProduct" inner_product_param { num_output: 3 axis: -1 weight_filler { type: "gaussian" } bias_filler { type: "gaussian" } }', [(2, 3, 4)]),
    ('top: "t" type: "InnerProduct" inner_product_param { num_output: 3 axis: 2 transpose: true weight_filler { type: "gaussian" } bias_filler { type: "gaussian" } }', [(2, 3, 4, 2)]),
    ('top: "t" type: "Eltwise" eltwise_param { operation: SUM coeff: 0.5 coeff: -2 }', [(2, 3), (2, 3)]),
    ('top: "t" type: "Eltwise" eltwise_param { operation: PROD }', [(2, 3), (2, 3), (2, 3)]),
    ('top: "t" type: "Eltwise" eltwise_param { operation: MAX }', [(2, 3), (2, 3), (2, 3)]),
    ('top: "t" type: "Convolution" convolution_param { num_output: 4 kernel_h: 3 kernel_w: 2 stride_h: 2 stride_w: 1 pad_h: 1 pad_w: 0 group: 2 dilation: 2 weight_filler { type: "gaussian" } bias_filler { type: "gaussian" } }', [(2, 4, 7, 6)]),
    ('top: "t" type: "Deconvolution" convolution_param { num_output: 4 kernel_h: 3 kernel_w: 2 stride_h: 2 stride_w: 3 pad_h: 1 pad_w: 1 group: 2 weight_filler { type: "gaussian" } bias_filler { type: "gaussian" } }', [(2, 4, 4, 5)]),
    ('top: "t" type: "Convolution" convolution_param { num_output: 3 kernel_size: 3 axis: 2 weight_filler { type: "gaussian" } }', [(2, 2, 3, 5, 5)]),
    ('top: "t" type: "Convolution" convolution_param { num_output: 3 kernel_size: 2 kernel_size: 3 kernel_size: 2 weight_filler { type: "gaussian" } }', [(2, 2, 3, 5, 4)]),
    ('top: "t" type: "Pooling" pooling_param { pool: AVE kernel_size: 3 stride: 2 pad: 1 }', [(2, 2, 7, 6)]),
    ('top: "t" type: "Pooling" pooling_param { pool: MAX kernel_size: 3 stride: 2 pad: 1 }', [(2, 2, 7, 6)]),
    ('top: "t" type: "Pooling" pooling_param { pool: MAX kernel_size: 2 stride: 1 }', [(2, 2, 5, 5)]),
    ('top: "t" type: "Pooling" pooling_param { pool: AVE kernel_h: 3 kernel_w: 2 stride_h: 1 stride_w: 2 pad_h: 1 pad_w: 1 }', [(2, 2, 5, 6)]),
    ('type: "SoftmaxWithLoss" softmax_param { axis: 2 } loss_param { normalization: FULL }', [(2, 3, 4), (2, 3)]),
    ('top: "t" type: "Flatten" flatten_param { axis: 1 end_axis: 2 }', [(2, 3, 4, 5)]),
    ('top: "t" type: "Reshape" reshape_param { axis: 1 num_axes: 2 shape { dim: -1 } }', [(2, 3, 4, 5)]),
]


@pytest.mark.parametrize("text,shapes", CASES, ids=[c[0].split('type: "')[1].split('"')[0] + str(i) for i, c in enumerate(CASES)])
def test_gradients_with_non_default_axes(text, shapes):
    check_gradients('name: "l" ' + text, shapes)
