"""Where and how a run was computed: caffe-cae version and commit, machine, threads, seeds."""
from __future__ import annotations

import functools
import os
import pathlib
import platform
import socket
import subprocess


@functools.lru_cache(maxsize=1)
def code_version() -> dict:
    """caffe-cae's version and, from a git checkout, its commit (``+dirty`` with local edits)."""
    from caffe_cae import __version__

    root = pathlib.Path(__file__).resolve().parents[2]
    commit = None
    try:
        head = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True,
                              timeout=10)
        if head.returncode == 0:
            commit = head.stdout.strip()
            dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no",
                                    "caffe_cae"], capture_output=True, text=True, timeout=10)
            if dirty.returncode == 0 and dirty.stdout.strip():
                commit += "+dirty"
    except (OSError, subprocess.SubprocessError):
        pass
    return {"version": __version__, "commit": commit}


def cpu_count() -> int:
    """The CPUs this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def _cpu_model() -> str:
    try:
        for line in pathlib.Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


@functools.lru_cache(maxsize=1)
def machine() -> dict:
    import numpy as np

    return {"host": socket.gethostname(), "cpu": _cpu_model(), "cpus": cpu_count(),
            "system": f"{platform.system()} {platform.release()} {platform.machine()}",
            "python": platform.python_version(), "numpy": np.__version__}


def threads() -> dict:
    """Threads this process computes with: the interpreter's pool and each BLAS/OpenMP library's.

    The thread count changes the order of the BLAS sums, so runs compare bit for bit only at
    equal counts."""
    from caffe_cae import parallel

    out = {"interpreter": parallel.threads()}
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return out
    for pool in threadpool_info():
        out[f"{pool.get('internal_api')}"] = pool.get("num_threads")
    return out
