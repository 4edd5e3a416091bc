"""Legacy files run directly: V1 nets are upgraded in memory (one notice), old caffemodels
(V1 ``layers``, num/channels/height/width blob dims) load into current nets."""
import logging

import numpy as np
import pytest

import caffe_cae
from caffe_cae.errors import CaffeCaeError
from caffe_cae.proto import caffe_pb2
from caffe_cae.prototxt import parse_text
from caffe_cae.weights import write_binary
from tests.helpers.golden import GoldenCase, assert_close

V1_NET = """
name: "v1"
input: "data"
input_dim: 2 input_dim: 1 input_dim: 5 input_dim: 5
input: "target"
input_dim: 2 input_dim: 3 input_dim: 3 input_dim: 3
layers { name: "conv1" type: CONVOLUTION bottom: "data" top: "conv1" blobs_lr: 1 blobs_lr: 2
         weight_decay: 1 weight_decay: 0
         convolution_param { num_output: 3 kernel_size: 3 weight_filler { type: "xavier" } } }
layers { name: "sig" type: SIGMOID bottom: "conv1" top: "conv1" }
layers { name: "loss" type: EUCLIDEAN_LOSS bottom: "conv1" bottom: "target" top: "loss" }
"""


def test_v1_net_runs_after_one_notice(caplog, tmp_path):
    path = tmp_path / "v1.prototxt"
    path.write_text(V1_NET)
    with caplog.at_level(logging.INFO, logger="caffe_cae.net"):
        net = caffe_cae.Net(str(path), caffe_cae.TRAIN)
    notices = [r for r in caplog.records if r.name == "caffe_cae.net" and r.levelno >= logging.WARNING]
    assert len(notices) == 1 and "upgraded" in notices[0].getMessage() and str(path) in notices[0].getMessage()
    assert [(n, l.type) for n, l in zip(net.layer_names, net.layers)] == [
        ("input", "Input"), ("conv1", "Convolution"), ("sig", "Sigmoid"), ("loss", "EuclideanLoss")]
    assert net.inputs == ["data", "target"]
    assert net.params_lr == [1.0, 2.0] and net.params_weight_decay == [1.0, 0.0]
    out = net.forward(data=np.ones((2, 1, 5, 5)), target=np.zeros((2, 3, 3, 3)))
    assert out["loss"] > 0


def legacy_blob(array, dims):
    blob = caffe_pb2.BlobProto()
    blob.num, blob.channels, blob.height, blob.width = dims
    blob.data.extend(np.asarray(array, np.float32).ravel().tolist())
    return blob


def test_v1_caffemodel_with_legacy_dims_loads(tmp_path):
    net = caffe_cae.Net(parse_text(V1_NET, caffe_pb2.NetParameter))
    rng = np.random.default_rng(0)
    w = rng.standard_normal((3, 1, 3, 3)).astype(np.float32)
    b = rng.standard_normal(3).astype(np.float32)
    old = caffe_pb2.NetParameter(name="old")
    layer = old.layers.add(name="conv1", type=caffe_pb2.V1LayerParameter.CONVOLUTION)
    layer.blobs.append(legacy_blob(w, (3, 1, 3, 3)))
    layer.blobs.append(legacy_blob(b, (1, 1, 1, 3)))  # bias stored 1x1x1xN
    old.layers.add(name="gone", type=caffe_pb2.V1LayerParameter.SIGMOID)  # ignored
    write_binary(tmp_path / "old.caffemodel", old)
    net.copy_from(str(tmp_path / "old.caffemodel"))
    np.testing.assert_array_equal(net.params["conv1"][0].data, w)
    np.testing.assert_array_equal(net.params["conv1"][1].data, b)

    layer.blobs[1].CopyFrom(legacy_blob(b, (1, 1, 3, 1)))  # wrong legacy dims
    write_binary(tmp_path / "bad.caffemodel", old)
    with pytest.raises(CaffeCaeError, match=r"bad.caffemodel: layer 'conv1': cannot copy param 1 weights: shape mismatch; source param shape is 1 1 3 1 \(3\), target param shape is 3 \(3\)"):
        net.copy_from(str(tmp_path / "bad.caffemodel"))


def test_golden_v1_binary_caffemodel_into_deploy_net():
    case = GoldenCase("mig_caffemodel_v1_binary")
    net = caffe_cae.Net(str(case.path("deploy.prototxt")), str(case.path("in.caffemodel")), caffe_cae.TEST)
    tol = {"rtol": 1e-5, "atol": 1e-6, "atol_rel_max": 1e-6}
    for key in case.keys("param"):
        layer, i = key.rsplit("/", 1)
        np.testing.assert_array_equal(net.params[layer][int(i)].data, case.data[f"param/{key}"])
    out = net.forward(data=case.data["in/data"], blobs=list(net.blobs))
    for name in case.keys("out"):
        assert_close(out[name], case.data[f"out/{name}"], tol, f"out/{name}")
