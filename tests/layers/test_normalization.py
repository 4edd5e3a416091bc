"""BatchNorm, LRN and MVN: Caffe's refusals, parameter specs, the legacy three-param rewrite
and the places where Caffe's code does something a reader would not assume."""
from __future__ import annotations

import logging

import numpy as np
import pytest

import caffe_cae
from caffe_cae.errors import CaffeCaeError
from caffe_cae.layers import create_layer
from caffe_cae.proto import caffe_pb2
from caffe_cae.prototxt import parse_text
from tests.helpers.paths import GOLDEN_BVLC


def net_text(layers: str, shape=(2, 3, 4, 4), force_backward=True) -> caffe_pb2.NetParameter:
    dims = " ".join(f"dim: {d}" for d in shape)
    text = (f'name: "t" force_backward: {str(force_backward).lower()} '
            f'layer {{ name: "x" type: "Input" top: "x" input_param {{ shape {{ {dims} }} }} }} '
            + layers)
    return parse_text(text, caffe_pb2.NetParameter, "<test>")


def bn(params="", extra="", bottom="x", top="y"):
    return (f'layer {{ name: "bn" type: "BatchNorm" bottom: "{bottom}" top: "{top}" {params} '
            f'{extra} }}')


# -- BatchNorm: parameter specs -----------------------------------------------------------------


@pytest.mark.parametrize("params", [
    "param { lr_mult: 1 }",
    "param { lr_mult: 0 } param { lr_mult: 1 }",
    "param { decay_mult: 0 }",  # lr_mult defaults to 1
])
def test_batch_norm_refuses_learned_statistics(params):
    with pytest.raises(CaffeCaeError, match="layer 'bn' .*Cannot configure batch normalization "
                                            "statistics as layer parameters"):
        caffe_cae.Net(net_text(bn(params)), caffe_cae.TEST)


def test_batch_norm_masks_its_blobs_from_the_solver():
    net = caffe_cae.Net(net_text(bn("param { lr_mult: 0 }")), caffe_cae.TEST)
    assert net.params_lr == [0, 0, 0]
    assert net.params_weight_decay == [1, 1, 1]  # Caffe only sets lr_mult
    specs = net.to_proto().layer[1].param
    assert [(s.HasField("lr_mult"), s.lr_mult, s.HasField("decay_mult")) for s in specs] == \
        [(True, 0, False)] * 3


def test_legacy_three_params_are_rewritten_at_load(caplog):
    text = (GOLDEN_BVLC / "bn_legacy_three_params" / "net.prototxt").read_text()
    assert text.count("lr_mult: 1") == 3
    with caplog.at_level(logging.DEBUG, logger="caffe_cae"):
        net = caffe_cae.Net(str(GOLDEN_BVLC / "bn_legacy_three_params" / "net.prototxt"),
                            caffe_cae.TEST)
    assert "Successfully upgraded batch norm layers using deprecated params" in caplog.text
    assert net.params_lr == [0, 0, 0] and net.params_weight_decay == [0, 0, 0]


def test_migrate_rewrites_legacy_batch_norm(tmp_path, caplog):
    from caffe_cae.cli import main

    out = tmp_path / "new.prototxt"
    with caplog.at_level(logging.INFO, logger="caffe_cae"):
        assert main(["migrate", str(GOLDEN_BVLC / "bn_legacy_three_params" / "net.prototxt"),
                     "-o", str(out)]) == 0
    upgraded = caffe_cae.prototxt.read_net_text(str(out))
    assert [(s.lr_mult, s.decay_mult) for s in upgraded.layer[1].param] == [(0, 0)] * 3
    assert "Successfully upgraded batch norm layers using deprecated params" in caplog.text


def test_batch_norm_needs_backward_like_caffe_without_force_backward():
    """Net::Init decides param_need_backward from the prototxt's specs (none: lr_mult 1) before
    the layer appends its lr_mult-0 specs, so a BatchNorm right after the input still runs its
    backward, which writes the input's diff."""
    layers = bn() + ('layer { name: "t" type: "Input" top: "target" input_param { shape { '
                     'dim: 2 dim: 3 dim: 4 dim: 4 } } } layer { name: "loss" type: "EuclideanLoss" '
                     'bottom: "y" bottom: "target" top: "loss" }')
    net = caffe_cae.Net(net_text(layers, force_backward=False), caffe_cae.TRAIN)
    assert net.layer_need_backward[net.layer_names.index("bn")]
    rng = np.random.default_rng(0)
    net.forward(x=rng.normal(size=(2, 3, 4, 4)), target=rng.normal(size=(2, 3, 4, 4)))
    net.blobs["x"].diff[...] = 7
    net.backward()
    assert not np.any(net.blobs["x"].diff == 7)


def test_batch_norm_train_updates_sums_and_normalises_with_batch_stats():
    net = caffe_cae.Net(net_text(bn(extra="batch_norm_param { moving_average_fraction: 0.5 eps: 0 }")),
                        caffe_cae.TRAIN)
    x = np.random.default_rng(1).normal(3, 2, (2, 3, 4, 4)).astype(np.float32)
    y = net.forward(x=x)["y"]
    mean, var = x.mean(axis=(0, 2, 3)), x.var(axis=(0, 2, 3))
    np.testing.assert_allclose(y, (x - mean[:, None, None]) / np.sqrt(var)[:, None, None],
                               rtol=1e-4, atol=1e-5)
    b0, b1, b2 = (b.data.copy() for b in net.params["bn"])
    np.testing.assert_allclose(b0, mean, rtol=1e-5)
    np.testing.assert_allclose(b1, var * 32 / 31, rtol=1e-5)  # unbiased in the sums
    assert b2 == 1
    net.forward(x=x)
    np.testing.assert_allclose(net.params["bn"][2].data, 1.5)
    np.testing.assert_allclose(net.params["bn"][0].data, 1.5 * mean, rtol=1e-5)


def test_batch_norm_test_phase_zero_stats_divides_by_sqrt_eps():
    net = caffe_cae.Net(net_text(bn()), caffe_cae.TEST)
    x = np.random.default_rng(2).normal(size=(2, 3, 4, 4)).astype(np.float32)
    np.testing.assert_allclose(net.forward(x=x)["y"], x / np.sqrt(np.float32(1e-5)), rtol=1e-6)
    assert not any(b.data.any() for b in net.params["bn"])  # global stats: no update


@pytest.mark.parametrize("shape, message", [((6,), "at least 2 axes"), ((), "at least 2 axes")])
def test_batch_norm_refuses_blobs_without_channels(shape, message):
    with pytest.raises(CaffeCaeError, match=message):
        caffe_cae.Net(net_text(bn(), shape=shape), caffe_cae.TEST)


def test_batch_norm_refuses_a_new_channel_count():
    net = caffe_cae.Net(net_text(bn()), caffe_cae.TEST)
    with pytest.raises(CaffeCaeError, match="channels"):
        net.forward(x=np.zeros((2, 4, 4, 4), np.float32))


# -- LRN ----------------------------------------------------------------------------------------


def lrn_layer(params, shape=(2, 5, 3, 3)):
    param = parse_text(f'name: "lrn" type: "LRN" bottom: "x" top: "y" lrn_param {{ {params} }}',
                       caffe_pb2.LayerParameter, "<test>")
    layer = create_layer(param)
    layer.setup([shape])
    return layer


@pytest.mark.parametrize("size", [4, 0])
def test_lrn_refuses_even_local_size(size):
    with pytest.raises(CaffeCaeError, match="LRN only supports odd values for local_size"):
        lrn_layer(f"local_size: {size}")


def test_lrn_needs_four_axes():
    with pytest.raises(CaffeCaeError, match="Input must have 4 axes"):
        lrn_layer("").reshape([(2, 5, 3)])


def run_lrn(params, x):
    from caffe_cae.blob import Blob

    layer = lrn_layer(params, x.shape)
    bottom, top = Blob(x.shape), Blob(layer.reshape([x.shape])[0])
    bottom.data[...] = x
    layer.forward([bottom], [top])
    return top.data


def test_lrn_across_channels_formula():
    x = np.random.default_rng(3).normal(size=(2, 6, 2, 3)).astype(np.float32)
    y = run_lrn("local_size: 3 alpha: 0.6 beta: 0.7 k: 1.5", x)
    padded = np.pad(x * x, ((0, 0), (1, 1), (0, 0), (0, 0)))
    window = padded[:, :-2] + padded[:, 1:-1] + padded[:, 2:]
    np.testing.assert_allclose(y, x * (1.5 + 0.2 * window) ** -0.7, rtol=1e-6)


def test_lrn_within_channel_ignores_k_and_counts_padded_cells():
    x = np.random.default_rng(4).normal(size=(1, 2, 4, 5)).astype(np.float32)
    y = run_lrn("local_size: 3 alpha: 0.5 beta: 0.75 norm_region: WITHIN_CHANNEL k: 7", x)
    padded = np.pad(x * x, ((0, 0), (0, 0), (1, 1), (1, 1)))
    window = sum(padded[:, :, i:i + 4, j:j + 5] for i in range(3) for j in range(3))
    np.testing.assert_allclose(y, x * (1 + 0.5 * window / 9) ** -0.75, rtol=1e-6)


# -- MVN ----------------------------------------------------------------------------------------


def mvn_net(params, shape):
    layers = f'layer {{ name: "mvn" type: "MVN" bottom: "x" top: "y" mvn_param {{ {params} }} }}'
    return caffe_cae.Net(net_text(layers, shape=shape), caffe_cae.TEST)


def test_mvn_top_has_the_legacy_four_axes():
    net = mvn_net("across_channels: true", (3, 5))
    assert net.blobs["y"].shape == (3, 5, 1, 1)
    x = np.random.default_rng(5).normal(size=(3, 5)).astype(np.float32)
    y = net.forward(x=x)["y"].reshape(3, 5)
    expected = (x - x.mean(1, keepdims=True)) / (x.std(1, keepdims=True) + 1e-9)
    np.testing.assert_allclose(y, expected, rtol=1e-5, atol=1e-6)


def test_mvn_adds_eps_to_the_standard_deviation():
    net = mvn_net("eps: 0.5", (1, 2, 3, 3))
    x = np.random.default_rng(6).normal(size=(1, 2, 3, 3)).astype(np.float32)
    rows = x.reshape(2, 9)
    expected = (rows - rows.mean(1, keepdims=True)) / (rows.std(1, keepdims=True) + 0.5)
    np.testing.assert_allclose(net.forward(x=x)["y"].reshape(2, 9), expected, rtol=1e-5)


def test_mvn_refuses_more_than_four_axes():
    with pytest.raises(CaffeCaeError, match="legacy accessors"):
        mvn_net("", (1, 2, 2, 2, 2))
