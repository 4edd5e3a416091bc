"""Real train/val nets of the model zoo, unchanged but for batch sizes, train on small LMDBs that
``convert_imageset`` makes from generated images (at the paths the prototxts name, with the mean
files ``compute_image_mean`` makes); ``params`` gives their known totals with and without the
data; a train_val net exports to ONNX without its data; LeNet trains end to end from the command
line as in Caffe's MNIST example."""
import logging
import os
import subprocess
import sys

import numpy as np
import pytest

import caffe_cae
from caffe_cae import params
from caffe_cae.cli import main
from caffe_cae.data.convert import convert_imageset
from caffe_cae.data.mean import compute_image_mean
from caffe_cae.data.transformer import read_mean_file
from caffe_cae.errors import CaffeCaeError
from caffe_cae.proto import caffe_pb2
from caffe_cae.prototxt import read_net_text
from caffe_cae.weights import write_binary
from tests.helpers.datasets import random_images, write_image_files
from tests.helpers.paths import ZOO

REPO = ZOO.parents[3]


class ZooNet:
    def __init__(self, path, image, gray, total, frozen, shape_without_data):
        self.path = ZOO / path
        self.image = image                          # generated image height/width (>= crop_size)
        self.gray = gray
        self.total = total                          # trainable parameters, as published
        self.frozen = frozen                        # BatchNorm statistics (lr_mult 0)
        self.shape_without_data = shape_without_data  # what the transform params fix, else None


NETS = {
    "lenet_train_test": ZooNet("lenet_train_test/lenet_train_test.prototxt", 28, True, 431080, 0, None),
    "caffenet_train_val": ZooNet("caffenet_train_val/train_val.prototxt", 229, False, 60965224, 0, None),
    "squeezenet_v1.0_train_val": ZooNet("squeezenet_v1.0_train_val/train_val.prototxt", 229, False, 1248424, 0,
                                        (3, 227, 227)),
    # three BatchNorm layers: running mean and variance per channel plus the scale factor, lr_mult 0
    "cifar10_sigmoid_bn": ZooNet("cifar10_sigmoid_bn/cifar10_full_sigmoid_train_test_bn.prototxt", 32, False,
                                 89450, (32 + 32 + 1) * 2 + (64 + 64 + 1), None),
}
DATA_SHAPE = {"lenet_train_test": (1, 28, 28), "caffenet_train_val": (3, 227, 227),
              "squeezenet_v1.0_train_val": (3, 227, 227), "cifar10_sigmoid_bn": (3, 32, 32)}


def make_data(zoo: ZooNet, count: int = 6, mean_files: bool = True, seed: int = 0) -> np.ndarray:
    """In the current folder: the LMDBs (and mean files) the net's Data layers name, from
    ``count`` generated images; returns the images as the Data layer sees them (C x H x W, BGR)."""
    shape = (zoo.image, zoo.image) if zoo.gray else (zoo.image, zoo.image, 3)
    images = random_images(count, shape, seed)
    lines = write_image_files("generated", images, np.arange(count) % 10)
    with open("generated/list.txt", "w") as handle:
        handle.write("\n".join(lines) + "\n")
    for layer in read_net_text(str(zoo.path)).layer:
        if layer.type != "Data":
            continue
        source = layer.data_param.source
        if not os.path.exists(source):
            os.makedirs(os.path.dirname(source), exist_ok=True)
            convert_imageset("generated/", "generated/list.txt", source, gray=zoo.gray)
        mean = layer.transform_param.mean_file
        if mean and mean_files and not os.path.exists(mean):
            os.makedirs(os.path.dirname(mean), exist_ok=True)
            write_binary(mean, compute_image_mean(source)[0])
    return images[:, None] if zoo.gray else images[..., ::-1].transpose(0, 3, 1, 2)


def small_batches(zoo: ZooNet, batch: int) -> caffe_pb2.NetParameter:
    net = read_net_text(str(zoo.path))
    for layer in net.layer:
        if layer.type == "Data":
            layer.data_param.batch_size = batch
    return net


def candidates(images, transform: caffe_pb2.TransformationParameter, phase) -> list[np.ndarray]:
    """Every item the Data layer may produce from these records (crop positions, mirroring)."""
    mean = read_mean_file(transform.mean_file) if transform.mean_file else None
    crop = transform.crop_size
    out = []
    for image in images.astype(np.float32):
        size = image.shape[1]
        offsets = [(size - crop) // 2] if phase == caffe_pb2.TEST else range(size - crop + 1)
        for top in (offsets if crop else [0]):
            for left in (offsets if crop else [0]):
                window = (slice(None), slice(top, top + (crop or size)), slice(left, left + (crop or size)))
                value = image[window]
                if mean is not None:
                    value = value - mean[window]
                elif len(transform.mean_value):
                    value = value - np.float32(transform.mean_value).reshape(-1, 1, 1)
                value = value * np.float32(transform.scale)
                out += [value, value[:, :, ::-1]] if transform.mirror else [value]
    return out


@pytest.mark.parametrize("name", list(NETS))
def test_trains_a_few_iterations_on_converted_images(name, tmp_path, monkeypatch):
    from caffe_cae.solvers import get_solver

    monkeypatch.chdir(tmp_path)
    zoo = NETS[name]
    images = make_data(zoo)
    big = name == "caffenet_train_val"  # 61 M parameters: train net only, two iterations
    solver = caffe_pb2.SolverParameter(base_lr=0.001, momentum=0.9, lr_policy="fixed", max_iter=2 if big else 3,
                                       display=1, snapshot_prefix="snap", snapshot_after_train=False, random_seed=1)
    if not big:
        solver.test_iter.append(1)
        solver.test_interval = 3
    solver.net_param.CopyFrom(small_batches(zoo, 2))
    solver = get_solver(solver)
    first = solver.net.layers[1].blobs[0].data.copy()
    losses = []
    for _ in range(solver.param.max_iter):
        solver.step(1)
        losses.append(float(solver.net.blobs["loss"].data))
        data_layer = solver.net.layers[0]
        for item in solver.net.blobs["data"].data:  # what the Data layer made of the converted records
            assert any(np.array_equal(item, c) for c in candidates(images, data_layer.param.transform_param,
                                                                    caffe_pb2.TRAIN))
    assert np.all(np.isfinite(losses))
    assert not np.array_equal(solver.net.layers[1].blobs[0].data, first)  # conv1 was trained
    if not big:
        test_net = solver.test_nets[0]
        test_net.forward()
        transform = test_net.layers[0].param.transform_param
        for item in test_net.blobs["data"].data:
            assert any(np.array_equal(item, c) for c in candidates(images, transform, caffe_pb2.TEST))


@pytest.mark.parametrize("name", list(NETS))
def test_params_totals_with_and_without_the_data(name, tmp_path, monkeypatch, caplog):
    monkeypatch.chdir(tmp_path)
    zoo = NETS[name]
    given = {"data": DATA_SHAPE[name]}
    nothing_here = params.count_params(zoo.path, input_shapes=given)
    if zoo.shape_without_data:
        with caplog.at_level(logging.WARNING):
            from_params = params.count_params(zoo.path)
        assert "no such database" in caplog.text and "shapes from its parameters" in caplog.text
        assert from_params.rows[0].tops[0][1] == (32, *zoo.shape_without_data)
        assert from_params.total == nothing_here.total
    else:
        with pytest.raises(CaffeCaeError, match=r"blob 'data': cannot tell the shape of data layer .* without its data "
                                                r"\(LMDB '.*': no such database .*\); give --input-shape data=C,H,W"):
            params.count_params(zoo.path)
    make_data(zoo, count=2)
    with_data = params.count_params(zoo.path)
    for report in (nothing_here, with_data):
        assert (report.total, report.unique, report.frozen) == (zoo.total, zoo.total, zoo.frozen)
    assert [r.tops for r in with_data.rows] == [r.tops for r in nothing_here.rows]


def test_a_mean_file_alone_tells_the_shape(tmp_path, monkeypatch):
    """CIFAR-10's Data layer has no crop: without the LMDB, its mean file fixes the data shape."""
    monkeypatch.chdir(tmp_path)
    zoo = NETS["cifar10_sigmoid_bn"]
    make_data(zoo, count=2)
    for layer in read_net_text(str(zoo.path)).layer:
        if layer.type == "Data":
            os.rename(layer.data_param.source, layer.data_param.source + ".away")
    report = params.count_params(zoo.path)
    assert report.rows[0].tops[0][1] == (100, 3, 32, 32) and report.total == zoo.total


def test_export_a_train_val_net_without_its_data(tmp_path, monkeypatch):
    onnxruntime = pytest.importorskip("onnxruntime")
    from caffe_cae.migrate.deploy import data_layers_as_inputs
    from caffe_cae.onnx import export

    monkeypatch.chdir(tmp_path)
    zoo = NETS["lenet_train_test"]
    param = read_net_text(str(zoo.path))
    param.state.phase = caffe_pb2.TEST
    trained = caffe_cae.Net(data_layers_as_inputs(param, {"data": (1, 1, 28, 28), "label": (1,)}), seed=3)
    trained.save("lenet.caffemodel")
    with pytest.raises(CaffeCaeError, match="give --input-shape data=C,H,W"):
        export(str(zoo.path), "lenet.caffemodel")
    model = export(str(zoo.path), "lenet.caffemodel", input_shapes={"data": (1, 28, 28)})
    assert [i.name for i in model.graph.input] == ["data"]  # the label only fed the losses
    assert [o.name for o in model.graph.output] == ["ip2"]  # not the copies a Split made for them
    x = np.random.default_rng(0).uniform(0, 1, (5, 1, 28, 28)).astype(np.float32)
    session = onnxruntime.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    (got,) = session.run(None, {"data": x})
    expected = trained.forward(["ip2"], data=x, label=np.zeros(5, np.float32))["ip2"]
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)


def test_export_takes_the_input_shape_from_the_transform_parameters(tmp_path, monkeypatch):
    """SqueezeNet's crop_size and three mean values fix 3 x 227 x 227: no data, no flag."""
    from caffe_cae.onnx import export

    monkeypatch.chdir(tmp_path)
    model = export(str(NETS["squeezenet_v1.0_train_val"].path))
    (data,) = model.graph.input
    dims = [d.dim_param or d.dim_value for d in data.type.tensor_type.shape.dim]
    assert data.name == "data" and dims == ["N", 3, 227, 227]
    assert [o.name for o in model.graph.output] == ["pool10"]


def test_lenet_trains_from_the_command_line_on_convert_imageset_lmdbs(tmp_path, monkeypatch):
    """Caffe's MNIST example: convert_imageset, then `caffe train --solver lenet_solver.prototxt`."""
    images = random_images(20, (28, 28), seed=4)
    lines = write_image_files(tmp_path / "digits", images, np.arange(20) % 10)
    (tmp_path / "digits" / "list.txt").write_text("\n".join(lines) + "\n")
    (tmp_path / "examples" / "mnist").mkdir(parents=True)
    (tmp_path / "examples/mnist/lenet_train_test.prototxt").write_text(NETS["lenet_train_test"].path.read_text())
    (tmp_path / "examples/mnist/lenet_solver.prototxt").write_text(
        'net: "examples/mnist/lenet_train_test.prototxt"\ntest_iter: 1\ntest_interval: 2\nbase_lr: 0.01\n'
        'momentum: 0.9\nweight_decay: 0.0005\nlr_policy: "inv"\ngamma: 0.0001\npower: 0.75\ndisplay: 1\n'
        'max_iter: 3\nsnapshot: 0\nsnapshot_prefix: "examples/mnist/lenet"\nsolver_mode: CPU\n')

    def cli(*args):
        result = subprocess.run([sys.executable, "-m", "caffe_cae", *args], cwd=tmp_path, capture_output=True,
                                text=True, env={**os.environ, "PYTHONPATH": str(REPO), "OPENBLAS_NUM_THREADS": "1"})
        assert result.returncode == 0, result.stderr
        return result.stderr

    monkeypatch.chdir(tmp_path)
    for split in ("train", "test"):
        assert main(["convert_imageset", "--gray", "--shuffle", "digits/", "digits/list.txt",
                     f"examples/mnist/mnist_{split}_lmdb"]) == 0
    log = cli("train", "--solver", "examples/mnist/lenet_solver.prototxt")
    for line in ("Opened lmdb examples/mnist/mnist_train_lmdb", "output data size: 64,1,28,28",
                 "Opened lmdb examples/mnist/mnist_test_lmdb", "output data size: 100,1,28,28",
                 "Iteration 0, Testing net (#0)", "Test net output #0: accuracy = ", "Iteration 2, Testing net (#0)",
                 "Iteration 1 (", "Train net output #0: loss = ", "Restarting data prefetching from start.",
                 "Optimization Done."):
        assert line in log, line
    assert (tmp_path / "examples/mnist/lenet_iter_3.caffemodel").exists()
