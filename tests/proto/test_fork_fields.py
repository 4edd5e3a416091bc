"""A Caffe fork's binary caffemodel: its layers' parameters, at the fork's field numbers, read
into ours (caffe_cae/proto/fork_fields.py)."""
import numpy as np

from caffe_cae.proto import caffe_pb2
from caffe_cae.proto.fork_fields import FORK_FIELDS, _encode_varint
from caffe_cae.weights import array_to_blob, read_net_binary


def _field(number: int, payload: bytes) -> bytes:
    return _encode_varint(number << 3 | 2) + _encode_varint(len(payload)) + payload


def _fork_layer(name, type_name, number, param, blobs=()) -> bytes:
    """A LayerParameter as the fork serializes it: its parameter at the fork's number."""
    layer = caffe_pb2.LayerParameter(name=name, type=type_name)
    layer.blobs.extend(blobs)
    return layer.SerializeToString() + _field(number, param.SerializeToString())


def test_fork_numbers_are_read_into_ours(tmp_path):
    scale = array_to_blob(np.arange(3, dtype=np.float32))
    conv = caffe_pb2.LayerParameter(name="conv", type="Convolution")
    conv.convolution_param.num_output = 3
    conv.blobs.append(array_to_blob(np.ones((3, 1, 1, 1), np.float32)))
    net = b"".join([
        _field(1, b"fork"),  # NetParameter.name
        _field(100, conv.SerializeToString()),
        _field(100, _fork_layer("norm", "Normalize", 206, caffe_pb2.NormalizeParameter(
            across_spatial=False, channel_shared=False), [scale])),
        # SegNet's upsample_param is 137, BVLC's embed_param: it must not land there
        _field(100, _fork_layer("up", "Upsample", 137, caffe_pb2.UpsampleParameter(
            scale=2, scale_w=2, pad_out_h=True))),
        _field(100, _fork_layer("bn", "BN", 45, caffe_pb2.BNParameter(bn_mode=caffe_pb2.BNParameter.INFERENCE))),
        _field(100, _fork_layer("roi", "ROIPooling", 8266711, caffe_pb2.ROIPoolingParameter(pooled_h=6, pooled_w=7))),
    ])
    path = tmp_path / "fork.caffemodel"
    path.write_bytes(net)
    read = read_net_binary(path)
    conv_read, norm, up, bn, roi = read.layer
    assert conv_read == conv
    assert not norm.norm_param.across_spatial and not norm.norm_param.channel_shared
    np.testing.assert_array_equal(norm.blobs[0].data, [0, 1, 2])
    assert not up.HasField("embed_param")
    assert (up.upsample_param.scale, up.upsample_param.scale_w, up.upsample_param.pad_out_h) == (2, 2, True)
    assert bn.bn_param.bn_mode == caffe_pb2.BNParameter.INFERENCE
    assert (roi.roi_pooling_param.pooled_h, roi.roi_pooling_param.pooled_w) == (6, 7)


def test_the_table_points_at_the_schemas_fields():
    by_number = {f.number: f.name for f in caffe_pb2.LayerParameter.DESCRIPTOR.fields}
    for type_name, table in FORK_FIELDS.items():
        for fork, ours in table.items():
            assert ours in by_number and ours > 10000, type_name
    assert by_number[FORK_FIELDS["Normalize"][206]] == "norm_param"
    assert by_number[FORK_FIELDS["Upsample"][137]] == "upsample_param"
