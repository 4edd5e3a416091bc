"""Review: ONNX export of the geometries that bite (pooling with pad and ceil/clip, Unpooling
sizes other than 2x, in-place layers, Split, several inputs, Reshape -1) matches the interpreter
at the exported batch size and at another one (the batch axis is dynamic)."""
import numpy as np
import pytest

from caffe_cae.net import Net
from caffe_cae.onnx import export_net, make_session
from caffe_cae.proto import caffe_pb2
from caffe_cae.prototxt import parse_text

INPUT = 'layer { name: "in" type: "Input" top: "data" input_param { shape { dim: 2 dim: 3 dim: %d dim: %d } } }\n'


def _check(text):
    net = Net(parse_text(text, caffe_pb2.NetParameter, "review"), phase=caffe_pb2.TEST, seed=0)
    model = export_net(net)
    session = make_session(model, "cpu")
    names = [o.name for o in model.graph.output]
    for batch in (2, 5):
        rng = np.random.default_rng(batch)
        feeds = {n: rng.standard_normal((batch,) + net.blobs[n].shape[1:]).astype(np.float32)
                 for n in net.inputs}
        net.forward(**feeds)
        results = session.run(names, {i.name: feeds[i.name] for i in model.graph.input})
        for name, value in zip(names, results):
            expected = net.blobs[name.split("@")[0]].data
            assert value.shape == expected.shape, name
            np.testing.assert_allclose(value, expected, rtol=0, atol=1e-5, err_msg=f"{name} batch {batch}")


@pytest.mark.parametrize("h,w,k,s,p,pool", [
    (7, 8, 3, 2, 1, "AVE"), (7, 8, 3, 2, 1, "MAX"), (6, 9, 2, 2, 1, "AVE"),
    (10, 10, 4, 3, 2, "MAX"), (6, 6, 3, 2, 0, "AVE"),
])
def test_pooling_pad_ceil_clip(h, w, k, s, p, pool):
    tops = 'top: "p" top: "m"' if pool == "MAX" else 'top: "p"'
    _check(INPUT % (h, w) + f'layer {{ name: "p" type: "Pooling" bottom: "data" {tops} pooling_param '
                            f'{{ pool: {pool} kernel_size: {k} stride: {s} pad: {p} }} }}')


@pytest.mark.parametrize("mode", ["MAX", "AVE", "TILE"])
@pytest.mark.parametrize("h,w,k,s,size", [(3, 3, 2, 2, 7), (3, 4, 3, 2, 8), (3, 3, 2, 3, 9)])
def test_unpooling_sizes_other_than_2x(h, w, k, s, size, mode):
    _check(INPUT % (h, w) + f'layer {{ name: "u" type: "Unpooling" bottom: "data" top: "u" '
                            f'unpooling_param {{ unpool: {mode} kernel_size: {k} stride: {s} unpool_size: {size} }} }}')


def test_in_place_split_several_inputs_and_reshape():
    _check(INPUT % (4, 4) + """
layer { name: "in2" type: "Input" top: "d2" input_param { shape { dim: 2 dim: 48 } } }
layer { name: "r" type: "ReLU" bottom: "data" top: "data" }
layer { name: "rs" type: "Reshape" bottom: "data" top: "rs" reshape_param { shape { dim: -1 dim: 48 } } }
layer { name: "e" type: "Eltwise" bottom: "rs" bottom: "d2" top: "e" eltwise_param { operation: PROD } }
layer { name: "s" type: "Sigmoid" bottom: "e" top: "e" }
layer { name: "ip" type: "InnerProduct" bottom: "e" top: "ip" inner_product_param { num_output: 3 weight_filler { type: "gaussian" std: 1 } } }
layer { name: "ip2" type: "InnerProduct" bottom: "e" top: "ip2" inner_product_param { num_output: 2 weight_filler { type: "gaussian" std: 1 } } }
layer { name: "fl" type: "Flatten" bottom: "data" top: "fl" flatten_param { axis: 2 } }
layer { name: "ip3" type: "InnerProduct" bottom: "fl" top: "ip3" inner_product_param { num_output: 2 axis: 2 weight_filler { type: "gaussian" std: 1 } } }
layer { name: "sm" type: "Softmax" bottom: "ip3" top: "sm" softmax_param { axis: 1 } }
""")


def test_pooling_with_windows_outside_the_input_is_refused_at_export():
    from caffe_cae.errors import CaffeCaeError

    # kernel 1, stride 3 on 5 cells: Caffe's ceil rounding adds a window starting at cell 6,
    # outside the input (no pad, so no clip); ONNX pads must be smaller than the kernel.
    net = Net(parse_text(INPUT % (5, 5) + 'layer { name: "p" type: "Pooling" bottom: "data" top: "p" '
                         'pooling_param { pool: MAX kernel_size: 1 stride: 3 } }',
                         caffe_pb2.NetParameter, "review"), phase=caffe_pb2.TEST)
    assert net.blobs["p"].shape == (2, 3, 3, 3)
    with pytest.raises(CaffeCaeError, match=r"layer 'p' \(Pooling\): ONNX export: .*outside"):
        export_net(net)


def _reshape_net(shape_text, extra=""):
    return Net(parse_text(INPUT % (4, 4) + 'layer { name: "rs" type: "Reshape" bottom: "data" top: "rs" '
                          f'reshape_param {{ shape {{ {shape_text} }} {extra} }} }}',
                          caffe_pb2.NetParameter, "review"), phase=caffe_pb2.TEST, seed=0)


@pytest.mark.parametrize("shape_text,extra", [
    ("dim: 2 dim: -1", ""),                      # fixed first dim: the batch goes into axis 1
    ("dim: 1", "axis: 0 num_axes: 0"),           # a leading 1: the batch moves to axis 1
    ("dim: -1", "axis: 0 num_axes: 0"),          # ... and an inferred axis besides (Shape op)
    ("dim: -1 dim: 2", "axis: 1"),               # the batch copied, the rest inferred
    ("dim: 0 dim: 3 dim: -1", ""),
])
def test_reshape_follows_caffe_at_another_batch(shape_text, extra):
    """Exported at batch 2, run at batch 4: a fixed dim stays fixed, only copied (0, or outside
    the reshaped span) and inferred (-1) dims follow the batch, as Caffe computes them."""
    net = _reshape_net(shape_text, extra)
    model = export_net(net)
    feeds = {"data": np.random.default_rng(0).standard_normal((4, 3, 4, 4)).astype(np.float32)}
    net.forward(**feeds)
    (value,) = make_session(model, "cpu").run(["rs"], feeds)
    assert value.shape == net.blobs["rs"].shape
    np.testing.assert_array_equal(value, net.blobs["rs"].data)


def test_reshape_to_fixed_dims_refuses_another_batch_like_caffe():
    from caffe_cae.errors import CaffeCaeError

    net = _reshape_net("dim: 2 dim: 48")
    session = make_session(export_net(net), "cpu")
    data = np.zeros((4, 3, 4, 4), np.float32)
    with pytest.raises(CaffeCaeError, match="count"):
        net.forward(data=data)
    with pytest.raises(Exception, match="(?i)reshape|shape"):
        session.run(None, {"data": data})
