"""Caffe's solvers: SGD, Nesterov, AdaGrad, RMSProp, AdaDelta, Adam (pycaffe-style API).

``get_solver(path_or_param)`` builds the class that the solver's ``type`` names in the registry
(legacy ``solver_type`` enums are upgraded; no type = SGD).
"""
from __future__ import annotations

from caffe_cae.proto import caffe_pb2
from caffe_cae.solvers import config
from caffe_cae.solvers.divergence import TrainingDiverged
from caffe_cae.solvers.registry import SOLVER_CLASSES, solver_class
from caffe_cae.solvers.solver import Solver
from caffe_cae.solvers.updates import (AdaDeltaSolver, AdaGradSolver, AdamSolver, NesterovSolver,
                                       RMSPropSolver, SGDSolver)


def get_solver(solver, weights=None, *, replace_weights: bool = False) -> Solver:
    """The solver for a solver prototxt path or SolverParameter, of the class its type names.

    ``weights``: caffemodel path(s) (comma-separated) copied in after the solver's own
    ``weights`` field; with ``replace_weights=True`` they replace that field, as ``caffe train
    --weights`` does (and ``--snapshot``, which passes no weights, drops it)."""
    param = config.load_solver(solver)
    if replace_weights:
        param.ClearField("weights")
    where = "solver" if isinstance(solver, caffe_pb2.SolverParameter) else str(solver)
    return solver_class(param.type, where)(solver, weights=weights, param=param)


__all__ = ["get_solver", "Solver", "SGDSolver", "NesterovSolver", "AdaGradSolver",
           "RMSPropSolver", "AdaDeltaSolver", "AdamSolver", "TrainingDiverged", "SOLVER_CLASSES"]
