"""caffe-cae: Caffe nets (and the CAE models of Turchenko et al.) without a Caffe build."""
__version__ = "0.1.0"

from caffe_cae.net import TEST, TRAIN, Net, infer_shapes, set_random_seed  # noqa: E402

# Solver exports (get_solver, SGDSolver, ...) go below.
from caffe_cae.solvers import (  # noqa: E402
    AdaDeltaSolver,
    AdaGradSolver,
    AdamSolver,
    NesterovSolver,
    RMSPropSolver,
    SGDSolver,
    get_solver,
)

__all__ = ["Net", "TRAIN", "TEST", "infer_shapes"]
__all__ += ["get_solver", "SGDSolver", "NesterovSolver", "AdaGradSolver", "RMSPropSolver",
            "AdaDeltaSolver", "AdamSolver"]

from caffe_cae.blob import Blob  # noqa: E402
from caffe_cae.compat import (  # noqa: E402
    has_nccl,
    init_log,
    layer_type_list,
    log,
    set_device,
    set_mode_cpu,
    set_mode_gpu,
    solver_count,
    solver_rank,
)

__all__ += ["Blob", "set_mode_cpu", "set_mode_gpu", "set_device", "set_random_seed",
            "layer_type_list", "init_log", "log", "solver_count", "solver_rank", "has_nccl"]

from caffe_cae.engine import use as set_engine  # noqa: E402

__all__ += ["set_engine"]

# pycaffe's base class of Python layers, and the switch that lets nets run them.
from caffe_cae.layers.python_layer import PythonLayerBase as Layer, allow_python_layers  # noqa: E402

__all__ += ["Layer", "allow_python_layers"]
