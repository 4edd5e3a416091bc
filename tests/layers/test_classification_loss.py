"""InfogainLoss, MultinomialLogisticLoss and HingeLoss beyond the golden cases."""
from __future__ import annotations

import numpy as np
import pytest

import caffe_cae
from caffe_cae.errors import CaffeCaeError
from caffe_cae.proto import caffe_pb2
from caffe_cae.prototxt import parse_text
from caffe_cae.weights import array_to_blob, write_binary


def input_layer(name, shape):
    dims = " ".join(f"dim: {d}" for d in shape)
    return f'layer {{ name: "{name}" type: "Input" top: "{name}" input_param {{ shape {{ {dims} }} }} }}\n'


def loss_net(layer, inputs, force_backward=True):
    text = "force_backward: true\n" if force_backward else ""
    text += "".join(input_layer(name, shape) for name, shape in inputs) + layer
    return caffe_cae.Net(parse_text(text, caffe_pb2.NetParameter, "<test>"))


def run(net, **inputs):
    """Forward, then the loss layer's backward into its first bottom only (an H bottom may not
    get a diff, and without force_backward no Input blob would get one)."""
    loss = net.forward(**inputs)
    bottoms = [net.blobs[name] for name in net.bottom_names[-1]]
    net.layers[-1].backward([net.blobs[name] for name in net.top_names[-1]],
                            [i == 0 for i in range(len(bottoms))], bottoms)
    return loss, {bottoms[0].name: bottoms[0].diff.copy()}


SPATIAL = [("x", (2, 3, 2, 2)), ("label", (2, 1, 2, 2))]


@pytest.mark.parametrize("loss_param", ["", "loss_param { ignore_label: 1 }",
                                        "loss_param { ignore_label: 2 normalization: FULL }",
                                        "loss_param { normalization: BATCH_SIZE }",
                                        "loss_param { normalization: NONE }"])
def test_infogain_with_identity_h_is_softmax_with_loss(loss_param):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 3, 2, 2)).astype(np.float32)
    label = rng.integers(0, 3, (2, 1, 2, 2)).astype(np.float32)
    infogain = loss_net(f'layer {{ name: "l" type: "InfogainLoss" bottom: "x" bottom: "label" bottom: "H" '
                        f'top: "loss" {loss_param} }}', SPATIAL + [("H", (3, 3))])
    softmax = loss_net(f'layer {{ name: "l" type: "SoftmaxWithLoss" bottom: "x" bottom: "label" top: "loss" '
                       f'{loss_param} }}', SPATIAL)
    infogain.blobs["H"].data[...] = np.eye(3)
    loss, diff = run(infogain, x=x, label=label)
    expected_loss, expected_diff = run(softmax, x=x, label=label)
    np.testing.assert_allclose(loss["loss"], expected_loss["loss"], rtol=1e-6)
    np.testing.assert_allclose(diff["x"], expected_diff["x"], rtol=1e-5, atol=1e-7)


def test_infogain_formula_with_axis_and_prob_top():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((2, 3, 4)).astype(np.float32)
    label = rng.integers(0, 4, (2, 3)).astype(np.float32)
    h = rng.uniform(0, 1, (4, 4)).astype(np.float32)
    net = loss_net('layer { name: "l" type: "InfogainLoss" bottom: "x" bottom: "label" bottom: "H" top: "loss" '
                   'top: "prob" loss_weight: 1 loss_weight: 0 infogain_loss_param { axis: -1 } }',
                   [("x", x.shape), ("label", label.shape), ("H", h.shape)], force_backward=False)
    out = net.forward(x=x, label=label, H=h)
    p = np.exp(x - x.max(axis=2, keepdims=True))
    p /= p.sum(axis=2, keepdims=True)
    np.testing.assert_allclose(out["prob"], p, rtol=1e-6)
    rows = h[label.astype(int)]  # (2, 3, 4): H[label, l]
    np.testing.assert_allclose(out["loss"], -(rows * np.log(p)).sum() / 6, rtol=1e-6)
    assert net.blob_loss_weights == {"x": 0.0, "label": 0.0, "H": 0.0, "loss": 1.0, "prob": 0.0}


def test_infogain_reads_h_from_its_source_file(tmp_path, monkeypatch):
    rng = np.random.default_rng(3)
    h = rng.uniform(0, 1, (1, 1, 4, 4)).astype(np.float32)
    write_binary(tmp_path / "H.binaryproto", array_to_blob(h))
    monkeypatch.chdir(tmp_path)  # Caffe opens the path relative to the working directory
    x = rng.standard_normal((3, 4)).astype(np.float32)
    label = np.array([0, 3, 1], np.float32)
    inputs = [("x", x.shape), ("label", label.shape)]
    source = loss_net('layer { name: "l" type: "InfogainLoss" bottom: "x" bottom: "label" top: "loss" '
                      'infogain_loss_param { source: "H.binaryproto" } }', inputs)
    bottom = loss_net('layer { name: "l" type: "InfogainLoss" bottom: "x" bottom: "label" bottom: "H" '
                      'top: "loss" }', inputs + [("H", (4, 4))])
    bottom.blobs["H"].data[...] = h.reshape(4, 4)
    loss, diff = run(source, x=x, label=label)
    expected_loss, expected_diff = run(bottom, x=x, label=label)
    np.testing.assert_array_equal(loss["loss"], expected_loss["loss"])
    np.testing.assert_array_equal(diff["x"], expected_diff["x"])


@pytest.mark.parametrize("layer, message", [
    ('loss_param { normalize: true } infogain_loss_param { source: "H" }', 'normalize is deprecated. use "normalization"'),
    ("", "Infogain matrix source must be specified."),
    ('infogain_loss_param { source: "missing.binaryproto" }', "missing.binaryproto: no such file"),
])
def test_infogain_setup_refusals(layer, message):
    with pytest.raises(CaffeCaeError, match=message):
        loss_net(f'layer {{ name: "l" type: "InfogainLoss" bottom: "x" bottom: "label" top: "loss" {layer} }}',
                 [("x", (3, 4)), ("label", (3,))])


def test_infogain_refuses_an_h_of_the_wrong_size():
    with pytest.raises(CaffeCaeError, match=r"layer 'l' \(InfogainLoss\): Check failed: infogain->count\(\) == "
                                            r"num_labels_\*num_labels_ \(9 vs\. 16\)"):
        loss_net('layer { name: "l" type: "InfogainLoss" bottom: "x" bottom: "label" bottom: "H" top: "loss" }',
                 [("x", (3, 4)), ("label", (3,)), ("H", (3, 3))])


def test_infogain_aborts_on_force_backward_into_h():
    net = loss_net('layer { name: "l" type: "InfogainLoss" bottom: "x" bottom: "label" bottom: "H" top: "loss" }',
                   [("x", (3, 4)), ("label", (3,)), ("H", (4, 4))])
    net.forward()
    with pytest.raises(CaffeCaeError, match="InfogainLoss Layer cannot backpropagate to infogain inputs."):
        net.backward()


def test_multinomial_logistic_clips_a_zero_probability():
    p = np.array([[0.0, 1.0], [0.25, 0.75]], np.float32)
    label = np.array([0, 1], np.float32)
    net = loss_net('layer { name: "l" type: "MultinomialLogisticLoss" bottom: "p" bottom: "label" top: "loss" }',
                   [("p", p.shape), ("label", label.shape)])
    loss, diff = run(net, p=p, label=label)
    np.testing.assert_allclose(loss["loss"], (-np.log(1e-20) - np.log(0.75)) / 2, rtol=1e-6)
    expected = np.array([[-1 / (np.float32(1e-20) * 2), 0], [0, -1 / (0.75 * 2)]])
    np.testing.assert_allclose(diff["p"], expected, rtol=1e-6)
    assert np.isfinite(diff["p"]).all()


def test_multinomial_logistic_wants_one_label_per_item():
    with pytest.raises(CaffeCaeError, match=r"labels must be \(N, 1, 1, 1\), got \[3, 2\]"):
        loss_net('layer { name: "l" type: "MultinomialLogisticLoss" bottom: "p" bottom: "label" top: "loss" }',
                 [("p", (3, 4)), ("label", (3, 2))])


@pytest.mark.parametrize("norm", ["L1", "L2"])
def test_hinge_loss_formula(norm):
    rng = np.random.default_rng(4)
    x = rng.standard_normal((3, 2, 2)).astype(np.float32)
    label = np.array([1, 3, 0], np.float32)
    net = loss_net(f'layer {{ name: "l" type: "HingeLoss" bottom: "x" bottom: "label" top: "loss" '
                   f'hinge_loss_param {{ norm: {norm} }} }}', [("x", x.shape), ("label", label.shape)])
    loss, diff = run(net, x=x, label=label)
    sign = -np.ones((3, 4))
    sign[np.arange(3), label.astype(int)] = 1
    margin = np.maximum(0, 1 - sign * x.reshape(3, 4))
    if norm == "L1":
        expected, grad = margin.sum() / 3, -sign * (margin > 0) / 3
    else:
        expected, grad = (margin ** 2).sum() / 3, -2 * sign * margin / 3
    np.testing.assert_allclose(loss["loss"], expected, rtol=1e-6)
    np.testing.assert_allclose(diff["x"], grad.reshape(x.shape), rtol=1e-6, atol=1e-7)


def test_hinge_loss_backward_reads_the_margins_its_forward_left_in_the_diff():
    """As in Caffe: the forward keeps the margins in the score's diff, the backward turns that diff
    into the gradient (golden_bvlc's hinge cases pre-set it to 0 and record a 0 gradient)."""
    net = loss_net('layer { name: "l" type: "HingeLoss" bottom: "x" bottom: "label" top: "loss" }',
                   [("x", (2, 3)), ("label", (2,))])
    x = np.array([[0.5, -2.0, 0.2], [3.0, 0.0, -0.5]], np.float32)
    label = np.array([0, 2], np.float32)
    net.forward(x=x, label=label)
    np.testing.assert_allclose(net.blobs["x"].diff, [[0.5, 0, 1.2], [4, 1, 1.5]])
    net.blobs["x"].diff[...] = 0
    np.testing.assert_array_equal(net.backward()["x"], 0)


def test_hinge_loss_uses_legacy_accessors():
    with pytest.raises(CaffeCaeError, match="Cannot use legacy accessors on Blobs with > 4 axes"):
        loss_net('layer { name: "l" type: "HingeLoss" bottom: "x" bottom: "label" top: "loss" }',
                 [("x", (2, 3, 1, 1, 1)), ("label", (2,))])


@pytest.mark.parametrize("layer", ["HingeLoss", "MultinomialLogisticLoss", "InfogainLoss"])
def test_labels_out_of_range_are_refused(layer, tmp_path):
    h = 'bottom: "H"' if layer == "InfogainLoss" else ""
    inputs = [("x", (2, 3)), ("label", (2,))] + ([("H", (3, 3))] if h else [])
    net = loss_net(f'layer {{ name: "l" type: "{layer}" bottom: "x" bottom: "label" {h} top: "loss" }}', inputs)
    with pytest.raises(CaffeCaeError, match=r"label value 3 out of range \[0, 3\)"):
        net.forward(x=np.full((2, 3), 0.3, np.float32), label=np.array([1, 3], np.float32))
