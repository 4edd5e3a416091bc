"""Caffe's solvers: SGD, Nesterov, AdaGrad, RMSProp, AdaDelta, Adam (pycaffe-style API).

``get_solver(path_or_param)`` builds the class named by the solver's ``type`` (legacy
``solver_type`` enums are upgraded; no type = SGD).
"""
from __future__ import annotations

from caffe_cae.errors import CaffeCaeError
from caffe_cae.proto import caffe_pb2
from caffe_cae.solvers import config
from caffe_cae.solvers.divergence import TrainingDiverged
from caffe_cae.solvers.solver import Solver


class SGDSolver(Solver):
    """Stochastic gradient descent with momentum."""

    TYPE = "SGD"


class NesterovSolver(Solver):
    """Nesterov's accelerated gradient."""

    TYPE = "Nesterov"


class AdaGradSolver(Solver):
    """AdaGrad (no momentum)."""

    TYPE = "AdaGrad"


class RMSPropSolver(Solver):
    """RMSProp with ``rms_decay`` (no momentum)."""

    TYPE = "RMSProp"


class AdaDeltaSolver(Solver):
    """AdaDelta (``momentum`` is the decay rate)."""

    TYPE = "AdaDelta"


class AdamSolver(Solver):
    """Adam (``momentum`` = beta1, ``momentum2`` = beta2, ``delta`` = epsilon)."""

    TYPE = "Adam"


SOLVER_CLASSES = {cls.TYPE: cls for cls in (SGDSolver, NesterovSolver, AdaGradSolver,
                                            RMSPropSolver, AdaDeltaSolver, AdamSolver)}


def get_solver(solver, weights=None, *, replace_weights: bool = False) -> Solver:
    """The solver for a solver prototxt path or SolverParameter, of the class its type names.

    ``weights``: caffemodel path(s) (comma-separated) copied in after the solver's own
    ``weights`` field; with ``replace_weights=True`` they replace that field, as ``caffe train
    --weights`` does (and ``--snapshot``, which passes no weights, drops it)."""
    if isinstance(solver, caffe_pb2.SolverParameter):
        if replace_weights:
            solver = caffe_pb2.SolverParameter.FromString(solver.SerializeToString())
            solver.ClearField("weights")
        param = config.upgrade_solver(solver, None)
    else:
        param = config.read_solver(solver)
        if replace_weights:
            param.ClearField("weights")
    cls = SOLVER_CLASSES.get(param.type)
    if cls is None:
        where = solver if isinstance(solver, str) else "solver"
        raise CaffeCaeError(
            f"{where}: unknown solver type '{param.type}'; known: {', '.join(SOLVER_CLASSES)}"
        )
    if isinstance(solver, caffe_pb2.SolverParameter):
        return cls(solver, weights=weights)
    return cls(solver, weights=weights, param=param)


__all__ = ["get_solver", "Solver", "SGDSolver", "NesterovSolver", "AdaGradSolver",
           "RMSPropSolver", "AdaDeltaSolver", "AdamSolver", "TrainingDiverged", "SOLVER_CLASSES"]
