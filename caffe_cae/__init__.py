"""caffe-cae: Caffe nets (and the CAE models of Turchenko et al.) without a Caffe build.

The pycaffe-like names (``Net``, ``TRAIN``, ``get_solver``, ``SGDSolver``, ``set_mode_cpu``, ...)
are imported on first use, so the command line starts (and answers Ctrl-C) before NumPy and the
layers load.
"""
__version__ = "0.1.0"

_EXPORTS = {
    "caffe_cae.net": ("Net", "TRAIN", "TEST", "infer_shapes", "set_random_seed"),
    "caffe_cae.solvers": ("get_solver", "SGDSolver", "NesterovSolver", "AdaGradSolver", "RMSPropSolver",
                          "AdaDeltaSolver", "AdamSolver"),
    "caffe_cae.blob": ("Blob",),
    "caffe_cae.compat": ("set_mode_cpu", "set_mode_gpu", "set_device", "layer_type_list", "init_log", "log",
                         "solver_count", "solver_rank", "has_nccl"),
}
_WHERE = {name: module for module, names in _EXPORTS.items() for name in names}

__all__ = ["Net", "TRAIN", "TEST", "infer_shapes"]
__all__ += ["get_solver", "SGDSolver", "NesterovSolver", "AdaGradSolver", "RMSPropSolver",
            "AdaDeltaSolver", "AdamSolver"]
__all__ += ["Blob", "set_mode_cpu", "set_mode_gpu", "set_device", "set_random_seed",
            "layer_type_list", "init_log", "log", "solver_count", "solver_rank", "has_nccl"]


def __getattr__(name: str):
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'caffe_cae' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_WHERE))
