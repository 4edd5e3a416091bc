"""caffe_cae.parallel: the thread split covers every index once and never changes a result."""
from __future__ import annotations

import numpy as np
import pytest

from caffe_cae import generate, parallel
from caffe_cae.net import TRAIN, Net


@pytest.fixture
def threads():
    """Set the thread count (and split even tiny arrays); restored afterwards."""
    before, min_elements = parallel.threads(), parallel.MIN_ELEMENTS

    def use(n: int) -> None:
        parallel.set_threads(n)
        parallel.MIN_ELEMENTS = 0

    yield use
    parallel.set_threads(before)
    parallel.MIN_ELEMENTS = min_elements


@pytest.mark.parametrize("n_threads, n", [(1, 7), (2, 7), (3, 2), (3, 10), (4, 1), (4, 0)])
def test_split_covers_each_index_once(threads, n_threads, n):
    threads(n_threads)
    hits = np.zeros(n, int)

    def part(lo, hi):
        hits[lo:hi] += 1

    parallel.split(part, n, n)
    assert hits.tolist() == [1] * n


def test_small_work_runs_on_the_calling_thread(threads):
    threads(3)
    parallel.MIN_ELEMENTS = 100
    calls = []
    parallel.split(lambda lo, hi: calls.append((lo, hi)), 10, 99)
    assert calls == [(0, 10)]


def test_errors_in_a_part_propagate(threads):
    threads(2)

    def part(lo, hi):
        if lo > 0:
            raise ValueError("boom")

    with pytest.raises(ValueError, match="boom"):
        parallel.split(part, 4, 4)


def _input_net(model: str, batch: int):
    """The model's train net with an Input layer instead of its HDF5 data layers."""
    param = generate.net_param(model, dim=3, batch=batch)
    layers = [layer for layer in param.layer if layer.type != "HDF5Data"]
    del param.layer[:]
    data = param.layer.add()
    data.name, data.type = "data", "Input"
    data.top.append("data")
    data.input_param.shape.add().dim.extend([batch, 1, 28, 28])
    param.layer.extend(layers)
    return param


def _run(model: str, x: np.ndarray):
    net = Net(_input_net(model, len(x)), phase=TRAIN, seed=3)
    net.blobs["data"].data[...] = x
    loss = net.forward_backward()
    blobs = {name: (b.data.copy(), b.diff.copy()) for name, b in net.blobs.items()}
    params = [(p.data.copy(), p.diff.copy()) for p in net.learnable_params]
    return loss, blobs, params


@pytest.mark.parametrize("model", ["model3", "model4", "model5", "model1"])
def test_threads_give_bit_identical_nets(threads, model):
    """Per-image and batch-inner convolutions, pooling with a mask, both unpoolings, Sigmoid,
    TanH and the losses: every blob and gradient equal for 1 and 3 threads."""
    x = np.random.default_rng(0).random((5, 1, 28, 28), dtype=np.float32)
    threads(1)
    loss1, blobs1, params1 = _run(model, x)
    threads(3)
    loss3, blobs3, params3 = _run(model, x)
    assert loss1 == loss3
    for name, (data, diff) in blobs1.items():
        np.testing.assert_array_equal(blobs3[name][0], data, err_msg=f"{name} data")
        np.testing.assert_array_equal(blobs3[name][1], diff, err_msg=f"{name} diff")
    for (d1, g1), (d3, g3) in zip(params1, params3):
        np.testing.assert_array_equal(d3, d1)
        np.testing.assert_array_equal(g3, g1)
