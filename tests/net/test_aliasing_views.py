"""Review: Caffe's Convolution/Deconvolution backward re-reads the bottom's *current* data.  When
a later in-place layer overwrites that memory through the views of Split/Flatten/Reshape tops,
the weight gradient must use the overwritten values (as Caffe computes it), not columns kept
from the forward pass."""
import numpy as np
import pytest

import caffe_cae
from caffe_cae.proto import caffe_pb2
from caffe_cae.prototxt import parse_text

NET = """
name: "alias" force_backward: true
layer {{ name: "in" type: "Input" top: "a" input_param {{ shape {{ dim: 2 dim: 2 dim: {h} dim: {h} }} }} }}
layer {{ name: "c1" type: "{kind}" bottom: "a" top: "c1" convolution_param {{ num_output: 2 {extra} weight_filler {{ type: "gaussian" std: 0.3 }} }} }}
layer {{ name: "fl" type: "{share}" bottom: "a" top: "f" {share_param} }}
layer {{ name: "r" type: "ReLU" bottom: "f" top: "f" }}
layer {{ name: "ip" type: "InnerProduct" bottom: "f" top: "ip" inner_product_param {{ num_output: 2 weight_filler {{ type: "gaussian" std: 0.3 }} }} }}
"""


@pytest.mark.parametrize("share,share_param", [("Flatten", ""),
                                               ("Reshape", 'reshape_param { shape { dim: 0 dim: -1 } }')])
@pytest.mark.parametrize("kind,extra,h", [("Convolution", "kernel_size: 3", 5), ("Convolution", "kernel_size: 1", 5),
                                          ("Deconvolution", "kernel_size: 3 stride: 2", 3)])
def test_weight_gradient_reads_the_bottom_overwritten_by_a_later_in_place_layer(kind, extra, h, share, share_param):
    text = NET.format(kind=kind, extra=extra, h=h, share=share, share_param=share_param)
    param = parse_text(text, caffe_pb2.NetParameter, "review")
    x = np.random.default_rng(0).standard_normal((2, 2, h, h)).astype(np.float32)
    net = caffe_cae.Net(param, seed=0)
    net.forward(a=x)
    assert (net.blobs["a"].data >= 0).all()  # the ReLU overwrote 'a' through the shared views
    top_diff = np.ones(net.blobs["c1"].shape, np.float32)
    net.backward(c1=top_diff, ip=np.ones((2, 2), np.float32))

    # Caffe: the weight gradient is computed from the bottom as it is at backward time.
    expected = caffe_cae.Net(param, seed=0)
    expected.forward(a=np.maximum(x, 0))
    expected.backward(c1=top_diff, ip=np.ones((2, 2), np.float32))
    np.testing.assert_allclose(net.params["c1"][0].diff, expected.params["c1"][0].diff, rtol=1e-6, atol=1e-6)


ONNX_NET = """
layer { name: "in" type: "Input" top: "a" input_param { shape { dim: 2 dim: 2 dim: 5 dim: 5 } } }
layer { name: "fl" type: "Flatten" bottom: "a" top: "f" }
layer { name: "r" type: "ReLU" bottom: "f" top: "f" }
layer { name: "rs" type: "Reshape" bottom: "f" top: "h" reshape_param { shape { dim: 0 dim: -1 } } }
%s
layer { name: "ip" type: "InnerProduct" bottom: "h" top: "ip" inner_product_param { num_output: 2 weight_filler { type: "gaussian" std: 0.3 } } }
"""
LATE_READER = ('layer { name: "c1" type: "Convolution" bottom: "a" top: "c1" '
               'convolution_param { num_output: 2 kernel_size: 3 weight_filler { type: "gaussian" std: 0.3 } } }')


def _onnx_net(extra):
    return caffe_cae.Net(parse_text(ONNX_NET % extra, caffe_pb2.NetParameter, "review"), seed=0)


def test_onnx_export_refuses_a_read_of_memory_an_in_place_layer_overwrote_through_a_view():
    from caffe_cae.errors import CaffeCaeError
    from caffe_cae.onnx import export_net

    net = _onnx_net(LATE_READER)  # c1 reads 'a' after 'r' overwrote it through the view 'f'
    with pytest.raises(CaffeCaeError, match=r"layer 'c1' \(Convolution\): ONNX export: reads blob 'a.*'r' \(ReLU\).*'f'"):
        export_net(net)


def test_onnx_export_of_views_read_after_the_in_place_layer_is_exact():
    from caffe_cae.onnx import export_net, make_session

    net = _onnx_net("")  # 'h' is made from 'f' after the ReLU: no stale value anywhere
    x = np.random.default_rng(0).standard_normal((2, 2, 5, 5)).astype(np.float32)
    out = net.forward(a=x)
    got = make_session(export_net(net), "cpu").run(["ip"], {"a": x})[0]
    np.testing.assert_allclose(got, out["ip"], rtol=0, atol=1e-5)
