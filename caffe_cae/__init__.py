"""caffe-cae: Caffe nets (and the CAE models of Turchenko et al.) without a Caffe build.

The pycaffe-like names (``Net``, ``TRAIN``, ``get_solver``, ``SGDSolver``, ``set_mode_cpu``, ...)
are imported on first use, so the command line starts (and answers Ctrl-C) before NumPy and the
layers load.
"""
__version__ = "0.1.0"

#: {exported name: (module, its name there)}
_EXPORTS = {
    **{name: ("caffe_cae.net", name) for name in ("Net", "TRAIN", "TEST", "infer_shapes", "set_random_seed")},
    **{name: ("caffe_cae.solvers", name) for name in ("get_solver", "SGDSolver", "NesterovSolver",
                                                       "AdaGradSolver", "RMSPropSolver", "AdaDeltaSolver",
                                                       "AdamSolver")},
    "Blob": ("caffe_cae.blob", "Blob"),
    **{name: ("caffe_cae.compat", name) for name in ("set_mode_cpu", "set_mode_gpu", "set_device",
                                                      "layer_type_list", "init_log", "log", "solver_count",
                                                      "solver_rank", "has_nccl")},
    "set_engine": ("caffe_cae.engine", "use"),
    # pycaffe's base class of Python layers, and the switch that lets nets run them.
    "Layer": ("caffe_cae.layers.python_layer", "PythonLayerBase"),
    "allow_python_layers": ("caffe_cae.layers.python_layer", "allow_python_layers"),
}

__all__ = ["Net", "TRAIN", "TEST", "infer_shapes"]
__all__ += ["get_solver", "SGDSolver", "NesterovSolver", "AdaGradSolver", "RMSPropSolver",
            "AdaDeltaSolver", "AdamSolver"]
__all__ += ["Blob", "set_mode_cpu", "set_mode_gpu", "set_device", "set_random_seed",
            "layer_type_list", "init_log", "log", "solver_count", "solver_rank", "has_nccl"]
__all__ += ["set_engine", "Layer", "allow_python_layers"]


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'caffe_cae' has no attribute {name!r}")
    import importlib

    module, attribute = _EXPORTS[name]
    value = getattr(importlib.import_module(module), attribute)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_EXPORTS))
