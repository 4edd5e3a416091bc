"""The export rewrites of ``caffe_cae.onnx.fusion``: top-left Unpooling folded into the next
Deconvolution, a Deconvolution of a 1x1 map as Gemm.  Same values as the interpreter (and as
the plain export), fewer nodes; geometries the fold cannot express fall back to the plain
nodes."""
import numpy as np
import pytest

from caffe_cae import generate
from caffe_cae.experiments.encode import feed_net_param
from caffe_cae.net import Net
from caffe_cae.onnx import export_net, make_session
from caffe_cae.proto import caffe_pb2
from caffe_cae.prototxt import parse_text

ATOL = 1e-5


def _net(unpool: str, deconv: str, shape=(3, 4, 4, 4)):
    dims = " ".join(f"dim: {d}" for d in shape)
    text = f"""
    layer {{ name: "data" type: "Input" top: "data" input_param {{ shape {{ {dims} }} }} }}
    layer {{ name: "unpool" type: "Unpooling" bottom: "data" top: "unpooled"
            unpooling_param {{ unpool: MAX {unpool} }} }}
    layer {{ name: "deconv" type: "Deconvolution" bottom: "unpooled" top: "out"
            convolution_param {{ {deconv} weight_filler {{ type: "gaussian" std: 0.3 }}
                                bias_filler {{ type: "constant" value: 0.2 }} }} }}
    """
    return Net(parse_text(text, caffe_pb2.NetParameter, "<test>"), phase=caffe_pb2.TEST, seed=3)


def _ort_equals_interpreter(net, **export_args):
    model = export_net(net, **export_args)
    feeds = {name: np.random.default_rng(0).standard_normal(net.blobs[name].shape).astype(np.float32)
             for name in net.inputs}
    net.forward(**feeds)
    names = [output.name for output in model.graph.output]
    for name, result in zip(names, make_session(model, "cpu").run(names, feeds)):
        value = net.blobs[name].data
        assert result.shape == value.shape
        np.testing.assert_allclose(result, value, rtol=0, atol=ATOL, err_msg=name)
    return [node.op_type for node in model.graph.node], model


@pytest.mark.parametrize("unpool, deconv", [
    ("kernel_size: 2 stride: 2 unpool_size: 8", "num_output: 3 kernel_size: 5"),            # Model 4
    ("kernel_size: 2 stride: 2 unpool_size: 8", "num_output: 3 kernel_size: 3 pad: 1"),
    ("kernel_size: 2 stride: 2 unpool_size: 8", "num_output: 3 kernel_size: 4 stride: 2 pad: 1"),
    ("kernel_size: 3 stride: 3 unpool_size: 12", "num_output: 2 kernel_size: 3 dilation: 2"),
    ("kernel_size: 2 stride: 2 unpool_h: 8 unpool_w: 6", "num_output: 4 kernel_size: 3 group: 2"),
    ("kernel_size: 2 stride: 2 unpool_size: 7", "num_output: 2 kernel_size: 2 bias_term: false"),
])
def test_folded_unpooling_matches_the_interpreter(unpool, deconv):
    shape = (3, 4, 4, 3) if "unpool_w" in unpool else (3, 4, 4, 4)
    ops, model = _ort_equals_interpreter(_net(unpool, deconv, shape))
    assert ops == ["ConvTranspose"], ops  # the Unpooling's nodes are gone
    plain_ops, _ = _ort_equals_interpreter(_net(unpool, deconv, shape), optimize=False)
    assert plain_ops.count("ConvTranspose") == 2, plain_ops


def test_unfoldable_geometry_keeps_the_unpooling_nodes():
    # unpooled map 3 cells wider than the input spread (5): output_padding 3 >= stride 2
    ops, _ = _ort_equals_interpreter(_net("kernel_size: 2 stride: 2 unpool_size: 8", "num_output: 2 kernel_size: 3",
                                          shape=(2, 3, 3, 3)))
    assert ops.count("ConvTranspose") == 2


def test_unpooled_blob_requested_as_output_is_not_folded():
    net = _net("kernel_size: 2 stride: 2 unpool_size: 8", "num_output: 3 kernel_size: 5")
    ops, model = _ort_equals_interpreter(net, outputs=["unpooled", "out"])
    assert [o.name for o in model.graph.output] == ["unpooled", "out"]
    assert ops.count("ConvTranspose") == 2


def test_papers_model4_exports_folded_and_with_gemm_for_the_1x1_deconvolution():
    param = generate.net_param("model4", dim=10, batch=5, deploy=True)
    net = Net(param, phase=caffe_pb2.TEST, seed=1)
    ops, model = _ort_equals_interpreter(net)
    names = {node.name for node in model.graph.node}
    assert not any(name.startswith("unpool") for name in names)
    transposes = [n for n in model.graph.node if n.op_type == "ConvTranspose"]
    assert [n.name for n in transposes] == ["deconv1", "deconv1neur"]
    assert all([a.ints for a in n.attribute if a.name == "strides"] == [[2, 2]] for n in transposes)
    assert "Gemm" in [n.op_type for n in model.graph.node if n.name.startswith("deconv2")]


@pytest.mark.parametrize("deconv, expect_gemm", [
    ("num_output: 6 kernel_size: 4", True),
    ("num_output: 6 kernel_size: 4 stride: 3", True),          # one input cell: stride is moot
    ("num_output: 6 kernel_size: 4 pad: 1", False),
    ("num_output: 6 kernel_size: 4 group: 2", False),
    ("num_output: 6 kernel_size: 3 dilation: 2", False),
])
def test_deconvolution_of_a_single_cell(deconv, expect_gemm):
    text = f"""
    layer {{ name: "data" type: "Input" top: "data" input_param {{ shape {{ dim: 4 dim: 8 dim: 1 dim: 1 }} }} }}
    layer {{ name: "deconv" type: "Deconvolution" bottom: "data" top: "out"
            convolution_param {{ {deconv} weight_filler {{ type: "gaussian" std: 0.3 }}
                                bias_filler {{ type: "constant" value: 0.2 }} }} }}
    """
    net = Net(parse_text(text, caffe_pb2.NetParameter, "<test>"), phase=caffe_pb2.TEST, seed=2)
    ops, _ = _ort_equals_interpreter(net)
    assert ("Gemm" in ops) == expect_gemm, ops


def test_cli_no_fuse_keeps_every_layers_nodes(tmp_path):
    import subprocess
    import sys

    import onnx

    net_path = tmp_path / "model4.prototxt"
    generated = subprocess.run([sys.executable, "-m", "caffe_cae", "gen", "model4", "--dim", "10", "--deploy"],
                               capture_output=True, text=True)
    assert generated.returncode == 0, generated.stderr
    net_path.write_text(generated.stdout)
    node_names = {}
    for flag in ([], ["--no-fuse"]):
        path = tmp_path / f"m{len(flag)}.onnx"
        result = subprocess.run([sys.executable, "-m", "caffe_cae", "export", str(net_path), "-o", str(path), *flag],
                                capture_output=True, text=True)
        assert result.returncode == 0, result.stderr
        node_names[bool(flag)] = {node.name for node in onnx.load(str(path)).graph.node}
    assert {"unpool1", "unpool2"} <= node_names[True]
    assert not {"unpool1", "unpool2"} & node_names[False]
