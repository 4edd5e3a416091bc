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
Under the reference engine (:mod:`caffe_cae.engine`) everything runs inline on the calling
thread and the BLAS keeps its own threads.  Thresholds: :mod:`caffe_cae.tuning`.
"""
from __future__ import annotations

import contextlib
import os
import threading

import numpy as np

from caffe_cae import engine, tuning

_PREFIX = "caffe_cae-parallel"
_threads: int | None = None
_workers: list["_Worker"] | None = None
_lock = threading.Lock()
_dispatch = threading.Lock()  # one split at a time uses the workers (others run inline)


class _Worker:
    """A persistent thread with one task slot, woken and waited for through two locks.

    Cheaper than ``ThreadPoolExecutor`` (its queue, futures and conditions): an empty split
    takes ~20 us instead of ~46 us, and the Net makes ~50 splits per training iteration."""

    def __init__(self, index: int):
        self._go, self._done = threading.Lock(), threading.Lock()
        self._go.acquire()
        self._done.acquire()
        self._task = None
        self._error: BaseException | None = None
        threading.Thread(target=self._loop, name=f"{_PREFIX}-{index}", daemon=True).start()

    def _loop(self) -> None:
        while True:
            self._go.acquire()
            task, self._task = self._task, None
            if task is None:  # stop()
                return
            fn, lo, hi = task
            try:
                fn(lo, hi)
            except BaseException as error:  # handed to the caller of split()
                self._error = error
            finally:
                self._done.release()

    def start(self, fn, lo: int, hi: int) -> None:
        self._task = (fn, lo, hi)
        self._go.release()

    def wait(self) -> BaseException | None:
        self._done.acquire()
        error, self._error = self._error, None
        return error

    def stop(self) -> None:
        self._task = None
        self._go.release()


def _default_threads() -> int:
    for var in ("CAFFE_CAE_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        value = os.environ.get(var, "").strip()
        if value.isdigit() and int(value) > 0:
            return min(int(value), tuning.MAX_THREADS)
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cpus = os.cpu_count() or 1
    return max(1, min(cpus, tuning.MAX_THREADS))


def threads() -> int:
    """How many threads :func:`split` uses."""
    global _threads
    if _threads is None:
        _threads = _default_threads()
    return _threads


def set_threads(n: int) -> None:
    """Use ``n`` threads from now on (1 = no splitting)."""
    global _threads, _workers
    with _dispatch, _lock:  # the order split() takes them in
        _threads = max(1, min(int(n), tuning.MAX_THREADS))
        for worker in _workers or ():
            worker.stop()
        _workers = None


def _get_workers(count: int) -> list[_Worker]:
    global _workers
    with _lock:
        if _workers is None or len(_workers) < count:
            for worker in _workers or ():
                worker.stop()
            _workers = [_Worker(k) for k in range(count)]
        return _workers


def _forget_workers_in_child() -> None:  # a forked child has none of the parent's threads
    global _workers, _dispatch
    _workers = None
    _dispatch = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_workers_in_child)


def split(fn, n: int, work: int) -> None:
    """Run ``fn(lo, hi)`` over ``range(n)`` cut into contiguous parts, one per thread.

    ``work`` is the operation's size in elements: below ``tuning.SPLIT_MIN_ELEMENTS`` (or with
    one thread, ``n`` < 2, or the reference engine) ``fn(0, n)`` runs directly.  ``fn`` must
    only write its own part.
    """
    parts = min(threads(), n)
    # A part that splits again runs inline (waiting on the workers from one of them would
    # deadlock), and so does a split while another thread's split holds the workers.
    if (parts < 2 or work < tuning.SPLIT_MIN_ELEMENTS or engine.reference()
            or threading.current_thread().name.startswith(_PREFIX)
            or not _dispatch.acquire(blocking=False)):
        fn(0, n)
        return
    try:
        bounds = [n * k // parts for k in range(parts + 1)]
        workers = _get_workers(parts - 1)
        for k in range(1, parts):
            workers[k - 1].start(fn, bounds[k], bounds[k + 1])
        errors = []
        try:
            fn(bounds[0], bounds[1])
        except BaseException as error:
            errors.append(error)
        errors += [e for e in (workers[k - 1].wait() for k in range(1, parts)) if e is not None]
    finally:
        _dispatch.release()
    if errors:
        raise errors[0]


def copyto(dst: np.ndarray, src: np.ndarray) -> None:
    """``np.copyto(dst, src)`` split over the threads along the first axis long enough for all
    of them (a single-channel or single-image array splits along its next axis)."""
    axis = next((k for k, n in enumerate(dst.shape) if n >= threads()), 0)
    lead = (slice(None),) * axis
    split(lambda lo, hi: np.copyto(dst[lead + (slice(lo, hi),)], src[lead + (slice(lo, hi),)]),
          dst.shape[axis], dst.size)


def matmul(a, b, out, axis: int = -1) -> None:
    """``np.matmul(a, b, out=out)`` with the product split over the threads along ``out``'s
    last axis (``axis=-1``: column blocks of ``b``), its rows (``axis=-2``: row blocks of
    ``a``) or its first axis (``axis=0``: the stacked matrices of ``b``, e.g. one per image;
    ``a`` is broadcast, or sliced too when it has as many axes as ``out``).

    Every output element is the same dot product as in the unsplit call.  With more than one
    thread it is meant to run inside :func:`single_threaded_blas`, so that the BLAS does not
    start threads of its own on top of these.
    """
    if not tuning.SPLIT_GEMMS:
        np.matmul(a, b, out=out)
        return
    n = out.shape[axis]
    work = out.size * a.shape[-1] // tuning.GEMM_WORK_DIVISOR
    if axis == -2:  # row blocks of a
        split(lambda lo, hi: np.matmul(a[..., lo:hi, :], b, out=out[..., lo:hi, :]), n, work)
    elif axis == 0:
        stacked = a.ndim == out.ndim  # a stacked like b (else broadcast to every matrix of b)
        split(lambda lo, hi: np.matmul(a[lo:hi] if stacked else a, b[lo:hi], out=out[lo:hi]),
              n, work)
    else:
        split(lambda lo, hi: np.matmul(a, b[..., lo:hi], out=out[..., lo:hi]), n, work)


_controller = None


def single_threaded_blas():
    """A context in which the BLAS runs on one thread (when this module uses several):
    one pool, ours, then covers the GEMMs (:func:`matmul`) and the element-wise work, instead
    of two pools competing for the cores (OpenBLAS's idle workers spin-wait for ~0.1 s after
    every GEMM).  A no-op with one thread or without ``threadpoolctl``."""
    global _controller
    if threads() < 2 or engine.reference():
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
