"""ONNX export of the forks' layers: onnxruntime reproduces the interpreter, and what has no ONNX
form is refused with one line naming what to export instead."""
from __future__ import annotations

import numpy as np
import pytest

from caffe_cae.errors import CaffeCaeError
from caffe_cae.net import Net
from caffe_cae.onnx import export_net, make_session
from caffe_cae.onnx.converters import CONVERTERS
from caffe_cae.proto import caffe_pb2
from caffe_cae.prototxt import parse_text
from tests.helpers.paths import DATA, ZOO

GAUSS = 'weight_filler { type: "gaussian" std: 0.3 } bias_filler { type: "gaussian" std: 0.3 }'


def _net(text, **kwargs):
    return Net(parse_text(text, caffe_pb2.NetParameter), caffe_pb2.TEST, seed=4, **kwargs)


def _input(name, *shape):
    dims = " ".join(f"dim: {d}" for d in shape)
    return f'layer {{ name: "{name}" type: "Input" top: "{name}" input_param {{ shape {{ {dims} }} }} }}\n'


def _check(net, feeds, outputs=None, atol=1e-5, opset=17):
    """Export, run in onnxruntime, compare every output with the interpreter."""
    model = export_net(net, outputs=outputs, opset=opset)
    net.forward(**feeds)
    names = [o.name for o in model.graph.output]
    results = make_session(model, "cpu").run(names, {i.name: feeds[i.name] for i in model.graph.input})
    for name, value in zip(names, results):
        expected = net.blobs[name.split("@")[0]].data
        assert value.shape == expected.shape, name
        np.testing.assert_allclose(value, expected, rtol=1e-5, atol=atol, err_msg=name)
    return model


def _randn(*shape, seed=1):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


@pytest.mark.parametrize("opset", [13, 18])
def test_ssd_heads_export(opset):
    net = _net(_input("data", 2, 3, 16, 16) + f'''
layer {{ name: "conv" type: "Convolution" bottom: "data" top: "conv" convolution_param {{ num_output: 4 kernel_size: 3 stride: 2 pad: 1 {GAUSS} }} }}
layer {{ name: "norm" type: "Normalize" bottom: "conv" top: "norm" norm_param {{ across_spatial: false channel_shared: false scale_filler {{ type: "uniform" min: 1 max: 3 }} }} }}
layer {{ name: "norm2" type: "Normalize" bottom: "conv" top: "norm2" norm_param {{ scale_filler {{ type: "constant" value: 5 }} }} }}
layer {{ name: "loc" type: "Convolution" bottom: "norm" top: "loc" convolution_param {{ num_output: 12 kernel_size: 1 {GAUSS} }} }}
layer {{ name: "perm" type: "Permute" bottom: "loc" top: "perm" permute_param {{ order: 0 order: 2 order: 3 order: 1 }} }}
layer {{ name: "flat" type: "Flatten" bottom: "perm" top: "flat" }}
layer {{ name: "prior" type: "PriorBox" bottom: "norm" bottom: "data" top: "prior" prior_box_param {{ min_size: 4 max_size: 9 aspect_ratio: 2 variance: 0.1 variance: 0.1 variance: 0.2 variance: 0.2 }} }}
''')
    _check(net, {"data": _randn(2, 3, 16, 16)}, outputs=["flat", "prior", "norm2"], opset=opset)


def test_detection_output_is_refused_naming_its_bottoms():
    net = _net(_input("loc", 1, 12) + _input("conf", 1, 9) + _input("prior", 1, 2, 12) + '''
layer { name: "det" type: "DetectionOutput" bottom: "loc" bottom: "conf" bottom: "prior" top: "det" detection_output_param { num_classes: 3 } }''')
    with pytest.raises(CaffeCaeError) as err:
        export_net(net)
    message = str(err.value)
    assert message.startswith("layer 'det' (DetectionOutput): ONNX export:") and "\n" not in message
    assert "--outputs loc,conf,prior" in message


def test_mobilenet_ssd_exports_up_to_its_detection_layer():
    if not {"BatchNorm", "Scale"} <= set(CONVERTERS):
        pytest.skip("needs the ONNX converters of BVLC's BatchNorm and Scale")
    net = Net(str(ZOO / "mobilenet_ssd" / "deploy.prototxt"), caffe_pb2.TEST, seed=2)
    net.blobs["data"].reshape(1, 3, 64, 64)
    net.reshape()
    # A fresh BatchNorm's statistics are zeros (variance 0: each multiplies by 1/sqrt(eps)), which
    # overflows to inf/NaN within a few of MobileNet's 27; give them a trained net's magnitudes.
    rng = np.random.default_rng(3)
    for layer in net.layer_dict.values():
        if layer.type == "BatchNorm":
            mean_sum, variance_sum, factor = layer.blobs
            mean_sum.data[...] = rng.normal(0, 0.1, mean_sum.data.shape)
            variance_sum.data[...] = rng.uniform(0.5, 2, variance_sum.data.shape)
            factor.data[...] = 1
    outputs = ["mbox_loc", "mbox_conf_flatten", "mbox_priorbox"]
    _check(net, {"data": _randn(1, 3, 64, 64)}, outputs=outputs, atol=1e-5)
    assert all(np.isfinite(net.blobs[name].data).all() for name in outputs)


def test_segnet_upsample_and_bn_export():
    net = _net(_input("x", 2, 3, 6, 8) + '''
layer { name: "bn" type: "BN" bottom: "x" top: "b" bn_param { scale_filler { type: "uniform" min: 0.5 max: 2 } shift_filler { type: "gaussian" std: 1 } } }
layer { name: "pool" type: "Pooling" bottom: "b" top: "p" top: "m" pooling_param { pool: MAX kernel_size: 2 stride: 2 } }
layer { name: "bn2" type: "BN" bottom: "p" top: "p" bn_param { bn_mode: INFERENCE scale_filler { type: "uniform" min: 0.5 max: 2 } shift_filler { type: "gaussian" std: 1 } } }
layer { name: "up" type: "Upsample" bottom: "p" bottom: "m" top: "u" upsample_param { scale: 2 } }''')
    _check(net, {"x": _randn(2, 3, 6, 8)})


def test_roi_pooling_exports_as_max_roi_pool():
    net = _net('''layer { name: "in" type: "Input" top: "data" top: "rois" input_param { shape { dim: 2 dim: 3 dim: 12 dim: 14 } shape { dim: 4 dim: 5 } } }
layer { name: "pool" type: "ROIPooling" bottom: "data" bottom: "rois" top: "pool" roi_pooling_param { pooled_h: 3 pooled_w: 4 spatial_scale: 0.0625 } }''')
    rois = np.array([[0, 8, 8, 150, 120], [1, 0, 0, 223, 191], [0, 40, 20, 48, 28], [1, 100, 30, 90, 20]], np.float32)
    _check(net, {"data": _randn(2, 3, 12, 14), "rois": rois})


@pytest.mark.parametrize("body, bottoms", [
    ("interp_param { zoom_factor: 3 }", 1),
    ("interp_param { shrink_factor: 2 pad_beg: -1 pad_end: -1 }", 1),
    ("interp_param { height: 5 width: 9 }", 1),
    ("", 2),
])
def test_interp_exports_as_resize(body, bottoms):
    second = 'bottom: "ref"' if bottoms == 2 else ""
    net = _net(_input("x", 2, 3, 7, 6) + (_input("ref", 1, 1, 4, 11) if bottoms == 2 else "")
               + f'layer {{ name: "interp" type: "Interp" bottom: "x" {second} top: "y" {body} }}')
    feeds = {"x": _randn(2, 3, 7, 6)}
    if bottoms == 2:
        feeds["ref"] = _randn(1, 1, 4, 11)
    _check(net, feeds, outputs=["y"])


def test_relu6_shuffle_channel_depthwise_and_dropout_export():
    net = _net(_input("x", 2, 6, 5, 5) + f'''
layer {{ name: "dw" type: "DepthwiseConvolution" bottom: "x" top: "dw" convolution_param {{ num_output: 6 group: 6 kernel_size: 3 pad: 1 {GAUSS} }} }}
layer {{ name: "r6" type: "ReLU6" bottom: "dw" top: "dw" }}
layer {{ name: "shuffle" type: "ShuffleChannel" bottom: "dw" top: "s" shuffle_channel_param {{ group: 3 }} }}
layer {{ name: "leaky6" type: "ReLU6" bottom: "s" top: "l" relu6_param {{ negative_slope: 0.1 }} }}
layer {{ name: "drop" type: "Dropout" bottom: "l" top: "d" dropout_param {{ dropout_ratio: 0.3 scale_train: false }} }}''')
    _check(net, {"x": _randn(2, 6, 5, 5) * 8})


def test_monte_carlo_dropout_is_refused():
    net = _net(_input("x", 2, 3) + 'layer { name: "drop" type: "Dropout" bottom: "x" top: "y" '
                                   'dropout_param { sample_weights_test: true } }')
    with pytest.raises(CaffeCaeError, match=r"layer 'drop' \(Dropout\): ONNX export: sample_weights_test"):
        export_net(net)


def test_python_layer_is_refused_naming_its_bottoms(monkeypatch):
    monkeypatch.syspath_prepend(str(DATA / "python_layers"))
    net = _net(_input("x", 2, 3, 2, 2) + '''layer { name: "py" type: "Python" bottom: "x" top: "y"
  python_param { module: "py_scale" layer: "ScaleShift" } }''', allow_python_layers=True)
    with pytest.raises(CaffeCaeError, match=r"layer 'py' \(Python\): ONNX export: a Python layer "
                                            r"\(py_scale.ScaleShift\).*--outputs x"):
        export_net(net)
