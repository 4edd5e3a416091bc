"""Solvers (see :mod:`caffe_cae.solvers`); this module keeps the ``caffe_cae.solver`` name."""
from caffe_cae.solvers import (  # noqa: F401
    SOLVER_CLASSES,
    AdaDeltaSolver,
    AdaGradSolver,
    AdamSolver,
    NesterovSolver,
    RMSPropSolver,
    SGDSolver,
    Solver,
    TrainingDiverged,
    get_solver,
)
