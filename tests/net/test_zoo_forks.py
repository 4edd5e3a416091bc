"""Real nets of the Caffe forks (tests/data/fixtures/zoo, deconvnet_noh) run end to end.

* MobileNet-SSD: with random weights, the detections equal OpenCV 4.x dnn's (an independent
  implementation of SSD's layers; Winograd off) within 1e-4 on boxes and scores.  The random
  weights are the net's fillers, with random BatchNorm statistics and Scale values, and the
  prediction heads rescaled so that their outputs are O(1): msra-filled heads saturate the
  softmax, and a sort of a thousand scores of exactly 1.0 would compare the two tie-breaking
  orders instead of the layers.  Rows are compared as sets (the fork groups them by label,
  OpenCV orders them by score).
* SegNet (its DenseImageData reading generated images) and Noh's DeconvNet (V1 syntax, BN in
  INFERENCE mode, unpooling with switches) run forward and backward.  DeconvNet keeps its 224x224
  geometry with every width divided by 16: the file's 268 M parameters do not fit a test.
* DenseNet-121 (``ceil_mode: false``) equals OpenCV; Faster R-CNN (ZF) runs with
  ``tests/data/python_layers/rpn/proposal_layer.py`` standing in for py-faster-rcnn's module.

Each net at the smallest input that exercises it, so that the file takes seconds.
"""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from caffe_cae import prototxt
from caffe_cae.layers import LAYERS
from caffe_cae.net import Net
from caffe_cae.netgraph.loading import load_net_param
from caffe_cae.proto import caffe_pb2
from tests.helpers.paths import DATA, FIXTURES, ZOO

pytestmark = pytest.mark.skipif(not {"BatchNorm", "Scale", "LRN"} <= set(LAYERS),
                                reason="needs BVLC's BatchNorm, Scale and LRN")


def _opencv():
    cv2 = pytest.importorskip("cv2")
    if not cv2.__version__.startswith("4."):
        pytest.skip(f"OpenCV {cv2.__version__}: only 4.x reads Caffe models")
    return cv2


def _deploy(path, shape):
    param, _ = load_net_param(path)
    param.layer[0].input_param.shape[0].dim[:] = shape
    return param


def _randomize(net: Net, rng) -> None:
    """Random BatchNorm statistics and Scale values (their fillers are constants); the
    convolutions without a filler (Caffe's default: constant 0) get He-scaled normals."""
    for layer in net.layers:
        blobs = layer.blobs
        if layer.type == "BatchNorm":
            blobs[0].data[...] = rng.standard_normal(blobs[0].shape) * 0.1
            blobs[1].data[...] = rng.uniform(0.5, 2.0, blobs[1].shape)
            blobs[2].data[...] = 1.0
        elif layer.type == "Scale":
            for blob in blobs:
                blob.data[...] = rng.uniform(0.5, 1.5, blob.shape)
        elif layer.type in ("Convolution", "Deconvolution", "InnerProduct") and not blobs[0].data.any():
            fan = blobs[0].count // (blobs[0].shape[1] if layer.type == "Deconvolution" else blobs[0].shape[0])
            blobs[0].data[...] = rng.standard_normal(blobs[0].shape) * np.sqrt(2.0 / fan)


def _opencv_net(cv2, net: Net, param, workdir, name):
    proto, model = workdir / f"{name}.prototxt", workdir / f"{name}.caffemodel"
    proto.write_text(prototxt.to_text(param))
    net.save(str(model))
    reference = cv2.dnn.readNetFromCaffe(str(proto), str(model))
    reference.enableWinograd(False)
    return reference


def _rows(detections):
    rows = np.asarray(detections).reshape(-1, 7)
    return rows[np.lexsort((rows[:, 4], rows[:, 3], -rows[:, 2], rows[:, 1], rows[:, 0]))]


def test_mobilenet_ssd_detections_equal_opencv(tmp_path):
    cv2 = _opencv()
    param = _deploy(ZOO / "mobilenet_ssd" / "deploy.prototxt", [1, 3, 300, 300])
    net = Net(param, caffe_pb2.TEST, seed=5)
    rng = np.random.default_rng(3)
    _randomize(net, rng)
    x = rng.standard_normal((1, 3, 300, 300)).astype(np.float32)
    net.forward(data=x)
    for layer in net.layers:  # heads rescaled to O(1) outputs (see the module docstring)
        if layer.type == "Convolution" and layer.name.endswith(("_mbox_loc", "_mbox_conf")):
            factor = (0.5 if layer.name.endswith("_loc") else 2.0) / net.blobs[layer.name].data.std()
            for blob in layer.blobs:
                blob.data[...] *= factor
    ours = net.forward(data=x)["detection_out"]
    reference = _opencv_net(cv2, net, param, tmp_path, "mobilenet_ssd")
    reference.setInput(x)
    compared = ["mbox_loc", "mbox_conf_flatten", "mbox_priorbox", "detection_out"]
    theirs = dict(zip(compared, reference.forward(compared)))
    for blob in compared[:3]:
        mine = net.blobs[blob].data
        np.testing.assert_allclose(mine, theirs[blob].reshape(mine.shape), rtol=1e-4,
                                   atol=1e-4 * np.abs(mine).max(), err_msg=blob)
    assert ours.shape[2] > 20  # enough detections to compare
    mine, other = _rows(ours), _rows(theirs["detection_out"])
    assert mine.shape == other.shape
    np.testing.assert_array_equal(mine[:, :2], other[:, :2])  # images, labels
    np.testing.assert_allclose(mine[:, 2:], other[:, 2:], rtol=0, atol=1e-4)  # scores, boxes


def test_segnet_basic_forward_and_backward(tmp_path):
    rng = np.random.default_rng(0)
    lines, labels = [], []
    for i in range(2):
        Image.fromarray(rng.integers(0, 256, (24, 32, 3), dtype=np.uint8)).save(tmp_path / f"img{i}.png")
        labels.append(rng.integers(0, 11, (24, 32), dtype=np.uint8))
        Image.fromarray(labels[-1]).save(tmp_path / f"lab{i}.png")
        lines.append(f"img{i}.png lab{i}.png\n")
    (tmp_path / "test.txt").write_text("".join(lines))
    param, _ = load_net_param(ZOO / "segnet_basic" / "segnet_basic_inference.prototxt")
    data = param.layer[0].dense_image_data_param
    data.source, data.root_folder = str(tmp_path / "test.txt"), f"{tmp_path}/"
    param.force_backward = True
    net = Net(param, caffe_pb2.TEST, seed=1)
    out = net.forward()
    assert out["prob"].shape == (1, 11, 24, 32)
    np.testing.assert_allclose(out["prob"].sum(axis=1), 1.0, rtol=1e-5)
    np.testing.assert_array_equal(out["label"][0, 0], labels[0])
    net.blobs["prob"].diff[...] = rng.standard_normal(out["prob"].shape)
    net.backward()
    assert np.isfinite(net.blobs["data"].diff).all() and net.blobs["data"].diff.any()
    for name in ("conv1", "conv1_bn", "upsample4" if "upsample4" in net.params else "conv_decode4_bn",
                 "conv_classifier"):
        assert net.params[name][0].diff.any(), name


def test_noh_deconvnet_forward_and_backward():
    param, _ = load_net_param(FIXTURES / "deconvnet_noh" / "DeconvNet_inference_deploy.prototxt")
    types = {layer.type for layer in param.layer}
    assert {"BN", "Unpooling", "Deconvolution"} <= types
    for layer in param.layer:  # widths / 16, geometry kept (see the module docstring)
        if layer.HasField("convolution_param") and layer.convolution_param.num_output > 21:
            layer.convolution_param.num_output //= 16
    param.force_backward = True
    net = Net(param, caffe_pb2.TEST, seed=1)
    rng = np.random.default_rng(7)
    _randomize(net, rng)
    score = net.forward(data=rng.standard_normal((1, 3, 224, 224)).astype(np.float32))["seg-score"]
    assert score.shape == (1, 21, 224, 224) and np.isfinite(score).all() and score.any()
    net.backward(**{"seg-score": rng.standard_normal(score.shape).astype(np.float32)})
    assert np.isfinite(net.blobs["data"].diff).all() and net.blobs["data"].diff.any()
    bn = [layer for layer in net.layers if layer.type == "BN"]
    assert len(bn) == 29 and all(layer.blobs[0].diff.any() for layer in bn)


def test_densenet121_ceil_mode_false_equals_opencv(tmp_path):
    cv2 = _opencv()
    param = _deploy(ZOO / "densenet121" / "DenseNet_121.prototxt", [1, 3, 28, 28])
    net = Net(param, caffe_pb2.TEST, seed=1)
    rng = np.random.default_rng(0)
    _randomize(net, rng)
    x = rng.standard_normal((1, 3, 28, 28)).astype(np.float32)
    ours = net.forward(data=x)["fc6"]
    assert net.blobs["pool1"].shape == (1, 64, 7, 7)  # floor((14 + 2 - 3) / 2) + 1; ceil gives 8
    reference = _opencv_net(cv2, net, param, tmp_path, "densenet121")
    reference.setInput(x)
    theirs = reference.forward("fc6")
    np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-4 * np.abs(theirs).max())


def test_faster_rcnn_zf_runs_with_a_python_proposal_layer(monkeypatch):
    monkeypatch.syspath_prepend(str(DATA / "python_layers"))
    param = _deploy(ZOO / "faster_rcnn_zf" / "test.prototxt", [1, 3, 128, 160])
    net = Net(param, caffe_pb2.TEST, seed=1, allow_python_layers=True)
    rng = np.random.default_rng(0)
    _randomize(net, rng)
    out = net.forward(data=rng.standard_normal((1, 3, 128, 160)).astype(np.float32),
                      im_info=np.array([[128, 160, 1.0]], np.float32))
    rois = net.blobs["rois"].data
    assert rois.ndim == 2 and rois.shape[1] == 5 and 0 < rois.shape[0] <= 300
    assert (rois[:, 0] == 0).all() and (rois[:, 3] <= 159).all() and (rois[:, 4] <= 127).all()
    assert net.blobs["roi_pool_conv5"].shape == (rois.shape[0], 256, 6, 6)
    assert out["cls_prob"].shape == (rois.shape[0], 21) and out["bbox_pred"].shape == (rois.shape[0], 84)
    np.testing.assert_allclose(out["cls_prob"].sum(axis=1), 1.0, rtol=1e-5)
