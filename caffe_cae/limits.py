"""Size limits checked before anything is allocated: Caffe's blob limit and the memory at hand.

Caffe's ``Blob::Reshape`` refuses a blob of more than INT_MAX elements (its counts are ``int``);
every reader and the shape inference refuse the same, naming what would have been too big.
Below that, an allocation larger than the memory this process can still get (the machine's
available memory, or what an address-space limit leaves) is refused instead of being attempted.
``CAFFE_CAE_MEMORY_LIMIT`` (bytes, or with a K/M/G/T suffix) sets the budget by hand.
"""
from __future__ import annotations

import math
import os
import resource

from caffe_cae.errors import CaffeCaeError

INT_MAX = 2**31 - 1


def element_count(shape) -> int:
    """The product of ``shape`` as a Python int (no int64 wrap-around)."""
    return math.prod(int(d) for d in shape)


def check_shape(shape, what: str) -> int:
    """Caffe's ``Blob::Reshape`` checks: no negative axis, at most INT_MAX elements; the count."""
    dims = [int(d) for d in shape]
    if any(d < 0 for d in dims):
        raise CaffeCaeError(f"{what}: negative dimension in shape {dims}")
    count = element_count(dims)
    if count > INT_MAX:
        raise CaffeCaeError(f"{what}: shape {dims} has {count} elements, more than Caffe's blob "
                            f"limit of INT_MAX ({INT_MAX})")
    return count


def human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if n < 1024 or unit == "PiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} EiB"  # pragma: no cover


def _parse_bytes(text: str) -> int | None:
    text = text.strip().upper().removesuffix("B").removesuffix("I")
    scale = {"K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}.get(text[-1:], 1)
    try:
        return int(float(text.rstrip("KMGT")) * scale)
    except ValueError:
        return None


def _available_memory() -> int | None:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def _address_space_left() -> int | None:
    soft, _hard = resource.getrlimit(resource.RLIMIT_AS)
    if soft == resource.RLIM_INFINITY:
        return None
    try:
        with open("/proc/self/statm") as f:
            used = int(f.read().split()[0]) * resource.getpagesize()
    except OSError:
        used = 0
    return max(0, soft - used)


def memory_budget() -> int:
    """Bytes one allocation may take now."""
    configured = _parse_bytes(os.environ.get("CAFFE_CAE_MEMORY_LIMIT", "") or "x")
    if configured is not None:
        return configured
    limits = [n for n in (_available_memory(), _address_space_left()) if n is not None]
    return min(limits) if limits else 2**62


def check_allocation(count: int, itemsize: int, what: str) -> None:
    """Refuse ``count`` elements of ``itemsize`` bytes beyond INT_MAX or the memory budget."""
    if count > INT_MAX:
        raise CaffeCaeError(f"{what}: {count} elements, more than Caffe's blob limit of INT_MAX ({INT_MAX})")
    check_memory(count * itemsize, what)


def check_memory(size: int, what: str) -> None:
    """Refuse ``size`` bytes beyond the memory budget."""
    budget = memory_budget()
    if size > budget:
        raise CaffeCaeError(f"{what}: needs {human_bytes(size)}, more than the {human_bytes(budget)} of memory "
                            f"available (CAFFE_CAE_MEMORY_LIMIT sets the budget)")
