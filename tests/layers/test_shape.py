"""Reshape, Flatten, Split, Slice, Concat, Silence: golden data, memory sharing, shape rules, errors."""
import numpy as np
import pytest

from caffe_cae.errors import CaffeCaeError
from caffe_cae.prototxt import parse_text
from caffe_cae.proto import caffe_pb2
from tests.helpers.layer_golden import Case, assert_close, build, check_golden_layer, numeric_gradient_check


def layer(text):
    return parse_text(text, caffe_pb2.LayerParameter, "<test>")


def out_shapes(text, *shapes):
    lay = build(layer(text), [np.zeros(s) for s in shapes])[0]
    return lay.reshape(list(shapes))


@pytest.mark.parametrize("case, name, n_diffs", [
    ("reshape_0011", "reshape", 1), ("reshape_neg1", "reshape", 1), ("flatten", "flat", 1),
    ("slice", "slice", 1), ("concat", "concat", 2),
])
def test_golden(case, name, n_diffs):
    *_, checked = check_golden_layer(case, name)
    assert checked == n_diffs


@pytest.mark.parametrize("case, name", [("reshape_0011", "reshape"), ("flatten", "flat")])
def test_reshape_flatten_share_data_and_diff(case, name):
    lay, bottom, top = check_golden_layer(case, name)[:3]
    assert np.shares_memory(top[0].data, bottom[0].data)
    assert np.shares_memory(top[0].diff, bottom[0].diff)


def test_auto_split_sums_diffs():
    case = Case("auto_split")
    param = layer('name: "x_x_0_split" type: "Split" bottom: "x" top: "x_x_0_split_0" top: "x_x_0_split_1"')
    lay, bottom, top = build(param, [case.npz["in/x"]])
    lay.forward(bottom, top)
    for t in top:
        assert np.shares_memory(t.data, bottom[0].data)
        assert_close(t.data, case.npz[f"out/{t.name}"], case.tol["forward"], t.name)
        t.diff[...] = case.npz[f"diff/{t.name}"]
    assert not np.shares_memory(top[0].diff, top[1].diff)
    lay.backward(top, [True], bottom)
    assert_close(bottom[0].diff, case.npz["diff/x"], case.tol["backward"], "diff/x")


@pytest.mark.parametrize("dims, axis, num_axes, shape, want", [
    ("0 0 1 1", 0, -1, (2, 6), (2, 6, 1, 1)),
    ("0 -1 4", 0, -1, (2, 3, 4, 2), (2, 6, 4)),
    ("-1", 0, -1, (2, 3, 4), (24,)),
    ("2 2", 1, 1, (3, 4, 5), (3, 2, 2, 5)),          # replace axis 1 only
    ("1", 1, 0, (3, 4), (3, 1, 4)),                  # insert an axis
    ("1", -1, 0, (3, 4), (3, 4, 1)),                 # axis -1 = append at the end
    ("-1", -2, 1, (3, 4, 5), (3, 4, 5)),
    ("0 -1", 1, -1, (2, 3, 4, 5), (2, 3, 20)),
])
def test_reshape_rules(dims, axis, num_axes, shape, want):
    d = " ".join(f"dim: {x}" for x in dims.split())
    text = f'name: "r" type: "Reshape" bottom: "x" top: "y" reshape_param {{ shape {{ {d} }} axis: {axis} num_axes: {num_axes} }}'
    assert out_shapes(text, shape) == [want]


@pytest.mark.parametrize("dims, shape, message", [
    ("-1 -1", (2, 3), "multiple -1"),
    ("0 0 0", (2, 3), "no corresponding bottom axis"),
    ("5 -1", (2, 3), "divisible"),
    ("4 4", (2, 3), "output count must match"),
])
def test_reshape_errors(dims, shape, message):
    d = " ".join(f"dim: {x}" for x in dims.split())
    with pytest.raises(CaffeCaeError, match=rf"layer 'r' \(Reshape\): .*{message}"):
        out_shapes(f'name: "r" type: "Reshape" bottom: "x" top: "y" reshape_param {{ shape {{ {d} }} }}', shape)


@pytest.mark.parametrize("kind", ["Reshape", "Flatten", "Split"])
def test_in_place_refused(kind):
    with pytest.raises(CaffeCaeError, match="in-place"):
        build(layer(f'name: "r" type: "{kind}" bottom: "x" top: "x"'), [np.zeros((2, 3))])


def test_flatten_axes():
    base = 'name: "f" type: "Flatten" bottom: "x" top: "y"'
    assert out_shapes(base, (2, 3, 4, 5)) == [(2, 60)]
    assert out_shapes(base + " flatten_param { axis: 2 }", (2, 3, 4, 5)) == [(2, 3, 20)]
    assert out_shapes(base + " flatten_param { axis: 0 end_axis: 1 }", (2, 3, 4, 5)) == [(6, 4, 5)]
    assert out_shapes(base + " flatten_param { end_axis: -2 }", (2, 3, 4, 5)) == [(2, 12, 5)]
    with pytest.raises(CaffeCaeError, match="axis 4 out of range"):
        out_shapes(base + " flatten_param { axis: 4 }", (2, 3, 4, 5))


def test_slice_even_and_legacy_dim():
    text = 'name: "s" type: "Slice" bottom: "x" top: "a" top: "b" top: "c"'
    assert out_shapes(text + " slice_param { slice_dim: 2 }", (2, 3, 6)) == [(2, 3, 2)] * 3
    assert out_shapes(text + " slice_param { axis: -1 }", (2, 3, 6)) == [(2, 3, 2)] * 3
    assert out_shapes(text, (2, 6)) == [(2, 2)] * 3
    with pytest.raises(CaffeCaeError, match="evenly divide"):
        out_shapes(text, (2, 4))
    with pytest.raises(CaffeCaeError, match="not both"):
        out_shapes(text + " slice_param { axis: 1 slice_dim: 1 }", (2, 6))
    with pytest.raises(CaffeCaeError, match="slice_point"):
        out_shapes(text + " slice_param { slice_point: 2 }", (2, 6))
    with pytest.raises(CaffeCaeError, match="increase"):
        out_shapes(text + " slice_param { slice_point: 3 slice_point: 2 }", (2, 6))


def test_concat_shapes_and_errors():
    text = 'name: "c" type: "Concat" bottom: "a" bottom: "b" top: "y"'
    assert out_shapes(text, (2, 3, 4), (2, 5, 4)) == [(2, 8, 4)]
    assert out_shapes(text + " concat_param { concat_dim: 0 }", (2, 3), (4, 3)) == [(6, 3)]
    assert out_shapes(text + " concat_param { axis: -1 }", (2, 3), (2, 1)) == [(2, 4)]
    with pytest.raises(CaffeCaeError, match=r"same shape, except at concat_axis 1: bottom 0 \[2, 3, 4\], bottom 1 \[2, 5, 5\]"):
        out_shapes(text, (2, 3, 4), (2, 5, 5))
    with pytest.raises(CaffeCaeError, match="same #axes"):
        out_shapes(text, (2, 3, 4), (2, 5))


@pytest.mark.parametrize("text, shapes", [
    ('type: "Slice" bottom: "x" top: "a" top: "b" slice_param { axis: 2 slice_point: 1 }', [(2, 3, 4)]),
    ('type: "Concat" bottom: "a" bottom: "b" bottom: "c" top: "y" concat_param { axis: 0 }', [(1, 3), (2, 3), (1, 3)]),
    ('type: "Split" bottom: "x" top: "a" top: "b" top: "c"', [(2, 3)]),
    ('type: "Flatten" bottom: "x" top: "y"', [(2, 3, 2)]),
    ('type: "Reshape" bottom: "x" top: "y" reshape_param { shape { dim: -1 } }', [(2, 3)]),
])
def test_gradients(text, shapes):
    rng = np.random.default_rng(0)
    numeric_gradient_check(layer(text), [rng.standard_normal(s) for s in shapes])


def test_single_top_slice_and_single_bottom_concat_share():
    for text in ('type: "Slice" bottom: "x" top: "y"', 'type: "Concat" bottom: "x" top: "y"'):
        lay, bottom, top = build(layer(text), [np.arange(6.0).reshape(2, 3)])
        lay.forward(bottom, top)
        assert np.shares_memory(top[0].data, bottom[0].data)
        np.testing.assert_array_equal(top[0].data, bottom[0].data)


def test_silence_zeroes_diffs():
    lay, bottom, top = build(layer('type: "Silence" bottom: "a" bottom: "b"'), [np.ones((2, 2)), np.ones(3)])
    assert top == []
    for b in bottom:
        b.diff[...] = 7
    lay.forward(bottom, top)
    lay.backward(top, [True, False], bottom)
    np.testing.assert_array_equal(bottom[0].diff, 0)
    np.testing.assert_array_equal(bottom[1].diff, 7)
