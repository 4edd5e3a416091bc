"""The one dataflow analysis of a net (caffe_cae.netgraph.dataflow): versions and readers,
memory views, in-place writes, stale reads through views, fusable sparse pairs -- and that the
Net, the ONNX exporter and ``params`` all read the same object."""
from __future__ import annotations

import numpy as np
import pytest

from caffe_cae.errors import CaffeCaeError
from caffe_cae.net import Net
from caffe_cae.netgraph.dataflow import Dataflow, Version
from caffe_cae.netgraph.steps import LayerStep, SparseReaderStep, SparseSourceStep
from caffe_cae.proto import caffe_pb2
from caffe_cae.prototxt import parse_text

INPUT = 'layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 2 dim: 3 dim: 4 dim: 4 } } }\n'
CONV = ('layer {{ name: "{name}" type: "Convolution" bottom: "{bottom}" top: "{top}" '
        'convolution_param {{ num_output: 2 kernel_size: 1 weight_filler {{ type: "gaussian" }} }} }}\n')


def net(text: str, phase=caffe_pb2.TEST) -> Net:
    return Net(parse_text(text, caffe_pb2.NetParameter, "<test>"), phase=phase, seed=1)


def layer_index(n: Net, name: str) -> int:
    return n.layer_names.index(name)


def test_in_place_layers_make_new_versions_and_readers_see_the_version_they_read():
    n = net(INPUT + CONV.format(name="conv", bottom="data", top="c")
            + 'layer { name: "relu" type: "ReLU" bottom: "c" top: "c" }\n'
            + 'layer { name: "sig" type: "Sigmoid" bottom: "c" top: "s" }\n')
    flow = n.dataflow
    conv, relu, sig = (layer_index(n, x) for x in ("conv", "relu", "sig"))
    c = n.graph.blob_index("c")
    assert flow.reads[relu] == [Version(conv, 0)]
    assert flow.reads[sig] == [Version(relu, 0)]
    assert flow.readers[Version(conv, 0)] == [relu]
    assert flow.final[c] == Version(relu, 0)
    assert flow.first_writer(c) == conv
    assert [w.layer for w in flow.in_place_writes[flow.view_root[c]]] == [relu]


def test_views_share_a_memory_root_and_later_in_place_writes_reach_the_viewed_bottom():
    n = net(INPUT + CONV.format(name="conv", bottom="data", top="c")
            + 'layer { name: "flat" type: "Flatten" bottom: "c" top: "f" }\n'
            + 'layer { name: "relu" type: "ReLU" bottom: "f" top: "f" }\n')
    flow = n.dataflow
    c, f = n.graph.blob_index("c"), n.graph.blob_index("f")
    assert flow.view_root[f] == flow.view_root[c] == c
    # conv's bottom is `data`, untouched; the Flatten's bottom `c` is overwritten through `f`
    assert not flow.bottom_overwritten_later(layer_index(n, "conv"))
    assert flow.bottom_overwritten_later(layer_index(n, "flat"))


def test_a_conv_whose_bottom_is_overwritten_later_recomputes_its_columns():
    n = net(INPUT + 'layer { name: "split" type: "Split" bottom: "data" top: "a" top: "b" }\n'
            + CONV.format(name="conv", bottom="a", top="c")
            + 'layer { name: "relu" type: "ReLU" bottom: "b" top: "b" }\n'
            + 'layer { name: "silence" type: "Silence" bottom: "b" bottom: "c" }\n')
    conv = n.layer_dict["conv"]
    assert conv.reuse_forward_columns is False
    alone = net(INPUT + CONV.format(name="conv", bottom="data", top="c"))
    assert alone.layer_dict["conv"].reuse_forward_columns is True


def test_stale_view_reads_name_the_reader_the_writer_and_the_view():
    text = (INPUT + CONV.format(name="conv", bottom="data", top="c")
            + 'layer { name: "flat" type: "Flatten" bottom: "c" top: "f" }\n'
            + 'layer { name: "relu" type: "ReLU" bottom: "f" top: "f" }\n'
            + 'layer { name: "sig" type: "Sigmoid" bottom: "c" top: "s" }\n')
    n = net(text)
    [stale] = n.dataflow.stale_view_reads()
    names = n.graph.blob_names
    # c feeds two layers, so Caffe's Split gives the Sigmoid a view of its own: c_conv_0_split_1
    assert (n.layer_names[stale.reader], names[stale.blob], n.layer_names[stale.writer], names[stale.through]) \
        == ("sig", "c_conv_0_split_1", "relu", "f")
    from caffe_cae.onnx.export import export_net

    with pytest.raises(CaffeCaeError, match="layer 'sig'.*overwrote its memory in place through the view 'f'"):
        export_net(n, outputs=["s"])


def test_identity_writes_are_ignored_on_request():
    n = net(INPUT + CONV.format(name="conv", bottom="data", top="c")
            + 'layer { name: "flat" type: "Flatten" bottom: "c" top: "f" }\n'
            + 'layer { name: "drop" type: "Dropout" bottom: "f" top: "f" }\n'
            + 'layer { name: "sig" type: "Sigmoid" bottom: "c" top: "s" }\n')
    assert len(n.dataflow.stale_view_reads()) == 1
    assert n.dataflow.stale_view_reads(identity_writes_count=False) == []


UNPOOL = ('layer { name: "unpool" type: "Unpooling" bottom: "data" top: "u" '
          'unpooling_param { unpool: MAX kernel_size: 2 stride: 2 unpool_size: 8 } }\n')
DECONV = ('layer {{ name: "deconv" type: "Deconvolution" bottom: "{bottom}" top: "d" '
          'convolution_param {{ num_output: 2 kernel_size: 3 weight_filler {{ type: "gaussian" }} }} }}\n')


def test_top_left_unpooling_read_only_by_a_deconvolution_is_a_sparse_pair_with_cooperating_steps():
    n = net(INPUT + UNPOOL + DECONV.format(bottom="u"))
    unpool, deconv = layer_index(n, "unpool"), layer_index(n, "deconv")
    assert n.dataflow.sparse_pairs == {deconv: unpool}
    assert isinstance(n._steps[unpool], SparseSourceStep)
    assert isinstance(n._steps[deconv], SparseReaderStep) and n._steps[deconv].source is n._steps[unpool]
    n.forward()
    assert n.layers[deconv].bottom_spread == (2, 2)  # fresh in this pass
    n.forward(start="deconv")  # a new pass that did not run the unpooling: dense
    assert n.layers[deconv].bottom_spread is None


@pytest.mark.parametrize("extra", [
    'layer { name: "other" type: "Sigmoid" bottom: "u" top: "o" }\n',  # a second reader
    'layer { name: "inplace" type: "ReLU" bottom: "u" top: "u" }\n',  # written again in place
    'layer { name: "view" type: "Flatten" bottom: "u" top: "v" }\n',  # another view of the memory
])
def test_no_sparse_pair_when_the_unpooled_map_may_be_read_or_written_otherwise(extra):
    n = net(INPUT + UNPOOL + extra + DECONV.format(bottom="u"))
    assert n.dataflow.sparse_pairs == {}
    assert all(type(step) is LayerStep for step in n._steps)


def test_the_exporter_and_params_read_the_net_dataflow(monkeypatch):
    """One analysis: the exporter asks the Net's Dataflow, params builds the same class."""
    n = net(INPUT + UNPOOL + DECONV.format(bottom="u"))
    import importlib

    export_module = importlib.import_module("caffe_cae.onnx.export")

    seen = []
    original = export_module.fusion.plan_unpool_folds

    def spy(flow, *args):
        seen.append(flow)
        return original(flow, *args)

    monkeypatch.setattr(export_module.fusion, "plan_unpool_folds", spy)
    model = export_module.export_net(n)
    assert seen == [n.dataflow]
    assert [node.op_type for node in model.graph.node].count("ConvTranspose") == 1  # the fold
    from caffe_cae import params

    built = []
    monkeypatch.setattr(params, "Dataflow", lambda graph: built.append(graph) or Dataflow(graph))
    params.report_graph(n.graph)
    assert built == [n.graph]


def test_in_place_write_counts_against_every_view_of_the_memory():
    n = net(INPUT + 'layer { name: "split" type: "Split" bottom: "data" top: "a" top: "b" }\n'
            + 'layer { name: "relu" type: "ReLU" bottom: "a" top: "a" }\n'
            + 'layer { name: "sig" type: "Sigmoid" bottom: "b" top: "s" }\n')
    flow = n.dataflow
    data, a, b = (n.graph.blob_index(x) for x in ("data", "a", "b"))
    assert flow.view_root[a] == flow.view_root[b] == data
    [stale] = flow.stale_view_reads()
    assert n.layer_names[stale.reader] == "sig" and n.graph.blob_names[stale.through] == "a"
    # and the interpreter computes what Caffe computes: sig reads the ReLU'd memory
    x = np.linspace(-1, 1, 96, dtype=np.float32).reshape(2, 3, 4, 4)
    out = n.forward(data=x, blobs=["s"])["s"]
    np.testing.assert_allclose(out, 1 / (1 + np.exp(-np.maximum(x, 0))), rtol=1e-6)
