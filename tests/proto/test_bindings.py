"""The committed caffe_pb2 module is exactly what protoc makes of proto/caffe.proto, and the schema
keeps Caffe's (and Noh's fork's) numbers, so real Caffe files read."""
import pathlib
import tempfile

import pytest

from caffe_cae.proto import caffe_pb2, regenerate


def test_committed_module_matches_schema():
    pytest.importorskip("grpc_tools")
    with tempfile.TemporaryDirectory() as tmp:
        fresh = regenerate.compile_schema(pathlib.Path(tmp)).read_text()
    assert fresh == regenerate.MODULE.read_text(), "run: python -m caffe_cae.proto.regenerate"


def _number(message, field):
    return message.DESCRIPTOR.fields_by_name[field].number


@pytest.mark.parametrize(
    "message, field, number",
    [
        (caffe_pb2.NetParameter, "layer", 100),
        (caffe_pb2.NetParameter, "layers", 2),
        (caffe_pb2.NetParameter, "input_shape", 8),
        (caffe_pb2.BlobProto, "shape", 7),
        (caffe_pb2.BlobProto, "data", 5),
        (caffe_pb2.LayerParameter, "convolution_param", 106),
        (caffe_pb2.LayerParameter, "reshape_param", 133),
        (caffe_pb2.LayerParameter, "input_param", 143),
        (caffe_pb2.LayerParameter, "clip_param", 148),
        (caffe_pb2.LayerParameter, "swish_param", 147),
        (caffe_pb2.LayerParameter, "unpooling_param", 10044),
        (caffe_pb2.V1LayerParameter, "unpooling_param", 44),
        (caffe_pb2.V1LayerParameter, "bn_param", 45),
        (caffe_pb2.V1LayerParameter, "param", 1001),
        (caffe_pb2.SolverParameter, "clip_gradients", 35),
        (caffe_pb2.SolverParameter, "iter_size", 36),
        (caffe_pb2.SolverParameter, "type", 40),
        (caffe_pb2.SolverParameter, "weights", 42),
        (caffe_pb2.ConvolutionParameter, "dilation", 18),
        (caffe_pb2.PoolingParameter, "round_mode", 13),
        (caffe_pb2.UnpoolingParameter, "unpool_size", 12),
        (caffe_pb2.V0LayerParameter, "hdf5_output_param", 1001),
    ],
)
def test_field_numbers(message, field, number):
    assert _number(message, field) == number


def test_noh_enums_and_defaults():
    types = caffe_pb2.V1LayerParameter.LayerType
    assert types.Value("UNPOOLING") == 42 and types.Value("BN") == 43 and types.Value("DECONVOLUTION") == 39
    assert caffe_pb2.UnpoolingParameter.UnpoolMethod.Value("TILE") == 2
    assert caffe_pb2.ParamSpec().lr_mult == 1.0 and caffe_pb2.NetState().phase == caffe_pb2.TEST
    assert caffe_pb2.SolverParameter().type == "SGD" and caffe_pb2.SolverParameter().solver_mode == caffe_pb2.SolverParameter.GPU
    assert caffe_pb2.FillerParameter().sparse == -1 and caffe_pb2.FillerParameter().type == "constant"
