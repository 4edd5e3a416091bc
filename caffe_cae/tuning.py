"""Every speed knob of the fast engine, in one place.

None of these changes what is computed beyond float summation order (most change nothing at
all); they trade speed, memory and thread hand-overs, and were measured on a 2-vCPU Xeon
(``benchmarks/NOTES.md`` has the numbers).  The reference engine (``caffe_cae.engine``) reads
none of them.  Modules read them as ``tuning.NAME`` at call time, so :func:`override` (tests,
experiments) takes effect at once.
"""
from __future__ import annotations

import contextlib

# -- threads (caffe_cae.parallel) --------------------------------------------------------------
#: Work below this many elements runs on the calling thread: waking the workers costs ~20 us,
#: more than splitting a small array gains (16 K / 256 K gave the same iteration times, 1 M
#: was clearly slower).
SPLIT_MIN_ELEMENTS = 1 << 16
#: Most threads the pool uses, whatever the CPU count (element-wise NumPy is memory bound).
MAX_THREADS = 8
#: A GEMM counts as this many times fewer elements than its multiply-adds toward
#: SPLIT_MIN_ELEMENTS (its elements cost more than a copy's).
GEMM_WORK_DIVISOR = 8
#: GEMMs split over the pool too (one pool, the BLAS on one thread inside the Net's passes).
#: False leaves every GEMM whole; the element-wise splits stay.
SPLIT_GEMMS = True

# -- convolution (caffe_cae.im2col, caffe_cae.layers.conv) -----------------------------------
#: Geometries whose output has fewer positions than this use the batch-inner column layout
#: (long contiguous rows for the strided copies); larger ones one column matrix per image.
#: 0 (all per image) made Model 4's 8x8 layers 2-20x slower.
BATCH_INNER_BELOW = 256
#: Above this many elements the column matrix of a batch-inner col2im is never built whole:
#: one kernel row at a time is multiplied and summed back (cache instead of memory traffic).
CHUNKED_COL2IM_ABOVE = 1 << 22
#: Scratch (elements) for the per-image weight-gradient products before they are summed:
#: bigger batches go in chunks of images (memory against one more pass).
PER_IMAGE_GRAD_ELEMENTS = 1 << 22

# -- element-wise blocks ------------------------------------------------------------------------
#: Elements per block of the double-precision Sigmoid/TanH code: its float64 temporaries
#: (512 KiB) stay in the cache, and blocks are large enough that two threads rarely wait for
#: each other's GIL hand-over (1.5 M elements, 2 threads: 8 K 12.7 ms, 32 K 4.1, 64 K 3.8).
ELEMENTWISE_BLOCK = 1 << 16
#: Elements per block of the solvers' parameter update (arrays stay in the cache).
UPDATE_BLOCK = 1 << 16
#: Steps per block of the exact float-from-double loss sum (``layers.common``): a rounding
#: correction redoes the rest of one block, so smaller blocks redo less and loop more.
LOSS_SUM_BLOCK = 4096

_NAMES = frozenset(name for name in dir() if name.isupper())


@contextlib.contextmanager
def override(**values):
    """Run a block with some constants changed, e.g. ``override(BATCH_INNER_BELOW=0)``; the
    previous values come back afterwards.  Process-wide (not per thread)."""
    unknown = sorted(set(values) - _NAMES)
    if unknown:
        raise TypeError(f"no tuning constant {', '.join(unknown)} "
                        f"(known: {', '.join(sorted(_NAMES))})")
    module = globals()
    saved = {name: module[name] for name in values}
    module.update(values)
    try:
        yield
    finally:
        module.update(saved)
