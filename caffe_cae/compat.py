"""pycaffe's module-level functions (``caffe.set_mode_cpu()`` ...), so pycaffe scripts run with
``import caffe_cae as caffe``.  The interpreter is NumPy on the CPU: GPU requests are answered
with one logged notice, never silently; ``caffe-cae export`` (ONNX) is the GPU path.
"""
from __future__ import annotations

import logging as _logging

_log = _logging.getLogger("caffe_cae")


def set_mode_cpu() -> None:
    """pycaffe's ``set_mode_cpu``: the interpreter always runs on the CPU (no-op)."""


def set_mode_gpu() -> None:
    """pycaffe's ``set_mode_gpu``: logs that the NumPy interpreter stays on the CPU."""
    _log.warning("set_mode_gpu(): caffe_cae runs nets on the CPU (NumPy); staying in CPU mode. "
                 "Export the net to ONNX (`caffe-cae export`) to run it on a GPU.")


def set_device(device_id: int) -> None:
    """pycaffe's ``set_device``: recorded in the log only (the interpreter is CPU-only)."""
    _log.info("set_device(%d): ignored, caffe_cae runs nets on the CPU", int(device_id))


def layer_type_list() -> list[str]:
    """The registered layer type strings, sorted (Caffe's ``LayerRegistry::LayerTypeList``)."""
    from caffe_cae.layers.registry import LAYERS

    return sorted(LAYERS)


def init_log(level: int = 0) -> None:
    """pycaffe's ``init_log``: Caffe-style log lines on stderr from glog ``level`` on
    (0 INFO, 1 WARNING, 2 ERROR, 3 FATAL)."""
    levels = [_logging.INFO, _logging.WARNING, _logging.ERROR, _logging.CRITICAL]
    _logging.basicConfig(format="%(message)s")
    _log.setLevel(levels[min(max(int(level), 0), 3)])  # the package logger: every module


def log(message: str) -> None:
    """pycaffe's ``log``: one INFO line in the caffe_cae log."""
    _log.info("%s", message)


# Multi-GPU (NCCL) bookkeeping of pycaffe: one solver, rank 0, no NCCL.
def solver_count() -> int:
    return 1


def solver_rank() -> int:
    return 0


def has_nccl() -> bool:
    return False
