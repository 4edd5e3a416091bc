"""caffe_cae.parallel: the thread split covers every index once, element-wise work is
bit-identical for any thread count, split GEMMs agree to float rounding."""
from __future__ import annotations

import numpy as np
import pytest

from caffe_cae import generate, parallel, tuning
from caffe_cae.experiments.encode import feed_net_param
from caffe_cae.net import TRAIN, Net
from caffe_cae.testing import assert_rounding_close

pytestmark = pytest.mark.usefixtures("fast_engine")


@pytest.fixture
def threads():
    """Set the thread count (and split even tiny arrays); restored afterwards."""
    before = parallel.threads()
    with tuning.override(SPLIT_MIN_ELEMENTS=0):
        yield parallel.set_threads
    parallel.set_threads(before)


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
    calls = []
    with tuning.override(SPLIT_MIN_ELEMENTS=100):
        parallel.split(lambda lo, hi: calls.append((lo, hi)), 10, 99)
    assert calls == [(0, 10)]


def test_the_reference_engine_runs_everything_inline(threads):
    from caffe_cae import engine

    threads(3)
    calls = []
    with engine.using("reference"):
        parallel.split(lambda lo, hi: calls.append((lo, hi)), 10, 1 << 30)
    assert calls == [(0, 10)]


def test_errors_in_a_part_propagate(threads):
    threads(2)

    def part(lo, hi):
        if lo > 0:
            raise ValueError("boom")

    with pytest.raises(ValueError, match="boom"):
        parallel.split(part, 4, 4)


@pytest.mark.parametrize("axis, a_shape, b_shape", [
    (-1, (2, 5, 7), (2, 7, 9)),    # column blocks of b
    (-2, (2, 9, 7), (2, 7, 5)),    # row blocks of a
    (0, (3, 2, 5, 7), (3, 2, 7, 4)),  # stacked matrices
])
def test_split_matmul_equals_numpy(threads, axis, a_shape, b_shape):
    threads(3)
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal(a_shape), rng.standard_normal(b_shape)
    out = np.full(np.broadcast_shapes(a_shape[:-1] + (1,), b_shape[:-2] + (1, 1))[:-1] + (b_shape[-1],), np.nan)
    parallel.matmul(a, b, out, axis=axis)
    np.testing.assert_allclose(out, np.matmul(a, b), rtol=1e-12)


def _input_net(model: str, batch: int):
    """The model's train net with an Input layer instead of its HDF5 data layers."""
    param = generate.net_param(model, dim=3, batch=batch)
    return feed_net_param(param, {"data": (batch, 1, 28, 28)}, phase=TRAIN)


def _run(model: str, x: np.ndarray):
    net = Net(_input_net(model, len(x)), phase=TRAIN, seed=3)
    net.blobs["data"].data[...] = x
    loss = net.forward_backward()
    blobs = {name: (b.data.copy(), b.diff.copy()) for name, b in net.blobs.items()}
    params = [(p.data.copy(), p.diff.copy()) for p in net.learnable_params]
    return loss, blobs, params


#: Sums along the longest chain of these nets (a scale for the rounding bound): the weight
#: gradient of the first convolution (5 images x 24 x 24 positions) after a forward and a
#: backward through ~2000-term inner products.
NET_TERMS = 5 * 24 * 24 + 2 * 2000


@pytest.fixture
def no_gemm_split():
    """GEMMs unsplit, and the BLAS on one thread in both runs (OpenBLAS on 2 threads rounds
    differently), so that every remaining difference would come from the element-wise
    splits -- which must be exact."""
    threadpoolctl = pytest.importorskip("threadpoolctl")
    with tuning.override(SPLIT_GEMMS=False), threadpoolctl.threadpool_limits(1, user_api="blas"):
        yield


@pytest.mark.parametrize("model", ["model3", "model4", "model5", "model1"])
def test_elementwise_splits_are_bit_identical(threads, no_gemm_split, model):
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


@pytest.mark.parametrize("model", ["model3", "model1", "deep-ae"])
def test_split_gemms_agree_to_rounding(threads, model):
    x = np.random.default_rng(0).random((5, 1, 28, 28), dtype=np.float32)
    threads(1)
    loss1, blobs1, params1 = _run(model, x)
    threads(3)
    loss3, blobs3, params3 = _run(model, x)
    assert_rounding_close(loss3, loss1, terms=NET_TERMS, err_msg="loss")
    for name, (data, diff) in blobs1.items():
        assert_rounding_close(blobs3[name][0], data, terms=NET_TERMS, err_msg=f"{name} data")
        assert_rounding_close(blobs3[name][1], diff, terms=NET_TERMS, err_msg=f"{name} diff")
    for (d1, g1), (d3, g3) in zip(params1, params3):
        np.testing.assert_array_equal(d3, d1)  # no update ran
        assert_rounding_close(g3, g1, terms=NET_TERMS)


@pytest.mark.parametrize("solver_type", ["SGD", "Adam", "AdaDelta"])
def test_threads_give_bit_identical_updates(threads, no_gemm_split, solver_type):
    """The blockwise, threaded parameter update equals the one-thread update bit for bit."""
    from caffe_cae.solvers import SOLVER_CLASSES

    x = np.random.default_rng(1).random((4, 1, 28, 28), dtype=np.float32)
    results = []
    for n_threads, block in ((1, 1 << 30), (3, 1000)):
        threads(n_threads)
        with tuning.override(UPDATE_BLOCK=block):
            param = generate.solver_param("model4", dim=3)
            param.ClearField("net")
            param.ClearField("test_iter")
            param.test_interval = param.display = param.snapshot = 0
            param.type, param.momentum, param.weight_decay = solver_type, 0.9, 0.001
            net = Net(_input_net("model4", len(x)), phase=TRAIN, seed=5)
            net.blobs["data"].data[...] = x
            solver = SOLVER_CLASSES[solver_type](param, net=net, test_nets=[])
            solver.step(2)
        results.append(([p.data.copy() for p in net.learnable_params], [h.copy() for h in solver.history]))
    for a, b in zip(results[0][0] + results[0][1], results[1][0] + results[1][1]):
        np.testing.assert_array_equal(a, b)


def test_nested_split_runs_inline_instead_of_deadlocking(threads):
    threads(2)
    hits = np.zeros((4, 6), int)

    def outer(lo, hi):
        for row in range(lo, hi):
            parallel.split(lambda a, b, row=row: hits[row, a:b].__iadd__(1), 6, 6)

    parallel.split(outer, 4, 24)
    assert (hits == 1).all()


def test_splits_from_several_python_threads_all_complete(threads):
    """One split at a time owns the workers; a concurrent one runs inline, never mixes parts."""
    import threading

    threads(3)
    results = [np.zeros(3000, int) for _ in range(6)]

    def job(k):
        for _ in range(50):
            parallel.split(lambda lo, hi: results[k][lo:hi].__iadd__(1), 3000, 3000)

    runners = [threading.Thread(target=job, args=(k,)) for k in range(6)]
    for runner in runners:
        runner.start()
    for runner in runners:
        runner.join()
    assert all((r == 50).all() for r in results)


def test_an_error_in_any_part_reaches_the_caller_and_the_workers_stay_usable(threads):
    threads(3)

    def part(lo, hi):
        if lo == 0:
            raise KeyError("main part")
        raise ValueError("worker part")

    with pytest.raises((KeyError, ValueError)):
        parallel.split(part, 3, 3)
    hits = np.zeros(9, int)
    parallel.split(lambda lo, hi: hits[lo:hi].__iadd__(1), 9, 9)
    assert (hits == 1).all()
