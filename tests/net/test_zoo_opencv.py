"""Real-world nets of tests/data/fixtures/zoo whose layers are all BVLC, against OpenCV 4.x dnn
(an independent Caffe importer; `opencv-python-headless<5`, the `test` extra) and onnxruntime:

* `caffe-cae params` counts as many parameter values as OpenCV loads (every blob of every
  layer: trainable ones and BatchNorm's frozen statistics);
* with random weights (the net's own fillers, plus random BatchNorm statistics and Scale
  values, whose fillers are constants) written by `Net.save` and read by both, the forward
  equals OpenCV's (Winograd off) within 1e-4 relative;
* the ONNX export equals the interpreter in onnxruntime within 1e-4 relative.

Train/val nets go through their deploy form (`caffe_cae.migrate.deploy.deploy_net`), which
OpenCV reads too.  The forward runs at batch 2 and the smallest square input that both the
interpreter and OpenCV accept (OpenCV refuses a pooling window larger than its input, which
Caffe's ceil rounding allows), so that the whole file takes seconds."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from caffe_cae import prototxt
from caffe_cae.errors import CaffeCaeError
from caffe_cae.layers import LAYERS
from caffe_cae.migrate.deploy import deploy_net
from caffe_cae.net import Net
from caffe_cae.netgraph.loading import load_net_param
from caffe_cae.onnx import export_net, make_session
from caffe_cae.params import count_params
from caffe_cae.proto import caffe_pb2
from tests.helpers.paths import ZOO

cv2 = pytest.importorskip("cv2")
if not cv2.__version__.startswith("4."):
    pytest.skip(f"OpenCV {cv2.__version__}: only 4.x reads Caffe models", allow_module_level=True)

RTOL = 1e-4
BATCH = 2


@dataclasses.dataclass(frozen=True)
class ZooNet:
    path: str
    channels: int
    size: int            # the input size the net was made for
    smallest: int        # the smallest square input both the interpreter and OpenCV accept
    train_val: bool = False

    @property
    def file(self):
        return ZOO / self.path


NETS = {
    "bvlc_alexnet": ZooNet("bvlc_alexnet/deploy.prototxt", 3, 227, 39),
    "caffenet_train_val": ZooNet("caffenet_train_val/train_val.prototxt", 3, 227, 39, train_val=True),
    "cifar10_sigmoid_bn": ZooNet("cifar10_sigmoid_bn/cifar10_full_sigmoid_train_test_bn.prototxt", 3, 32, 5, train_val=True),
    "mobilenet_v1": ZooNet("mobilenet_v1/mobilenet_deploy.prototxt", 3, 224, 1),
    "gender_net": ZooNet("gender_net/deploy.prototxt", 3, 227, 27),
    "mtcnn_det1": ZooNet("mtcnn_det1/det1.prototxt", 3, 12, 12),
    "squeezenet_v1.0_train_val": ZooNet("squeezenet_v1.0_train_val/train_val.prototxt", 3, 227, 29, train_val=True),
    "lenet_train_test": ZooNet("lenet_train_test/lenet_train_test.prototxt", 1, 28, 15, train_val=True),
    "v0_imagenet_deploy_2013": ZooNet("v0_imagenet_deploy_2013/imagenet_deploy.prototxt", 3, 227, 39),
}


def _input_name(net_param: caffe_pb2.NetParameter) -> str:
    return next(layer.top[0] for layer in net_param.layer if layer.type == "Input")


def _deploy(spec: ZooNet, size: int) -> caffe_pb2.NetParameter:
    shape = (BATCH, spec.channels, size, size)
    if spec.train_val:
        return deploy_net(spec.file, {"data": shape})
    param, _ = load_net_param(spec.file)
    return deploy_net(param, {_input_name(param): shape})


def _randomize_constant_fills(net: Net, rng: np.random.Generator) -> None:
    """BatchNorm statistics (Caffe creates them 0) and Scale/PReLU values (constant fillers)
    drawn at random, so that these layers compute something worth comparing."""
    for layer in net.layers:
        blobs = layer.blobs
        if layer.type == "BatchNorm":
            blobs[0].data[...] = rng.standard_normal(blobs[0].shape)
            blobs[1].data[...] = rng.uniform(0.5, 2.0, blobs[1].shape)
            blobs[2].data[...] = rng.uniform(0.5, 2.0, blobs[2].shape)
        elif layer.type in ("Scale", "PReLU"):
            for blob in blobs:
                blob.data[...] = rng.uniform(0.5, 1.5, blob.shape)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return tmp_path_factory.mktemp("zoo")


def _prepared(name, workdir):
    """(deploy NetParameter, Net with random weights, prototxt path, caffemodel path)."""
    spec = NETS[name]
    deployed = _deploy(spec, spec.smallest)
    net = Net(deployed, phase=caffe_pb2.TEST, seed=17)
    _randomize_constant_fills(net, np.random.default_rng(17))
    proto_path, model_path = workdir / f"{name}.prototxt", workdir / f"{name}.caffemodel"
    proto_path.write_text(prototxt.to_text(deployed))
    net.save(str(model_path))
    return deployed, net, proto_path, model_path


def _close(ours, reference, what):
    """Within 1e-4 relative: elementwise, to the value or to the blob's largest value."""
    assert ours.shape == reference.shape, what
    scale = float(np.abs(reference).max())
    np.testing.assert_allclose(ours, reference, rtol=RTOL, atol=RTOL * scale, err_msg=what)


@pytest.mark.parametrize("name", NETS)
def test_params_total_equals_opencv(name, workdir):
    spec = NETS[name]
    deployed = _deploy(spec, spec.size)
    report = count_params(deployed, phase="TEST")
    net = Net(deployed, phase=caffe_pb2.TEST, seed=1)
    path = workdir / f"{name}_params.caffemodel"
    proto_path = workdir / f"{name}_params.prototxt"
    proto_path.write_text(prototxt.to_text(deployed))
    net.save(str(path))
    cv_net = cv2.dnn.readNetFromCaffe(str(proto_path), str(path))
    opencv_total = sum(
        int(np.prod(blob.shape)) for layer_name in cv_net.getLayerNames()
        for blob in cv_net.getLayer(cv_net.getLayerId(layer_name)).blobs)
    assert report.total + report.frozen == opencv_total
    if spec.train_val and "Data" in LAYERS:  # the train/val file itself counts the same (once
        # the LMDB Data layer is registered)
        original = count_params(spec.file, phase="TEST", input_shapes={"data": (spec.channels, spec.size, spec.size)})
        assert (original.total, original.frozen) == (report.total, report.frozen)


@pytest.mark.parametrize("name", NETS)
def test_forward_equals_opencv_and_onnxruntime(name, workdir):
    deployed, net, proto_path, model_path = _prepared(name, workdir)
    data_name = _input_name(deployed)
    x = np.random.default_rng(5).standard_normal(net.blobs[data_name].shape).astype(np.float32)
    ours = net.forward(**{data_name: x})
    # the last layer's bottom too: a Softmax of random logits says little on its own
    last = deployed.layer[-1]
    compared = list(ours) + [b for b in last.bottom if b not in ours]

    cv_net = cv2.dnn.readNetFromCaffe(str(proto_path), str(model_path))
    cv_net.enableWinograd(False)
    cv_net.setInput(x)
    # OpenCV names outputs by layer: a blob's value is the output of the last layer writing it
    last_writer = {top: layer.name for layer in deployed.layer for top in layer.top}
    cv_outputs = cv_net.forward([last_writer[blob] for blob in compared])
    for blob, value in zip(compared, cv_outputs):
        _close(net.blobs[blob].data, np.asarray(value), f"{name}: {blob} vs OpenCV")

    model = export_net(net, outputs=compared)
    results = make_session(model, "cpu").run(compared, {data_name: x})
    for blob, value in zip(compared, results):
        _close(value, net.blobs[blob].data, f"{name}: {blob} in onnxruntime")
