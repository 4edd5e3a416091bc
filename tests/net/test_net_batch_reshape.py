"""Review: a net reshaped to another batch size between passes computes exactly what a net built
at that size computes (no stale workspaces, columns, masks or shared views), in float32."""
import numpy as np
import pytest

import caffe_cae
from caffe_cae.prototxt import parse_text
from caffe_cae.proto import caffe_pb2

NET = """
name: "reshape_review" force_backward: true
layer { name: "in" type: "Input" top: "data" input_param { shape { dim: 2 dim: 3 dim: 9 dim: 8 } } }
layer { name: "c1" type: "Convolution" bottom: "data" top: "c1" convolution_param { num_output: 4 kernel_size: 3 pad: 1 stride: 2 weight_filler { type: "gaussian" std: 0.3 } bias_filler { type: "gaussian" std: 0.3 } } }
layer { name: "r1" type: "ReLU" bottom: "c1" top: "c1" }
layer { name: "p1" type: "Pooling" bottom: "c1" top: "p1" top: "mask" pooling_param { pool: MAX kernel_size: 2 stride: 2 } }
layer { name: "u1" type: "Unpooling" bottom: "p1" bottom: "mask" top: "u1" unpooling_param { unpool: MAX kernel_size: 2 stride: 2 unpool_size: 5 } }
layer { name: "d1" type: "Deconvolution" bottom: "u1" top: "d1" convolution_param { num_output: 2 kernel_size: 3 weight_filler { type: "gaussian" std: 0.3 } } }
layer { name: "s1" type: "Sigmoid" bottom: "d1" top: "d1" }
layer { name: "pa" type: "Pooling" bottom: "d1" top: "pa" pooling_param { pool: AVE kernel_size: 3 stride: 2 pad: 1 } }
layer { name: "rs" type: "Reshape" bottom: "pa" top: "rs" reshape_param { shape { dim: 0 dim: -1 } } }
layer { name: "ip" type: "InnerProduct" bottom: "rs" top: "ip" inner_product_param { num_output: 5 weight_filler { type: "gaussian" std: 0.3 } bias_filler { type: "gaussian" std: 0.3 } } }
layer { name: "fl" type: "Flatten" bottom: "d1" top: "fl" }
layer { name: "ip2" type: "InnerProduct" bottom: "fl" top: "ip2" inner_product_param { num_output: 5 weight_filler { type: "gaussian" std: 0.3 } } }
layer { name: "e" type: "Eltwise" bottom: "ip" bottom: "ip2" top: "e" }
layer { name: "sm" type: "Softmax" bottom: "e" top: "sm" }
layer { name: "loss" type: "EuclideanLoss" bottom: "sm" bottom: "ip" top: "loss" }
"""


def _net(batch):
    param = parse_text(NET, caffe_pb2.NetParameter, "review")
    param.layer[0].input_param.shape[0].dim[0] = batch
    return caffe_cae.Net(param, phase=caffe_cae.TRAIN, seed=1)


def test_batch_change_between_passes_matches_a_fresh_net():
    rng = np.random.default_rng(0)
    x2 = rng.standard_normal((2, 3, 9, 8)).astype(np.float32)
    x5 = rng.standard_normal((5, 3, 9, 8)).astype(np.float32)
    reshaped = _net(2)
    reshaped.blobs["data"].data[...] = x2
    reshaped.forward_backward()
    reshaped.clear_param_diffs()
    reshaped.blobs["data"].reshape(x5.shape)
    reshaped.blobs["data"].data[...] = x5
    loss = reshaped.forward_backward()

    fresh = _net(5)
    fresh.blobs["data"].data[...] = x5
    assert loss == fresh.forward_backward()
    for name, blob in fresh.blobs.items():
        mine = reshaped.blobs[name]
        assert mine.shape == blob.shape, name
        assert mine.data.dtype == np.float32 and mine.diff.dtype == np.float32, name
        np.testing.assert_allclose(mine.data, blob.data, rtol=0, atol=1e-6, err_msg=name)
        np.testing.assert_allclose(mine.diff, blob.diff, rtol=0, atol=1e-6, err_msg=name)
    for name, blobs in fresh.params.items():
        for k, blob in enumerate(blobs):
            np.testing.assert_allclose(reshaped.params[name][k].diff, blob.diff, rtol=0, atol=1e-5,
                                       err_msg=f"{name}/{k}")


def test_forward_returns_copies_and_shrinking_batch_works():
    net = _net(4)
    rng = np.random.default_rng(1)
    x = rng.standard_normal((4, 3, 9, 8)).astype(np.float32)
    out = net.forward(data=x)["loss"]
    again = net.forward(data=x[:1])
    assert net.blobs["ip"].shape == (1, 5)
    single = _net(1).forward(data=x[:1])
    np.testing.assert_allclose(again["loss"], single["loss"], rtol=1e-6)
    assert out.shape == () and out is not net.blobs["loss"].data


NET2 = """
name: "reshape_review2" force_backward: true
layer { name: "in" type: "Input" top: "data" top: "label" input_param { shape { dim: 3 dim: 4 dim: 6 dim: 5 } shape { dim: 3 dim: 6 dim: 5 } } }
layer { name: "sl" type: "Slice" bottom: "data" top: "s1" top: "s2" slice_param { axis: 1 slice_point: 1 } }
layer { name: "c" type: "Convolution" bottom: "s2" top: "c" convolution_param { num_output: 2 kernel_size: 1 weight_filler { type: "gaussian" std: 0.5 } } }
layer { name: "cat" type: "Concat" bottom: "c" bottom: "s1" bottom: "s1" top: "cat" }
layer { name: "t" type: "TanH" bottom: "cat" top: "cat" }
layer { name: "p" type: "Power" bottom: "cat" top: "pw" power_param { power: 2 scale: 0.5 shift: 1 } }
layer { name: "e" type: "Eltwise" bottom: "cat" bottom: "pw" top: "e" eltwise_param { operation: MAX } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "e" bottom: "label" top: "loss" loss_param { ignore_label: 2 normalization: VALID } }
layer { name: "acc" type: "Accuracy" bottom: "e" bottom: "label" top: "acc" include { phase: TEST } }
"""


def test_batch_change_with_slice_concat_loss():
    rng = np.random.default_rng(4)

    def build(batch):
        param = parse_text(NET2, caffe_pb2.NetParameter, "review")
        param.layer[0].input_param.shape[0].dim[0] = batch
        param.layer[0].input_param.shape[1].dim[0] = batch
        return caffe_cae.Net(param, phase=caffe_cae.TRAIN, seed=2)

    def feed(net, batch):
        net.blobs["data"].reshape(batch, 4, 6, 5)
        net.blobs["label"].reshape(batch, 6, 5)
        net.blobs["data"].data[...] = rng.standard_normal((batch, 4, 6, 5))
        net.blobs["label"].data[...] = rng.integers(0, 4, (batch, 6, 5))
        return net.blobs["data"].data.copy(), net.blobs["label"].data.copy()

    net = build(3)
    feed(net, 3)
    net.forward_backward()
    net.clear_param_diffs()
    x, y = feed(net, 5)
    loss = net.forward_backward()
    fresh = build(5)
    fresh.blobs["data"].data[...] = x
    fresh.blobs["label"].data[...] = y
    assert loss == pytest.approx(fresh.forward_backward(), rel=1e-6)
    for name in ("data", "cat", "e"):
        np.testing.assert_allclose(net.blobs[name].diff, fresh.blobs[name].diff, rtol=0, atol=1e-6, err_msg=name)
    np.testing.assert_allclose(net.params["c"][0].diff, fresh.params["c"][0].diff, rtol=1e-5, atol=1e-6)
