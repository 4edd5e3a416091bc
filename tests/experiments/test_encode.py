"""encode: data layers become an Input fed from the data file; codes files; switches; layer trace."""
import h5py
import numpy as np
import pytest

from caffe_cae import prototxt
from caffe_cae.errors import CaffeCaeError
from caffe_cae.experiments import encode, evaluate
from caffe_cae.proto import caffe_pb2

TINY_NET = """
name: "tiny"
layer { name: "data" type: "HDF5Data" top: "data" top: "label" include { phase: TRAIN }
        hdf5_data_param { source: "LIST" batch_size: 4 } }
layer { name: "data" type: "HDF5Data" top: "data" top: "label" include { phase: TEST }
        hdf5_data_param { source: "LIST" batch_size: 4 } }
layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
        convolution_param { num_output: 2 kernel_size: 3 weight_filler { type: "xavier" } } }
layer { name: "sig1en" type: "Sigmoid" bottom: "conv1" top: "conv1" }
layer { name: "pool1" type: "Pooling" bottom: "conv1" top: "pool1" top: "pool1_mask"
        pooling_param { pool: MAX kernel_size: 2 stride: 2 } }
layer { name: "unpool1" type: "Unpooling" bottom: "pool1" bottom: "pool1_mask" top: "unpool1"
        unpooling_param { unpool: MAX kernel_size: 2 stride: 2 unpool_size: 6 } }
layer { name: "deconv1neur" type: "Deconvolution" bottom: "unpool1" top: "deconv1neur"
        convolution_param { num_output: 1 kernel_size: 3 weight_filler { type: "xavier" } } }
layer { name: "loss" type: "SigmoidCrossEntropyLoss" bottom: "deconv1neur" bottom: "data" top: "cross_entropy_loss" }
"""


@pytest.fixture
def tiny(tmp_path):
    rng = np.random.default_rng(0)
    data_h5 = tmp_path / "data.h5"
    with h5py.File(data_h5, "w") as h5:
        h5["data"] = rng.random((10, 1, 8, 8)).astype(np.float32)
        h5["label"] = (np.arange(10) % 3).astype(np.float32)
    (tmp_path / "list.txt").write_text(f"{data_h5}\n")
    net_path = tmp_path / "net.prototxt"
    net_path.write_text(TINY_NET.replace("LIST", str(tmp_path / "list.txt")))
    return net_path, data_h5


def test_feed_net_param_replaces_the_data_layers():
    net = prototxt.parse_text(TINY_NET, caffe_pb2.NetParameter)
    fed = encode.feed_net_param(net, {"data": (5, 1, 8, 8), "label": (5,)})
    assert [layer.type for layer in fed.layer][:2] == ["Input", "Convolution"]
    assert list(fed.layer[0].top) == ["data", "label"]
    assert [list(s.dim) for s in fed.layer[0].input_param.shape] == [[5, 1, 8, 8], [5]]
    assert sum(layer.type == "HDF5Data" for layer in fed.layer) == 0


def test_feed_net_param_names_a_missing_dataset():
    net = prototxt.parse_text(TINY_NET, caffe_pb2.NetParameter)
    with pytest.raises(CaffeCaeError, match="blob 'label'"):
        encode.feed_net_param(net, {"data": (5, 1, 8, 8)})


def test_encode_h5_matches_a_plain_forward(tiny, tmp_path):
    from caffe_cae.net import Net

    net_path, data_h5 = tiny
    weights = tmp_path / "w.caffemodel"
    reference = Net(str(net_path), phase=caffe_pb2.TEST, seed=3)
    reference.save(str(weights))
    # batch 4 over 10 samples: the last batch is padded and cut.
    codes, labels, switches = encode.encode_h5(str(net_path), str(weights), data_h5, ["pool1", "deconv1neur"],
                                               batch_size=4)
    assert codes["pool1"].shape == (10, 2, 3, 3) and codes["deconv1neur"].shape == (10, 1, 8, 8)
    assert list(labels) == [0, 1, 2, 0, 1, 2, 0, 1, 2, 0]
    assert switches == [[2 * 3 * 3, 6 * 6]]
    with h5py.File(data_h5, "r") as h5:
        x = h5["data"][:4]
    fed = Net(encode.feed_net_param(prototxt.read_net_text(str(net_path)), {"data": (4, 1, 8, 8), "label": (4,)}),
              weights=str(weights))
    fed.forward(data=x, label=np.zeros(4, np.float32))
    np.testing.assert_allclose(codes["pool1"][:4], fed.blobs["pool1"].data, rtol=1e-6)

    out = tmp_path / "codes.h5"
    encode.write_codes(out, {"pool1": codes["pool1"]}, labels, switches=switches, attrs={"net": net_path})
    read, read_labels, read_switches = evaluate.read_codes(out)
    assert read.shape == (10, 18) and read_switches == [[18, 36]]


def test_unknown_blob_is_an_error(tiny):
    net_path, data_h5 = tiny
    with pytest.raises(CaffeCaeError, match="blob 'ip2encode': not in the net"):
        encode.encode_h5(str(net_path), None, data_h5, ["ip2encode"], batch_size=4)


def test_trace_lists_blob_and_layer_per_step(tiny):
    net_path, data_h5 = tiny
    with h5py.File(data_h5, "r") as h5:
        encoder = encode.Encoder(str(net_path), None, encode.data_shapes(h5), batch_size=4)
        panels = encoder.trace({"data": h5["data"][:1], "label": h5["label"][:1]})
    steps = [(blob, layer) for blob, layer, _ in panels]
    # The unused input 'label' is left out.
    assert steps == [("data", "data"), ("conv1", "conv1"), ("conv1", "sig1en"),
                     ("pool1", "pool1"), ("unpool1", "unpool1"), ("deconv1neur", "deconv1neur")]
    conv, sig = panels[1][2], panels[2][2]
    np.testing.assert_allclose(sig, 1 / (1 + np.exp(-conv)), rtol=1e-5)
