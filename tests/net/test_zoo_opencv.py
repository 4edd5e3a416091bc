"""Real-world nets of tests/data/fixtures/zoo whose layers are all BVLC, against OpenCV 4.x dnn
(an independent Caffe importer; `opencv-python-headless<5`, the `test` extra) and onnxruntime:

* `caffe-cae params` counts as many parameter values as OpenCV loads (every blob of every
  layer: trainable ones and BatchNorm's frozen statistics);
* with random weights written by `Net.save` and read by both, the forward equals OpenCV's
  (Winograd off) within 1e-4 relative, on the outputs and the last layer's input (the logits
  before a Softmax);
* the ONNX export equals the interpreter in onnxruntime within 1e-4 relative.

Random weights: the net's own fillers (seeded), and where those leave a blob constant (deploy
files have no fillers, BatchNorm statistics start at 0, Scale at 1) values drawn at a fan-in
scale, so that every layer computes something worth comparing.  Train/val nets go through
their deploy form (`caffe_cae.migrate.deploy.deploy_net`), which OpenCV reads too.  The
forward runs at batch 2 and the smallest square input both tools run, so the file takes
seconds."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from caffe_cae import prototxt
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
    parameters: int      # trainable + frozen values at that size (as many as OpenCV 4.14 loads)
    smallest: int        # the smallest square input both the interpreter and OpenCV run
    train_val: bool = False

    @property
    def file(self):
        return ZOO / self.path


# OpenCV refuses a pooling window larger than its input, which Caffe's ceil rounding allows,
# so `smallest` is OpenCV's; MobileNet runs at 33, not 1: OpenCV's depthwise convolution is
# wrong on a 1x1 map with pad 1 (the interpreter equals the direct computation there).
NETS = {
    "bvlc_alexnet": ZooNet("bvlc_alexnet/deploy.prototxt", 3, 227, 60965224, 55),
    "caffenet_train_val": ZooNet("caffenet_train_val/train_val.prototxt", 3, 227, 60965224, 55, train_val=True),
    "cifar10_sigmoid_bn": ZooNet("cifar10_sigmoid_bn/cifar10_full_sigmoid_train_test_bn.prototxt",
                                 3, 32, 89450 + 259, 12, train_val=True),
    "mobilenet_v1": ZooNet("mobilenet_v1/mobilenet_deploy.prototxt", 3, 224, 4231976 + 21915, 33),
    "gender_net": ZooNet("gender_net/deploy.prototxt", 3, 227, 11411970, 51),
    "mtcnn_det1": ZooNet("mtcnn_det1/det1.prototxt", 3, 12, 6632, 11),
    "squeezenet_v1.0_train_val": ZooNet("squeezenet_v1.0_train_val/train_val.prototxt", 3, 227, 1248424, 29,
                                        train_val=True),
    "lenet_train_test": ZooNet("lenet_train_test/lenet_train_test.prototxt", 1, 28, 431080, 15, train_val=True),
    "v0_imagenet_deploy_2013": ZooNet("v0_imagenet_deploy_2013/imagenet_deploy.prototxt", 3, 227, 60965224, 55),
}


def _input_name(net_param: caffe_pb2.NetParameter) -> str:
    return next(layer.top[0] for layer in net_param.layer if layer.type == "Input")


def _deploy(spec: ZooNet, size: int) -> caffe_pb2.NetParameter:
    shape = (BATCH, spec.channels, size, size)
    if spec.train_val:
        return deploy_net(spec.file, {"data": shape})
    param, _ = load_net_param(spec.file)
    return deploy_net(param, {_input_name(param): shape})


def _randomize_constant_blobs(net: Net, rng: np.random.Generator) -> None:
    """Blobs the fillers left constant get random values: weights N(0, 1/fan_in), biases and
    BatchNorm means N(0, 0.1), BatchNorm variances and scale factors, Scale and PReLU values
    uniform in [0.5, 1.5]."""
    for layer in net.layers:
        for k, blob in enumerate(layer.blobs):
            values = blob.data
            if values.size and values.min() != values.max():
                continue
            if layer.type == "BatchNorm":
                values[...] = rng.normal(0, 0.1, values.shape) if k == 0 else rng.uniform(0.5, 1.5, values.shape)
            elif layer.type in ("Scale", "PReLU"):
                values[...] = rng.uniform(0.5, 1.5, values.shape)
            elif k == 0 and values.ndim >= 2:
                fan_in = values.size // values.shape[0]
                values[...] = rng.normal(0, 1 / np.sqrt(fan_in), values.shape)
            else:
                values[...] = rng.normal(0, 0.1, values.shape)


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    """name -> (deploy NetParameter, Net with random weights, prototxt path, caffemodel path),
    at the smallest input, made once per module."""
    folder, made = tmp_path_factory.mktemp("zoo"), {}

    def get(name):
        if name not in made:
            spec = NETS[name]
            deployed = _deploy(spec, spec.smallest)
            net = Net(deployed, phase=caffe_pb2.TEST, seed=17)
            _randomize_constant_blobs(net, np.random.default_rng(17))
            proto_path, model_path = folder / f"{name}.prototxt", folder / f"{name}.caffemodel"
            proto_path.write_text(prototxt.to_text(deployed))
            net.save(str(model_path))
            made[name] = deployed, net, proto_path, model_path
        return made[name]

    return get


def _close(ours, reference, what):
    """Within 1e-4 relative: elementwise, to the value or to the blob's largest value."""
    assert ours.shape == reference.shape, what
    scale = float(np.abs(reference).max())
    assert scale > 0, f"{what}: all zero, nothing compared"
    np.testing.assert_allclose(ours, reference, rtol=RTOL, atol=RTOL * scale, err_msg=what)


@pytest.mark.parametrize("name", NETS)
def test_params_total_equals_opencv(name, prepared):
    deployed, _, proto_path, model_path = prepared(name)
    report = count_params(deployed, phase="TEST")
    cv_net = cv2.dnn.readNetFromCaffe(str(proto_path), str(model_path))
    opencv_total = sum(
        int(np.prod(blob.shape)) for layer_name in cv_net.getLayerNames()
        for blob in cv_net.getLayer(cv_net.getLayerId(layer_name)).blobs)
    assert report.total + report.frozen == opencv_total


@pytest.mark.parametrize("name", NETS)
def test_params_total_at_the_nets_own_size(name):
    """The totals at the size each net was made for (AlexNet at 227x227: 60965224), which
    OpenCV 4.14 counts too (checked once; loading 60M random weights takes too long here)."""
    spec = NETS[name]
    report = count_params(_deploy(spec, spec.size), phase="TEST")
    assert report.total + report.frozen == spec.parameters
    if spec.train_val and "Data" in LAYERS:  # the train/val file itself counts the same (once
        # the LMDB Data layer is registered)
        original = count_params(spec.file, phase="TEST", input_shapes={"data": (spec.channels, spec.size, spec.size)})
        assert (original.total, original.frozen) == (report.total, report.frozen)


@pytest.mark.parametrize("name", NETS)
def test_forward_equals_opencv_and_onnxruntime(name, prepared):
    deployed, net, proto_path, model_path = prepared(name)
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
