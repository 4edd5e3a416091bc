"""Which implementation the layers run: the fast engine (default) or the reference engine.

* ``fast``: batched im2col in two column layouts, GEMMs and element-wise work split over
  :mod:`caffe_cae.parallel`'s threads, the Deconvolution skipping the zeros of a top-left
  unpooled bottom, block-wise float64 activations -- tuned by :mod:`caffe_cae.tuning`.
* ``reference``: each such layer's plain NumPy form of Caffe's formula
  (``forward_reference``/``backward_reference`` beside the fast code; Convolution image by
  image as Caffe's ``conv_layer.cpp``), no worker threads, no sparse hand-over, no reuse of
  forward columns.  Slower; it is what the fast engine is checked against.

Both agree to float rounding (summation order); each matches Caffe's golden data.

Select with ``CAFFE_CAE_ENGINE=fast|reference`` (read at import), :func:`use` or, for a
block, ``with caffe_cae.engine.using("reference"): ...``.  The choice is process-wide.
"""
from __future__ import annotations

import contextlib
import os

from caffe_cae.errors import CaffeCaeError

FAST, REFERENCE = "fast", "reference"
ENGINES = (FAST, REFERENCE)

# Checked when first used, so that a bad value is a one-line error of the command, not a
# traceback at import.
_name = os.environ.get("CAFFE_CAE_ENGINE", "").strip().lower() or FAST


def _checked(name, where: str = "") -> str:
    value = str(name).strip().lower()
    if value not in ENGINES:
        raise CaffeCaeError(f"{where}unknown engine '{name}' (use 'fast' or 'reference')")
    return value


def current() -> str:
    """The engine in use: ``"fast"`` or ``"reference"``."""
    if _name not in ENGINES:
        _checked(_name, "CAFFE_CAE_ENGINE: ")
    return _name


def reference() -> bool:
    """True under the reference engine (what the layers ask before taking a fast path)."""
    return current() == REFERENCE


def use(name: str) -> None:
    """Run everything from now on with engine ``name`` (``"fast"`` or ``"reference"``)."""
    global _name
    _name = _checked(name)


@contextlib.contextmanager
def using(name: str):
    """Run a block with engine ``name``; the previous engine comes back afterwards."""
    global _name
    saved = _name
    use(name)
    try:
        yield
    finally:
        _name = saved
