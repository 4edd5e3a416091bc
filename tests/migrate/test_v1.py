"""V1 -> current syntax details: param folding, share modes, Noh's fields, refusals."""
import pytest

from caffe_cae import prototxt
from caffe_cae.errors import CaffeCaeError
from caffe_cae.migrate import V1_TYPE_NAMES, net_needs_upgrade, upgrade_net
from caffe_cae.migrate.text import explain_parse_error, leading_comments, read_legacy_text
from caffe_cae.proto import caffe_pb2


def net(text):
    return prototxt.parse_text(text, caffe_pb2.NetParameter)


def test_param_folding_index_by_index():
    text = """layers { name: "c" type: CONVOLUTION bottom: "x" top: "c"
      param: "w" param: "b" blob_share_mode: PERMISSIVE blobs_lr: 1 blobs_lr: 2 weight_decay: 0 }"""
    upgraded, _ = upgrade_net(net(text))
    specs = upgraded.layer[0].param
    assert prototxt.to_text(specs[0]) == 'name: "w"\nshare_mode: PERMISSIVE\nlr_mult: 1\ndecay_mult: 0\n'
    assert prototxt.to_text(specs[1]) == 'name: "b"\nlr_mult: 2\n'


def test_include_exclude_loss_weight_and_params_are_copied():
    text = """layers { name: "l" type: EUCLIDEAN_LOSS bottom: "a" bottom: "b" top: "l" loss_weight: 0.5
      include { phase: TRAIN stage: "s" } loss_param { normalize: false } }
      layers { name: "d" type: DROPOUT bottom: "a" top: "a" exclude { phase: TEST }
      dropout_param { dropout_ratio: 0.3 } }"""
    upgraded, _ = upgrade_net(net(text))
    loss, drop = upgraded.layer
    assert list(loss.loss_weight) == [0.5] and loss.include[0].stage == ["s"]
    assert loss.loss_param.HasField("normalize") and not loss.loss_param.normalize
    assert drop.exclude[0].phase == caffe_pb2.TEST
    assert drop.dropout_param.dropout_ratio == pytest.approx(0.3)


def test_noh_unpooling_goes_to_field_10044():
    text = """layers { name: "u" type: UNPOOLING bottom: "x" bottom: "m" top: "u"
      unpooling_param { unpool: MAX kernel_size: 2 stride: 2 unpool_size: 8 } }"""
    upgraded, _ = upgrade_net(net(text), reshape_fix=False)
    layer = upgraded.layer[0]
    assert layer.type == "Unpooling" and list(layer.bottom) == ["x", "m"]
    field = caffe_pb2.LayerParameter.DESCRIPTOR.fields_by_name["unpooling_param"]
    assert field.number == 10044
    assert layer.unpooling_param.unpool_size == 8
    assert "unpooling_param {\n    unpool: MAX\n    kernel_size: 2\n" in prototxt.to_text(upgraded)


def test_every_v1_enum_value_has_a_type_string():
    names = caffe_pb2.V1LayerParameter.LayerType.keys()
    assert set(names) == set(V1_TYPE_NAMES)
    assert V1_TYPE_NAMES["UNPOOLING"] == "Unpooling" and V1_TYPE_NAMES["BN"] == "BN"
    assert V1_TYPE_NAMES["SOFTMAX_LOSS"] == "SoftmaxWithLoss" and V1_TYPE_NAMES["NONE"] == ""
    assert V1_TYPE_NAMES["CROP"] != "Crop"  # Noh's crop is not BVLC's Crop


def test_data_transform_upgrade_moves_fields_and_creates_messages():
    text = """layers { name: "d" type: DATA top: "d" data_param { source: "s" scale: 0.25 mirror: true } }
      layers { name: "i" type: IMAGE_DATA top: "i" }"""
    upgraded, notes = upgrade_net(net(text))
    data, images = upgraded.layer
    assert data.transform_param.scale == 0.25 and data.transform_param.mirror
    assert not data.data_param.HasField("scale") and data.data_param.source == "s"
    # Caffe's mutable_*() leaves empty messages on every data layer it visits
    assert images.HasField("transform_param") and images.HasField("image_data_param")
    assert any("transform_param messages" in n for n in notes)


def test_batch_norm_fix():
    text = """layer { name: "bn" type: "BatchNorm" bottom: "x" top: "x" param { lr_mult: 1 }
      param { lr_mult: 1 } param { lr_mult: 1 } }"""
    original = net(text)
    assert net_needs_upgrade(original)
    upgraded, _ = upgrade_net(original)
    assert [(p.lr_mult, p.decay_mult) for p in upgraded.layer[0].param] == [(0, 0)] * 3
    assert original.layer[0].param[0].lr_mult == 1  # input untouched


def test_input_shape_fields_become_input_layer_first():
    text = """input: "a" input_shape { dim: 2 dim: 3 } input: "b" input_shape { dim: 4 }
      layer { name: "x" type: "ReLU" bottom: "a" top: "x" }"""
    upgraded, _ = upgrade_net(net(text))
    first = upgraded.layer[0]
    assert (first.name, first.type, list(first.top)) == ("input", "Input", ["a", "b"])
    assert [list(s.dim) for s in first.input_param.shape] == [[2, 3], [4]]
    assert not upgraded.input and not upgraded.input_shape


def test_too_few_input_dims_is_an_error():
    with pytest.raises(CaffeCaeError, match="need 8 input_dim values"):
        upgrade_net(net('input: "a" input: "b" input_dim: 1 input_dim: 1 input_dim: 2 input_dim: 2'))


def test_current_net_needs_no_upgrade():
    text = 'layer { name: "x" type: "Input" top: "x" input_param { shape { dim: 1 } } }'
    assert not net_needs_upgrade(net(text))
    upgraded, notes = upgrade_net(net(text))
    assert upgraded == net(text) and notes == []


def test_unknown_field_error_lists_supported_fields(tmp_path):
    path = tmp_path / "fork.prototxt"
    path.write_text('layers {\n  name: "x"\n  type: RELU\n  window_cls_data_param { }\n}\n')
    with pytest.raises(CaffeCaeError) as err:
        read_legacy_text(path, caffe_pb2.NetParameter)
    message = str(err.value)
    assert message.startswith(f"{path}:4:3:") and "window_cls_data_param" in message
    assert "unpooling_param" in message and "\n" not in message


def test_unknown_enum_error_lists_supported_values():
    message = explain_parse_error('x:1:16: Enum type "caffe.V1LayerParameter.LayerType" has no value named FOO.')
    assert "supported:" in message and "UNPOOLING" in message and "DECONVOLUTION" in message


def test_leading_comments():
    assert leading_comments("# a\n\n# b\n\nname: 'x'\n# not\n") == "# a\n\n# b\n"
    assert leading_comments("name: 'x'\n") == ""
