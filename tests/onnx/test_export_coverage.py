"""Every registered layer type either converts to ONNX, is left out of an inference export by
the exporter (data, loss, metric layers), or is refused with a stated reason."""
import types

import pytest

from caffe_cae.errors import CaffeCaeError
from caffe_cae.layers import LAYERS
from caffe_cae.onnx.converters import CONVERTERS, UNEXPORTABLE, LayerContext, convert
from caffe_cae.onnx.graph import GraphBuilder
from caffe_cae.proto import caffe_pb2
import caffe_cae.onnx.export  # noqa: F401 (registers every converter)


def _left_out_by_the_exporter(type_name, cls) -> bool:
    return cls.is_loss or cls.is_metric or cls.is_data


@pytest.mark.parametrize("type_name", sorted(LAYERS))
def test_every_layer_type_exports_or_is_refused_with_a_reason(type_name):
    cls = LAYERS[type_name]
    if _left_out_by_the_exporter(type_name, cls):
        return
    assert (type_name in CONVERTERS) != (type_name in UNEXPORTABLE), (
        f"{type_name}: needs an ONNX converter or an UNEXPORTABLE entry with the reason")
    assert type_name not in UNEXPORTABLE or len(UNEXPORTABLE[type_name].reason) > 20


@pytest.mark.parametrize("type_name", sorted(t for t, refusal in UNEXPORTABLE.items() if refusal.message is None))
def test_refusal_is_one_line_naming_the_layer(type_name):
    layer = types.SimpleNamespace(name="seq", type=type_name, param=caffe_pb2.LayerParameter(),
                                  error=lambda m: CaffeCaeError(f"layer 'seq' ({type_name}): {m}"))
    context = LayerContext(graph=GraphBuilder(), layer=layer, inputs=[], outputs=[], bottom_shapes=[],
                           top_shapes=[], params=[])
    with pytest.raises(CaffeCaeError, match=rf"^layer 'seq' \({type_name}\): ONNX export: {type_name} has no ONNX form: ") as err:
        convert(context)
    assert "\n" not in str(err.value)
