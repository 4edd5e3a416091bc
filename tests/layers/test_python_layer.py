"""``type: "Python"`` layers: refused by default, run with pycaffe's interface when allowed."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

import caffe_cae
from caffe_cae.errors import CaffeCaeError
from caffe_cae.net import Net
from caffe_cae.proto import caffe_pb2
from caffe_cae.prototxt import parse_text
from caffe_cae.testing import check_gradients
from tests.helpers.paths import DATA

MODULES = DATA / "python_layers"


def _net_text(layer="ScaleShift", param_str="{'w': 2.0, 'b': 0.5}", module="py_scale", extra=""):
    return f'''name: "py"
force_backward: true
layer {{ name: "in" type: "Input" top: "x" input_param {{ shape {{ dim: 2 dim: 3 dim: 2 dim: 2 }} }} }}
layer {{ name: "py" type: "Python" bottom: "x" top: "y"
  python_param {{ module: "{module}" layer: "{layer}" param_str: "{param_str}" }} }}
{extra}'''


def _net(text=None, **kwargs):
    return Net(parse_text(text or _net_text(), caffe_pb2.NetParameter), caffe_pb2.TEST, **kwargs)


@pytest.fixture
def on_path(monkeypatch):
    monkeypatch.syspath_prepend(str(MODULES))


def test_refused_by_default_with_a_reason():
    with pytest.raises(CaffeCaeError) as err:
        _net()
    message = str(err.value)
    assert "\n" not in message and message.startswith("layer 'py' (Python): Python layers run arbitrary code")
    assert "py_scale.ScaleShift" in message and "--allow-python-layers" in message
    assert "allow_python_layers=True" in message


def test_runs_setup_reshape_forward_backward_with_learned_blobs(on_path):
    net = _net(allow_python_layers=True)
    assert [b.shape for b in net.params["py"]] == [(3,), (3,)]
    np.testing.assert_array_equal(net.params["py"][0].data, [2.0, 3.0, 4.0])  # setup's values
    x = np.random.default_rng(1).standard_normal((2, 3, 2, 2)).astype(np.float32)
    y = net.forward(x=x)["y"]
    np.testing.assert_allclose(y, np.array([2, 3, 4], np.float32).reshape(1, 3, 1, 1) * x + 0.5, rtol=1e-6)
    dx = net.backward(y=np.ones_like(y))["x"]
    np.testing.assert_array_equal(dx, np.broadcast_to(np.array([2, 3, 4], np.float32).reshape(1, 3, 1, 1), x.shape))
    np.testing.assert_allclose(net.params["py"][0].diff, x.sum(axis=(0, 2, 3)), rtol=1e-5)


def test_the_modules_blobs_are_the_nets_parameters(on_path, tmp_path):
    net = _net(allow_python_layers=True)
    net.params["py"][0].data[...] = [7.0, 8.0, 9.0]
    net.save(str(tmp_path / "py.caffemodel"))
    again = _net(allow_python_layers=True, weights=str(tmp_path / "py.caffemodel"))
    y = again.forward(x=np.ones((2, 3, 2, 2), np.float32))["y"]
    np.testing.assert_array_equal(y[0, :, 0, 0], [7.5, 8.5, 9.5])


def test_gradient_check_of_a_python_layer(on_path):
    with caffe_cae.allow_python_layers():
        report = check_gradients(
            'name: "py" type: "Python" bottom: "x" top: "y" python_param { module: "py_scale" '
            "layer: \"ScaleShift\" param_str: \"{'w': 0.5, 'b': 1.0}\" }", [(2, 3, 4)])
    assert report.checked == 24 + 6


def test_module_next_to_the_prototxt_is_found(tmp_path):
    (tmp_path / "beside.py").write_text(
        "import caffe\n"
        "class Double(caffe.Layer):\n"
        "    def reshape(self, bottom, top):\n"
        "        top[0].reshape(*bottom[0].data.shape)\n"
        "    def forward(self, bottom, top):\n"
        "        top[0].data[...] = 2 * bottom[0].data\n"
        "        self.seen = (str(self.phase), self.param_str_)\n")
    path = tmp_path / "net.prototxt"
    path.write_text(_net_text(layer="Double", module="beside", param_str="abc"))
    net = Net(str(path), caffe_pb2.TEST, allow_python_layers=True)
    np.testing.assert_array_equal(net.forward(x=np.ones((2, 3, 2, 2)))["y"], 2.0)
    assert net.layers[1].impl.seen == ("TEST", "abc")
    assert isinstance(net.layers[1].impl, caffe_cae.Layer)  # the module's `import caffe` got caffe_cae


def test_a_top_shaped_in_forward_reshapes_the_layers_after_it(tmp_path):
    (tmp_path / "rows.py").write_text(
        "import caffe, numpy as np\n"
        "class Positive(caffe.Layer):\n"
        "    def setup(self, bottom, top):\n"
        "        top[0].reshape(1, 2)\n"
        "    def forward(self, bottom, top):\n"
        "        x = bottom[0].data.reshape(-1, 2)\n"
        "        keep = x[x[:, 0] > 0]\n"
        "        top[0].reshape(*keep.shape)\n"
        "        top[0].data[...] = keep\n")
    path = tmp_path / "net.prototxt"
    path.write_text(_net_text(layer="Positive", module="rows", param_str="") + '''
layer { name: "relu" type: "ReLU" bottom: "y" top: "z" }''')
    net = Net(str(path), caffe_pb2.TEST, allow_python_layers=True)
    assert net.blobs["z"].shape == (1, 2)
    x = np.array([1, 2, -1, 5, 3, -4] + [0] * 18, np.float32).reshape(2, 3, 2, 2)
    z = net.forward(x=x)["z"]
    np.testing.assert_array_equal(z, [[1, 2], [3, 0]])


@pytest.mark.parametrize("layer, module, message", [
    ("ScaleShift", "no_such_module", "cannot import module 'no_such_module'"),
    ("NoSuchClass", "py_scale", "module 'py_scale' .* has no class 'NoSuchClass'"),
])
def test_import_errors_name_the_layer(on_path, layer, module, message):
    with pytest.raises(CaffeCaeError, match=rf"^layer 'py' \(Python\): {message}"):
        _net(_net_text(layer=layer, module=module), allow_python_layers=True)


def test_an_exception_in_the_module_is_one_line_naming_the_layer(on_path):
    net = _net(_net_text(layer="Broken", param_str=""), allow_python_layers=True)
    with pytest.raises(CaffeCaeError, match=r"^layer 'py' \(Python\): py_scale.Broken.forward\(\) raised "
                                             r"ValueError: the module failed$"):
        net.forward(x=np.ones((2, 3, 2, 2)))


def test_a_missing_backward_is_named(on_path):
    net = _net(_net_text(layer="NoBackward", param_str=""), allow_python_layers=True)
    net.forward(x=np.ones((2, 3, 2, 2)))
    with pytest.raises(CaffeCaeError, match=r"py_scale.NoBackward has no method backward\(\)"):
        net.backward(y=np.ones((2, 3, 2, 2)))


def test_context_manager_and_explicit_refusal(on_path):
    with caffe_cae.allow_python_layers():
        _net()
        with pytest.raises(CaffeCaeError, match="refused by default"):
            _net(allow_python_layers=False)
    with pytest.raises(CaffeCaeError, match="refused by default"):
        _net()


def test_command_line_flag(tmp_path):
    path = tmp_path / "net.prototxt"
    path.write_text(_net_text())
    (tmp_path / "py_scale.py").write_text((MODULES / "py_scale.py").read_text())
    run = [sys.executable, "-m", "caffe_cae", "params", str(path), "--phase", "TEST"]
    refused = subprocess.run(run, capture_output=True, text=True)
    assert refused.returncode == 1 and len(refused.stderr.strip().splitlines()) == 1
    assert "--allow-python-layers" in refused.stderr
    allowed = subprocess.run(run + ["--allow-python-layers"], capture_output=True, text=True)
    assert allowed.returncode == 0, allowed.stderr
    assert "py" in allowed.stdout
