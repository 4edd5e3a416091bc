"""The Reshape fix: InnerProduct tops (2-D since 2015) feeding spatial layers in legacy nets."""
from caffe_cae import prototxt
from caffe_cae.migrate import upgrade_net
from caffe_cae.proto import caffe_pb2

HEAD = 'input: "x" input_dim: 2 input_dim: 3 input_dim: 4 input_dim: 4\n'


def upgrade(body, **kwargs):
    upgraded, notes = upgrade_net(prototxt.parse_text(HEAD + body, caffe_pb2.NetParameter), **kwargs)
    return upgraded, [n for n in notes if "inserted Reshape" in n]


def names(net):
    return [layer.name for layer in net.layer]


def layer(net, name):
    return [l for l in net.layer if l.name == name][0]


IP = 'layers { name: "ip" type: INNER_PRODUCT bottom: "x" top: "ip" inner_product_param { num_output: 8 } }\n'


def test_direct_feed():
    net, notes = upgrade(IP + 'layers { name: "dc" type: DECONVOLUTION bottom: "ip" top: "dc" }')
    assert names(net) == ["input", "ip", "reshape", "dc"]
    assert list(layer(net, "dc").bottom) == ["ipsh"]
    assert len(notes) == 1 and "'dc'" in notes[0] and notes[0].level == "warning"


def test_after_last_in_place_layer_before_the_consumer():
    body = IP + ('layers { name: "s1" type: SIGMOID bottom: "ip" top: "ip" }\n'
                 'layers { name: "d1" type: DROPOUT bottom: "ip" top: "ip" }\n'
                 'layers { name: "cv" type: CONVOLUTION bottom: "ip" top: "cv" }\n'
                 'layers { name: "s2" type: SIGMOID bottom: "ip" top: "ip" }\n')
    net, notes = upgrade(body)
    assert names(net) == ["input", "ip", "s1", "d1", "reshape", "cv", "s2"]
    assert len(notes) == 1


def test_spatial_consumers_share_one_reshape_others_are_untouched():
    body = IP + ('layers { name: "p" type: POOLING bottom: "ip" top: "p" }\n'
                 'layers { name: "ip2" type: INNER_PRODUCT bottom: "ip" top: "ip2" }\n'
                 'layers { name: "c" type: CONVOLUTION bottom: "ip" top: "c" }\n')
    net, notes = upgrade(body)
    assert len(notes) == 1 and names(net).count("reshape") == 1
    assert layer(net, "p").bottom[0] == layer(net, "c").bottom[0] == "ipsh"
    assert layer(net, "ip2").bottom[0] == "ip"


def test_unpooling_values_fixed_mask_left_alone():
    body = ('layers { name: "pool" type: POOLING bottom: "x" top: "pool" top: "mask" }\n'
            + IP + 'layers { name: "u" type: UNPOOLING bottom: "ip" bottom: "mask" top: "u" }\n')
    net, notes = upgrade(body)
    assert list(layer(net, "u").bottom) == ["ipsh", "mask"] and len(notes) == 1


def test_no_fix_when_not_needed_or_turned_off():
    axis2 = ('layers { name: "ip" type: INNER_PRODUCT bottom: "x" top: "ip" '
             'inner_product_param { num_output: 8 axis: 2 } }\n')
    deconv = 'layers { name: "dc" type: DECONVOLUTION bottom: "ip" top: "dc" }'
    assert upgrade(axis2 + deconv)[1] == []
    assert upgrade(IP + deconv, reshape_fix=False)[1] == []
    relu = 'layers { name: "r" type: RELU bottom: "x" top: "x" }\nlayers { name: "c" type: CONVOLUTION bottom: "x" top: "c" }'
    assert upgrade(relu)[1] == []


def test_current_syntax_nets_are_left_as_written():
    text = ('layer { name: "ip" type: "InnerProduct" bottom: "x" top: "ip" }\n'
            'layer { name: "dc" type: "Deconvolution" bottom: "ip" top: "dc" }')
    net, notes = upgrade_net(prototxt.parse_text(text, caffe_pb2.NetParameter))
    assert [l.type for l in net.layer] == ["InnerProduct", "Deconvolution"] and not notes


def test_unique_names_and_inherited_rules():
    body = ('layers { name: "reshape" type: RELU bottom: "x" top: "ipsh" }\n'
            'layers { name: "ip" type: INNER_PRODUCT bottom: "x" top: "ip" include { phase: TRAIN } }\n'
            'layers { name: "dc" type: DECONVOLUTION bottom: "ip" top: "dc" }')
    net, _ = upgrade(body)
    reshape = [l for l in net.layer if l.type == "Reshape"][0]
    assert reshape.name == "ip_reshape" and list(reshape.top) == ["ipsh2"]
    assert reshape.include[0].phase == caffe_pb2.TRAIN
    assert layer(net, "dc").bottom[0] == "ipsh2"


def test_through_shape_preserving_layers_with_new_tops():
    body = IP + ('layers { name: "sg" type: SIGMOID bottom: "ip" top: "ipsig" }\n'
                 'layers { name: "dc" type: DECONVOLUTION bottom: "ipsig" top: "dc" }\n')
    net, notes = upgrade(body)
    assert names(net) == ["input", "ip", "sg", "reshape", "dc"]
    assert list(layer(net, "reshape").bottom) == ["ipsig"] and layer(net, "dc").bottom[0] == "ipsigsh"
    assert "InnerProduct 'ip'" in notes[0]


def test_flatten_top_was_4d_too():
    body = ('layers { name: "f" type: FLATTEN bottom: "x" top: "f" }\n'
            'layers { name: "c" type: CONVOLUTION bottom: "f" top: "c" }\n')
    net, notes = upgrade(body)
    assert layer(net, "c").bottom[0] == "fsh" and "Flatten 'f'" in notes[0]


def test_redefined_blob_is_no_longer_2d():
    body = IP + ('layers { name: "cv0" type: CONVOLUTION bottom: "x" top: "ip" }\n'
                 'layers { name: "dc" type: DECONVOLUTION bottom: "ip" top: "dc" }\n')
    assert upgrade(body)[1] == []
