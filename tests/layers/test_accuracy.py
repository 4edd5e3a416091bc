"""Accuracy: golden top-1/top-2, Caffe's tie rule, ignore_label, per-class top, no backward."""
import numpy as np
import pytest

from caffe_cae.errors import CaffeCaeError
from caffe_cae.prototxt import parse_text
from caffe_cae.proto import caffe_pb2
from tests.helpers.layer_golden import Case, assert_close, build


def layer(text):
    return parse_text(text, caffe_pb2.LayerParameter, "<test>")


@pytest.mark.parametrize("name", ["acc", "acc2"])
def test_golden(name):
    case = Case("accuracy")
    lay, bottom, top = build(case.layer_param(name), [case.npz["out/ip"], case.npz["in/label"]])
    lay.forward(bottom, top)
    assert top[0].shape == ()
    assert_close(top[0].data, case.npz[f"out/{name}"], case.tol["forward"], name)


def test_top_k_ties_are_pessimistic_and_ignore_label():
    scores = np.array([[0.1, 0.5, 0.5, 0.2],    # label 1 ties with 2: counts as 1 better -> top-1 miss
                       [0.9, 0.1, 0.3, 0.2],    # label 0: hit
                       [0.3, 0.2, 0.1, 0.0],    # label 2: rank 3
                       [0.0, 0.0, 0.0, 1.0]], np.float32)  # ignored
    labels = np.array([1, 0, 2, 7], np.float32)
    text = 'type: "Accuracy" bottom: "s" bottom: "l" top: "a" top: "per" accuracy_param {{ top_k: {k} ignore_label: 7 }}'
    for k, want, per in [(1, 1 / 3, [1, 0, 0, 0]), (2, 2 / 3, [1, 1, 0, 0]), (3, 1.0, [1, 1, 1, 0])]:
        lay, bottom, top = build(layer(text.format(k=k)), [scores, labels])
        lay.forward(bottom, top)
        assert top[0].data == pytest.approx(want)
        np.testing.assert_allclose(top[1].data, per)
        assert top[1].shape == (4,)


def test_spatial_axis():
    rng = np.random.default_rng(0)
    scores = rng.standard_normal((2, 3, 4)).astype(np.float32)
    labels = scores.argmax(axis=1).astype(np.float32)
    labels[0, 0] = (labels[0, 0] + 1) % 3
    lay, bottom, top = build(layer('type: "Accuracy" bottom: "s" bottom: "l" top: "a"'), [scores, labels])
    lay.forward(bottom, top)
    assert top[0].data == pytest.approx(7 / 8)


def test_errors_and_no_backward():
    text = 'name: "acc" type: "Accuracy" bottom: "s" bottom: "l" top: "a"'
    with pytest.raises(CaffeCaeError, match=r"layer 'acc' \(Accuracy\): top_k \(5\)"):
        build(layer(text + " accuracy_param { top_k: 5 }"), [np.zeros((2, 4)), np.zeros(2)])
    with pytest.raises(CaffeCaeError, match="Number of labels must match"):
        build(layer(text), [np.zeros((2, 4, 3)), np.zeros(2)])
    lay, bottom, top = build(layer(text), [np.zeros((2, 4)), np.array([0.0, 1.0])])
    lay.forward(bottom, top)
    with pytest.raises(CaffeCaeError, match="Not Implemented"):
        lay.backward(top, [True, False], bottom)
    lay.backward(top, [False, False], bottom)
    assert lay.allow_force_backward(0)  # Caffe's default: force_backward then aborts in backward
