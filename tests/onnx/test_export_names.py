"""Caffe accepts layers with an empty name; their ONNX nodes' intermediate tensors still get
names (an empty tensor name fails the ONNX checker: found by the fuzz run)."""
import numpy as np

from caffe_cae.net import Net
from caffe_cae.onnx.export import export_net
from caffe_cae.onnx.runtime import make_session
from caffe_cae.proto import caffe_pb2
from caffe_cae.prototxt import parse_text

NET = """
layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 2 dim: 3 dim: 4 dim: 4 } } }
layer { name: "" type: "Power" bottom: "data" top: "p" power_param { power: 2 scale: 3 shift: 1 } }
layer { name: "" type: "Deconvolution" bottom: "p" top: "d"
        convolution_param { num_output: 2 kernel_size: 2 stride: 2 weight_filler { type: "gaussian" } } }
"""


def test_layers_without_names_export_and_run():
    net = Net(parse_text(NET, caffe_pb2.NetParameter, "<test>"), seed=3)
    model = export_net(net)
    assert all(output for node in model.graph.node for output in node.output)
    x = np.random.default_rng(0).random((2, 3, 4, 4), dtype=np.float32)
    expected = net.forward(data=x)["d"]
    got = make_session(model, device="cpu").run(None, {"data": x})[0]
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)
