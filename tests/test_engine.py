"""The engine switch (caffe_cae.engine), the tuning overrides (caffe_cae.tuning), the rounding
tolerance (caffe_cae.testing.rounding), and every fast path against its reference path."""
from __future__ import annotations

import math
import os
import subprocess
import sys

import numpy as np
import pytest

import caffe_cae
from caffe_cae import engine, generate, tuning
from caffe_cae.blob import Blob
from caffe_cae.errors import CaffeCaeError
from caffe_cae.experiments.encode import feed_net_param
from caffe_cae.layers import create_layer
from caffe_cae.layers.common import caffe_loss_sum
from caffe_cae.net import TRAIN, Net
from caffe_cae.proto import caffe_pb2
from caffe_cae.prototxt import parse_text
from caffe_cae.testing import assert_rounding_close

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# -- the switch ------------------------------------------------------------------------------


def test_use_and_using_select_and_restore():
    before = engine.current()
    with engine.using("reference"):
        assert engine.current() == "reference" and engine.reference()
        with engine.using("FAST"):
            assert engine.current() == "fast" and not engine.reference()
        assert engine.reference()
    assert engine.current() == before
    caffe_cae.set_engine("reference")
    try:
        assert engine.reference()
    finally:
        engine.use(before)


def test_an_unknown_engine_is_a_one_line_error():
    one_line = r"^unknown engine 'gpu' \(use 'fast' or 'reference'\)$"
    with pytest.raises(CaffeCaeError, match=one_line):
        engine.use("gpu")


def _python(code: str, value: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, CAFFE_CAE_ENGINE=value)
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=60)


def test_the_environment_variable_selects_the_engine_at_import():
    run = _python("from caffe_cae import engine; print(engine.current())", " Reference ")
    assert run.stdout.strip() == "reference", run.stderr


def test_a_bad_environment_variable_is_the_commands_one_line_error():
    run = _python("import sys; from caffe_cae.cli import main; sys.exit(main(['gen', 'model4']))",
                  "turbo")
    assert run.returncode == 1
    assert run.stderr.strip() == ("caffe-cae gen: error: CAFFE_CAE_ENGINE: unknown engine 'turbo' "
                                  "(use 'fast' or 'reference')")


# -- tuning and the rounding tolerance -------------------------------------------------------


def test_tuning_override_restores_and_refuses_unknown_names():
    before = tuning.BATCH_INNER_BELOW
    with tuning.override(BATCH_INNER_BELOW=0, UPDATE_BLOCK=7):
        assert (tuning.BATCH_INNER_BELOW, tuning.UPDATE_BLOCK) == (0, 7)
    assert tuning.BATCH_INNER_BELOW == before
    with pytest.raises(TypeError, match="no tuning constant BLOCK_SIZE"):
        with tuning.override(BLOCK_SIZE=1):
            pass


def test_rounding_tolerance_accepts_reordered_sums_and_catches_a_wrong_term():
    rng = np.random.default_rng(0)
    a = rng.standard_normal((40, 3000)).astype(np.float32)
    b = rng.standard_normal(3000).astype(np.float32)
    magnitude = np.abs(a).astype(np.float64) @ np.abs(b)
    forward, backward = a @ b, a[:, ::-1] @ b[::-1].copy()
    pairwise = (a * b).sum(axis=1)
    for other in (backward, pairwise, np.cumsum(a * b, axis=1, dtype=np.float32)[:, -1]):
        assert_rounding_close(other, forward, terms=3000, magnitude=magnitude)
    wrong = a.copy()
    wrong[5] = np.roll(wrong[5], 1)  # a slice off by one
    with pytest.raises(AssertionError, match="1/40 elements"):
        assert_rounding_close(wrong @ b, forward, terms=3000, magnitude=magnitude)


# -- every fast path against its reference -----------------------------------------------------


def _layer(text: str, bottom_shapes, rng, dtype=np.float32, abs_params=False):
    param = parse_text(text, caffe_pb2.LayerParameter, "<test>")
    layer = create_layer(param, caffe_pb2.TRAIN)
    layer.check_blob_counts(len(bottom_shapes), len(param.top))
    shapes = layer.setup(bottom_shapes)
    layer.blobs = [Blob(s, dtype, f"p{i}") for i, s in enumerate(shapes)]
    for blob in layer.blobs:
        blob.data[...] = rng.standard_normal(blob.shape)
    return layer, layer.reshape(bottom_shapes)


def _run(layer, xs, top_shapes, dys, dtype=np.float32):
    """forward + backward of a fresh set of blobs; (tops, bottom diffs, param diffs)."""
    bottom = [Blob(x.shape, dtype, f"b{i}") for i, x in enumerate(xs)]
    top = [Blob(s, dtype, f"t{i}") for i, s in enumerate(top_shapes)]
    for blob, x in zip(bottom, xs):
        blob.data[...] = x
    layer.forward(bottom, top)
    for blob, dy in zip(top, dys):
        blob.diff[...] = dy
    for blob in layer.blobs:
        blob.diff[...] = 0
    for blob in bottom:
        blob.diff[...] = np.nan  # must be assigned
    layer.backward(top, [True] * len(bottom), bottom)
    return ([t.data.copy() for t in top], [b.diff.copy() for b in bottom],
            [p.diff.copy() for p in layer.blobs])


def _both_engines(layer, xs, top_shapes, dys):
    with engine.using("fast"):
        fast = _run(layer, xs, top_shapes, dys)
    with engine.using("reference"):
        reference = _run(layer, xs, top_shapes, dys)
    return fast, reference


CONVOLUTIONS = [
    # (type, convolution_param, bottom shape): both column layouts, groups, pads, strides,
    # dilation, rectangular kernels, 1-D and 3-D, no spatial axes, the chunked col2im
    ("Convolution", "num_output: 6 kernel_size: 5", (3, 4, 20, 20)),           # per image
    ("Convolution", "num_output: 6 kernel_size: 3 pad: 1 stride: 2 group: 2", (5, 4, 9, 8)),
    ("Convolution", "num_output: 4 kernel_h: 3 kernel_w: 2 dilation: 2 pad: 2", (2, 3, 11, 7)),
    ("Convolution", "num_output: 3 kernel_size: 4 stride: 3 bias_term: false", (2, 2, 5, 5)),
    ("Convolution", "num_output: 4 kernel_size: 3 stride: 2 pad: 1", (2, 3, 5, 6, 7)),
    ("Convolution", "num_output: 4 kernel_size: 3", (3, 2, 30)),
    ("Convolution", "num_output: 5 kernel_size: 1", (4, 3)),
    ("Deconvolution", "num_output: 1 kernel_size: 5", (3, 4, 24, 24)),         # per image
    ("Deconvolution", "num_output: 6 kernel_size: 4 stride: 2 pad: 1 group: 2", (3, 4, 5, 6)),
    ("Deconvolution", "num_output: 3 kernel_size: 3 dilation: 2 bias_term: false", (2, 5, 4, 4)),
    ("Deconvolution", "num_output: 2 kernel_size: 17", (2, 3, 8, 8)),          # chunked col2im
    ("Deconvolution", "num_output: 2 kernel_size: 3 stride: 2", (2, 3, 4, 5, 3)),
]


@pytest.mark.parametrize("type_name, text, shape", CONVOLUTIONS)
def test_convolutions(type_name, text, shape):
    rng = np.random.default_rng(len(text))
    layer_text = (f'name: "c" type: "{type_name}" bottom: "x" bottom: "x2" top: "y" top: "y2" '
                  f'convolution_param {{ {text} }}')
    layer, top_shapes = _layer(layer_text, [shape, shape], rng)
    xs = [rng.standard_normal(shape).astype(np.float32) for _ in range(2)]
    dys = [rng.standard_normal(s).astype(np.float32) for s in top_shapes]
    fast, reference = _both_engines(layer, xs, top_shapes, dys)
    with engine.using("reference"):  # the same sums of absolute values
        for blob in layer.blobs:
            np.abs(blob.data, out=blob.data)
        magnitude = _run(layer, [np.abs(x) for x in xs], top_shapes, [np.abs(dy) for dy in dys])
    taps = max(layer.channels, layer.num_output) // layer.group * math.prod(layer.kernel)
    positions = max(math.prod(layer.in_spatial), math.prod(layer.out_spatial))
    terms = max(taps, 2 * layer.num * positions) + 1  # two bottoms share the parameter diffs
    for what, a, b, m in zip(("tops", "bottom diffs", "param diffs"), fast, reference, magnitude):
        for k, (x, y, z) in enumerate(zip(a, b, m)):
            assert_rounding_close(x, y, terms=terms, magnitude=z, err_msg=f"{what} {k}")


@pytest.mark.parametrize("text, shape", [
    ("kernel_size: 2 stride: 2", (3, 4, 8, 8)),                   # disjoint windows
    ("kernel_size: 3 stride: 2", (3, 4, 9, 7)),                   # overlapping
    ("kernel_size: 3 stride: 1 pad: 1", (2, 3, 6, 5)),
    ("kernel_size: 3 stride: 3 pad: 1", (2, 3, 5, 5)),             # empty windows, stray diffs
    ("kernel_h: 3 kernel_w: 2 stride_h: 2 stride_w: 1", (2, 2, 7, 6)),
    ("global_pooling: true", (2, 3, 4, 5)),
])
def test_max_pooling(text, shape):
    rng = np.random.default_rng(3)
    layer, top_shapes = _layer(f'name: "p" type: "Pooling" bottom: "x" top: "y" top: "mask" '
                               f'pooling_param {{ pool: MAX {text} }}', [shape], rng)
    x = rng.permutation(np.arange(math.prod(shape))).reshape(shape).astype(np.float32)
    x[0, 0, 0, :2] = 7.0  # a tie: the first maximum wins in both
    dys = [rng.standard_normal(top_shapes[0]).astype(np.float32), np.zeros(top_shapes[1])]
    fast, reference = _both_engines(layer, [x], top_shapes, dys)
    for a, b in zip(fast[0], reference[0]):
        np.testing.assert_array_equal(a, b)
    # a cell in several windows adds their diffs in another order
    windows_per_cell = math.prod(-(-k // s) for k, s in zip(layer.kernel, layer.stride))
    assert_rounding_close(fast[1][0], reference[1][0], terms=windows_per_cell + 1,
                          magnitude=np.abs(reference[1][0]) + np.abs(dys[0]).max())


def test_top_left_unpooling():
    rng = np.random.default_rng(4)
    layer, top_shapes = _layer('name: "u" type: "Unpooling" bottom: "x" top: "y" unpooling_param '
                               '{ unpool: MAX kernel_size: 2 stride: 2 unpool_size: 9 }',
                               [(3, 4, 4, 4)], rng)
    x = rng.standard_normal((3, 4, 4, 4)).astype(np.float32)
    dy = rng.standard_normal(top_shapes[0]).astype(np.float32)
    fast, reference = _both_engines(layer, [x], top_shapes, [dy])
    for a, b in zip(fast[0] + fast[1], reference[0] + reference[1]):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("type_name", ["Sigmoid", "TanH"])
def test_activations(type_name):
    rng = np.random.default_rng(5)
    x = (rng.standard_normal((4, 3, 50, 50)) * 12).astype(np.float32)
    dy = rng.standard_normal(x.shape).astype(np.float32)
    layer, top_shapes = _layer(f'name: "a" type: "{type_name}" bottom: "x" top: "y"', [x.shape],
                               rng)
    fast, reference = _both_engines(layer, [x], top_shapes, [dy])
    if type_name == "TanH":
        np.testing.assert_array_equal(fast[0][0], reference[0][0])
        np.testing.assert_array_equal(fast[1][0], reference[1][0])
        return
    # NumPy's double tanh (the reference's) and glibc's (the fast path matches it) may differ
    # by a few double ulps, which 0.5 * tanh + 0.5 keeps where it cancels (saturated tail):
    # 4 ulps are a magnitude of 2^-29 in float32 units on top of the final rounding; the
    # gradient inherits it
    y, cancellation = np.abs(reference[0][0]), 2.0 ** -29
    assert_rounding_close(fast[0][0], reference[0][0], terms=1, magnitude=y + cancellation)
    assert_rounding_close(fast[1][0], reference[1][0], terms=3,
                          magnitude=np.abs(dy) * (y + cancellation))


def test_loss_sums_are_the_same_exact_loop():
    terms = np.random.default_rng(6).random(30000) * 50
    with engine.using("reference"):
        reference = caffe_loss_sum(terms, np.float32)
    with engine.using("fast"):
        assert caffe_loss_sum(terms, np.float32) == reference


@pytest.mark.parametrize("model", ["model4", "model3"])
def test_a_training_iteration_of_the_papers_models(model):
    """Sparse deconvolution (Model 4), switch unpooling (Model 3), both column layouts, thread
    splits: losses, every blob and gradient agree with the reference engine to rounding."""
    x = np.random.default_rng(7).random((6, 1, 28, 28), dtype=np.float32)
    runs = []
    for name in ("fast", "reference"):
        with engine.using(name):
            param = feed_net_param(generate.net_param(model, dim=10, batch=6),
                                   {"data": (6, 1, 28, 28)}, phase=TRAIN)
            net = Net(param, phase=TRAIN, seed=3)
            net.blobs["data"].data[...] = x
            loss = net.forward_backward()
            runs.append((loss, {k: (b.data.copy(), b.diff.copy()) for k, b in net.blobs.items()},
                         [p.diff.copy() for p in net.learnable_params]))
    # sums along the chain conv1, conv2, ip1encode, ip2encode, ip1decode, deconv2, deconv1,
    # deconv1neur forward and backward, then conv1's weight gradient (6 images x 24 x 24);
    # the loss adds its 6 x 784 terms
    chain = 25 + 26 * 25 + 576 + 250 + 10 + 250 + 36 * 25 + 26 * 25
    terms = 2 * chain + 6 * 576
    (loss, blobs, grads), (loss0, blobs0, grads0) = runs
    assert_rounding_close(loss, loss0, terms=chain + 6 * 784, err_msg="loss")
    for name, (data, diff) in blobs0.items():
        assert_rounding_close(blobs[name][0], data, terms=terms, err_msg=f"{name} data")
        assert_rounding_close(blobs[name][1], diff, terms=terms, err_msg=f"{name} diff")
    for k, (g, g0) in enumerate(zip(grads, grads0)):
        assert_rounding_close(g, g0, terms=terms, err_msg=f"param {k}")
