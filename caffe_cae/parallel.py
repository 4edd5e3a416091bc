"""Split large element-wise NumPy work over the CPU cores.

BLAS already runs the GEMMs of a layer on several threads; everything else (im2col copies,
col2im sums, activations, pooling) is single-threaded NumPy.  NumPy releases the GIL inside
its loops, so cutting such an operation into contiguous slices along one axis and running
the slices on a small thread pool uses the other cores too.  Every element-wise slice is
computed exactly as the whole would be (disjoint parts, sums in the same order).

    from caffe_cae import parallel
    parallel.split(lambda lo, hi: np.tanh(x[lo:hi], out=y[lo:hi]), len(x), x.size)

GEMMs go through the same pool (:func:`matmul`, split by output columns or images) while the
Net runs its passes inside :func:`single_threaded_blas`: one pool instead of two competing
ones.  A split GEMM agrees with the unsplit one to float rounding (BLAS edge blocks), the
element-wise splits exactly.

Threads: ``CAFFE_CAE_THREADS``, else ``OMP_NUM_THREADS``, else ``OPENBLAS_NUM_THREADS``, else
the CPUs this process may use (so pinning BLAS pins this too); ``set_threads(n)`` overrides.
"""
from __future__ import annotations

import contextlib
import os
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np

#: Work smaller than this many elements runs on the calling thread (a split costs ~20 us).
MIN_ELEMENTS = 1 << 16
MAX_THREADS = 8

_PREFIX = "caffe_cae-parallel"
_threads: int | None = None
_pool: ThreadPoolExecutor | None = None
_lock = threading.Lock()


def _default_threads() -> int:
    for var in ("CAFFE_CAE_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        value = os.environ.get(var, "").strip()
        if value.isdigit() and int(value) > 0:
            return min(int(value), MAX_THREADS)
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cpus = os.cpu_count() or 1
    return max(1, min(cpus, MAX_THREADS))


def threads() -> int:
    """How many threads :func:`split` uses."""
    global _threads
    if _threads is None:
        _threads = _default_threads()
    return _threads


def set_threads(n: int) -> None:
    """Use ``n`` threads from now on (1 = no splitting)."""
    global _threads, _pool
    with _lock:
        _threads = max(1, min(int(n), MAX_THREADS))
        if _pool is not None:
            _pool.shutdown(wait=False)
            _pool = None


def _get_pool(workers: int) -> ThreadPoolExecutor:
    global _pool
    with _lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix=_PREFIX)
        return _pool


def _forget_pool_in_child() -> None:  # a forked child has none of the parent's threads
    global _pool
    _pool = None


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pool_in_child)


def split(fn, n: int, work: int) -> None:
    """Run ``fn(lo, hi)`` over ``range(n)`` cut into contiguous parts, one per thread.

    ``work`` is the operation's size in elements: below :data:`MIN_ELEMENTS` (or with one
    thread, or ``n`` < 2) ``fn(0, n)`` runs directly.  ``fn`` must only write its own part.
    """
    parts = min(threads(), n)
    # A part that splits again runs inline: waiting on the pool from its own worker could
    # deadlock.
    if parts < 2 or work < MIN_ELEMENTS or threading.current_thread().name.startswith(_PREFIX):
        fn(0, n)
        return
    bounds = [n * k // parts for k in range(parts + 1)]
    pool = _get_pool(parts - 1)
    futures = [pool.submit(fn, bounds[k], bounds[k + 1]) for k in range(1, parts)]
    try:
        fn(bounds[0], bounds[1])
    finally:
        for future in futures:
            future.result()


def matmul(a, b, out, axis: int = -1) -> None:
    """``np.matmul(a, b, out=out)`` with the product split over the threads along ``out``'s
    last axis (``axis=-1``: column blocks of ``b``), its rows (``axis=-2``: row blocks of
    ``a``) or its first axis (``axis=0``: the stacked matrices of ``b``, e.g. one per image;
    ``a`` is broadcast, or sliced too when it has as many axes as ``out``).

    Every output element is the same dot product as in the unsplit call.  With more than one
    thread it is meant to run inside :func:`single_threaded_blas`, so that the BLAS does not
    start threads of its own on top of these.
    """
    n = out.shape[axis]
    work = out.size * a.shape[-1]
    if axis == -2:  # row blocks of a
        split(lambda lo, hi: np.matmul(a[..., lo:hi, :], b, out=out[..., lo:hi, :]), n, work // 8)
    elif axis == 0:
        stacked = a.ndim == out.ndim  # a stacked like b (else broadcast to every matrix of b)
        split(lambda lo, hi: np.matmul(a[lo:hi] if stacked else a, b[lo:hi], out=out[lo:hi]),
              n, work // 8)
    else:
        split(lambda lo, hi: np.matmul(a, b[..., lo:hi], out=out[..., lo:hi]), n, work // 8)


_controller = None


def single_threaded_blas():
    """A context in which the BLAS runs on one thread (when this module uses several):
    one pool, ours, then covers the GEMMs (:func:`matmul`) and the element-wise work, instead
    of two pools competing for the cores (OpenBLAS's idle workers spin-wait for ~0.1 s after
    every GEMM).  A no-op with one thread or without ``threadpoolctl``."""
    global _controller
    if threads() < 2:
        return contextlib.nullcontext()
    if _controller is None:
        try:
            from threadpoolctl import ThreadpoolController
        except ImportError:  # optional: then both pools stay
            _controller = False
        else:
            _controller = ThreadpoolController()
    if not _controller:
        return contextlib.nullcontext()
    return _controller.limit(limits=1, user_api="blas")


@contextlib.contextmanager
def limit_threads(n: int | None):
    """Run a block with ``n`` threads everywhere: this module's pool and every BLAS/OpenMP
    library threadpoolctl knows (scikit-learn's t-SNE and MLP included).  ``None``/0: leave the
    defaults.  The previous settings come back afterwards."""
    if not n:
        yield
        return
    previous = threads()
    set_threads(n)
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # optional: then only our pool is limited
        limits = contextlib.nullcontext()
    else:
        limits = threadpool_limits(limits=n)
    try:
        with limits:
            yield
    finally:
        set_threads(previous)
