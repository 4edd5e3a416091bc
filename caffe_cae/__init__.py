"""caffe-cae: Caffe nets (and the CAE models of Turchenko et al.) without a Caffe build."""
__version__ = "0.1.0"

from caffe_cae.net import TEST, TRAIN, Net, infer_shapes  # noqa: E402

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
