"""V0 -> V1 details beyond the golden case: padding-layer checks and fields that cannot move."""
import pytest

from caffe_cae import prototxt
from caffe_cae.errors import CaffeCaeError
from caffe_cae.migrate import upgrade_net
from caffe_cae.proto import caffe_pb2


def net(text):
    return prototxt.parse_text(text, caffe_pb2.NetParameter)


PAD_INTO = """
input: "data" input_dim: 1 input_dim: 1 input_dim: 8 input_dim: 8
layers {{ layer {{ name: "pad1" type: "padding" pad: 2 }} bottom: "data" top: "pad1" }}
layers {{ layer {{ name: "next" type: "{kind}" {extra} }} bottom: "pad1" {more} top: "next" }}
"""


def test_padding_into_pool_sets_pooling_pad():
    upgraded, notes = upgrade_net(net(PAD_INTO.format(kind="pool", extra="kernelsize: 3", more="")))
    pool = upgraded.layer[1]
    assert pool.type == "Pooling" and list(pool.bottom) == ["data"]
    assert pool.pooling_param.pad == 2 and pool.pooling_param.kernel_size == 3
    assert [layer.name for layer in upgraded.layer] == ["input", "next"]
    assert not any(n.level == "error" for n in notes)


def test_padding_into_relu_is_refused_naming_both_layers():
    with pytest.raises(CaffeCaeError, match=r"layer 'pad1' \(padding\): feeds layer 'next' \(relu\)"):
        upgrade_net(net(PAD_INTO.format(kind="relu", extra="", more="")))


def test_padded_conv_with_two_bottoms_is_refused():
    with pytest.raises(CaffeCaeError, match="layer 'next' .*exactly one bottom"):
        upgrade_net(net(PAD_INTO.format(kind="conv", extra="", more='bottom: "data"')))


def test_unknown_bottom_is_refused():
    text = 'layers { layer { name: "c" type: "conv" } bottom: "nothing" top: "c" }'
    with pytest.raises(CaffeCaeError, match="layer 'c' .*unknown bottom blob 'nothing'"):
        upgrade_net(net(text))


def test_unknown_v0_type_lists_known_ones():
    text = 'layers { layer { name: "x" type: "warp" } top: "x" }'
    with pytest.raises(CaffeCaeError, match="unknown V0 layer type 'warp' .*innerproduct"):
        upgrade_net(net(text))


def test_field_for_wrong_type_is_a_problem_like_caffe():
    text = 'layers { layer { name: "r" type: "relu" num_output: 3 } bottom: "x" top: "x" }'
    upgraded, notes = upgrade_net(net('input: "x" ' + text))
    errors = [n for n in notes if n.level == "error"]
    assert "Unknown parameter num_output for layer type relu" in errors
    assert any("problems upgrading V0NetParameter" in n for n in errors)
    assert upgraded.layer[0].type == "ReLU" and not upgraded.layer[0].HasField("inner_product_param")


def test_v0_transform_and_data_fields():
    text = ('layers { layer { name: "d" type: "data" source: "db" batchsize: 16 scale: 0.5 '
            'meanfile: "m.binaryproto" cropsize: 7 mirror: true rand_skip: 3 } top: "d" }')
    upgraded, notes = upgrade_net(net(text))
    layer = upgraded.layer[0]
    assert layer.type == "Data"
    assert (layer.data_param.source, layer.data_param.batch_size, layer.data_param.rand_skip) == ("db", 16, 3)
    t = layer.transform_param
    assert (t.scale, t.mean_file, t.crop_size, t.mirror) == (0.5, "m.binaryproto", 7, True)
    assert not any(n.level == "error" for n in notes)


def test_v0_fields_caffe_never_reads_are_warned():
    text = 'layers { layer { name: "d" type: "data" new_num: 4 } top: "d" }'
    _, notes = upgrade_net(net(text))
    assert [n for n in notes if n.level == "warning" and "new_num" in n]
