"""Parameter sharing by ``param { name }``: owner = first layer, shared data AND diff (gradients
add up), STRICT/PERMISSIVE checks, lr/decay bookkeeping of learnable params."""
import numpy as np
import pytest

import caffe_cae
from caffe_cae.errors import CaffeCaeError
from caffe_cae.proto import caffe_pb2
from caffe_cae.prototxt import parse_text

SIAMESE = """
force_backward: true
layer { name: "pair" type: "Input" top: "pair" input_param { shape { dim: 2 dim: 4 dim: 5 dim: 5 } } }
layer { name: "slice" type: "Slice" bottom: "pair" top: "a" top: "b" slice_param { axis: 1 } }
layer { name: "conv_a" type: "Convolution" bottom: "a" top: "ca"
        param { name: "w" lr_mult: 2 } param { name: "bias" decay_mult: 0 }
        convolution_param { num_output: 3 kernel_size: 3 weight_filler { type: "gaussian" std: 0.5 }
                            bias_filler { type: "gaussian" std: 0.5 } } }
layer { name: "conv_b" type: "Convolution" bottom: "b" top: "cb"
        param { name: "w" %s } param { name: "bias" %s }
        convolution_param { num_output: 3 kernel_size: 3 weight_filler { type: "gaussian" std: 0.5 }
                            bias_filler { type: "gaussian" std: 0.5 } } }
layer { name: "loss" type: "EuclideanLoss" bottom: "ca" bottom: "cb" top: "loss" }
"""


def make(b_param0="", b_param1="", **kwargs):
    return caffe_cae.Net(parse_text(SIAMESE % (b_param0, b_param1), caffe_pb2.NetParameter), seed=5, **kwargs)


def test_sharer_uses_the_owners_memory():
    net = make()
    a, b = net.params["conv_a"], net.params["conv_b"]
    for pa, pb in zip(a, b):
        np.testing.assert_array_equal(pa.data, pb.data)
        assert np.shares_memory(pa.data, pb.data) and np.shares_memory(pa.diff, pb.diff)
    assert net.param_owners == [-1, -1, 0, 1]
    assert len(net.learnable_params) == 2 and net.learnable_params[0] is a[0]
    assert net.params_lr == [2.0, 1.0]  # lr of "w" set by the owner; "bias" default
    assert net.params_weight_decay == [1.0, 0.0]
    assert net.param_display_names == ["w", "bias", "w", "bias"]


def test_gradients_of_both_users_add_up_in_the_owner():
    net = make()
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 4, 5, 5)).astype(np.float32)
    net.forward(pair=x)
    net.backward()
    shared = net.params["conv_a"][0].diff.copy()
    # the same computation with the second branch's weights as a separate copy
    w = net.params["conv_a"][0].data
    ca, cb = net.blobs["ca"].data, net.blobs["cb"].data
    d = (ca - cb) / 2  # EuclideanLoss gradient w.r.t. ca; -d w.r.t. cb
    from numpy.lib.stride_tricks import sliding_window_view

    def weight_grad(inp, top_diff):
        windows = sliding_window_view(inp, (3, 3), axis=(2, 3))  # n c h w kh kw
        return np.einsum("nohw,nchwij->ocij", top_diff, windows)

    expected = weight_grad(x[:, :2], d) + weight_grad(x[:, 2:], -d)
    np.testing.assert_allclose(shared, expected, rtol=1e-4, atol=1e-5)
    assert w.shape == shared.shape


def test_strict_sharing_requires_equal_shapes():
    text = SIAMESE.replace('num_output: 3 kernel_size: 3 weight_filler { type: "gaussian" std: 0.5 }\n'
                           '                            bias_filler { type: "gaussian" std: 0.5 } } }\n'
                           'layer { name: "loss"',
                           'num_output: 3 kernel_size: 1 weight_filler { type: "gaussian" std: 0.5 } } }\n'
                           'layer { name: "loss"')
    assert text != SIAMESE
    with pytest.raises(CaffeCaeError, match=r"^layer 'conv_b' \(Convolution\): cannot share param 'w' owned by layer 'conv_a': shape mismatch; owner param shape is 3 2 3 3 \(54\), this layer expects 3 2 1 1 \(6\)"):
        caffe_cae.Net(parse_text(text % ("", ""), caffe_pb2.NetParameter))


def test_permissive_sharing_compares_counts_only():
    text = """
    layer { name: "x" type: "Input" top: "x" input_param { shape { dim: 2 dim: 6 } } }
    layer { name: "r" type: "Reshape" bottom: "x" top: "r" reshape_param { shape { dim: 0 dim: 6 dim: 1 dim: 1 } } }
    layer { name: "c1" type: "Convolution" bottom: "r" top: "c1" param { name: "w" } param { name: "b" }
            convolution_param { num_output: 4 kernel_size: 1 weight_filler { type: "gaussian" } } }
    layer { name: "c2" type: "Convolution" bottom: "c1" top: "c2"
            param { name: "w" share_mode: PERMISSIVE } param { name: "b2" }
            convolution_param { num_output: 6 kernel_size: 1 weight_filler { type: "gaussian" } } }
    """
    net = caffe_cae.Net(parse_text(text, caffe_pb2.NetParameter))
    w1, w2 = net.params["c1"][0], net.params["c2"][0]
    assert w1.shape == (4, 6, 1, 1) and w2.shape == (6, 4, 1, 1)
    assert np.shares_memory(w1.data, w2.data)
    np.testing.assert_array_equal(w1.data.ravel(), w2.data.ravel())
    bad = text.replace("num_output: 6", "num_output: 5")
    with pytest.raises(CaffeCaeError, match=r"^layer 'c2' \(Convolution\): cannot share param 'w' owned by layer 'c1': count mismatch"):
        caffe_cae.Net(parse_text(bad, caffe_pb2.NetParameter))


def test_conflicting_multipliers_are_refused_and_unset_ones_inherited():
    with pytest.raises(CaffeCaeError, match=r"^layer 'conv_b' \(Convolution\): shared param 'w' has mismatched lr_mult: 3 here, 2 before"):
        make("lr_mult: 3")
    net = make("lr_mult: 2", "lr_mult: 0.5 decay_mult: 0")
    assert net.params_lr == [2.0, 0.5]  # "bias" got its lr_mult from the sharer
    assert net.params_weight_decay == [1.0, 0.0]


def test_saved_weights_and_hdf5_keep_sharing(tmp_path):
    net = make()
    net.save(tmp_path / "w.caffemodel")
    net.save_hdf5(tmp_path / "w.caffemodel.h5")
    import h5py

    with h5py.File(tmp_path / "w.caffemodel.h5") as f:
        assert sorted(f["data/conv_a"]) == ["0", "1"] and sorted(f["data/conv_b"]) == []
    for weights in ("w.caffemodel", "w.caffemodel.h5"):
        other = make(weights=str(tmp_path / weights))
        np.testing.assert_array_equal(other.params["conv_b"][0].data, net.params["conv_a"][0].data)
        assert np.shares_memory(other.params["conv_a"][0].data, other.params["conv_b"][0].data)
