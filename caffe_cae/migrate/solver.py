"""``upgrade_solver``: Caffe's ``UpgradeSolverAsNeeded`` (``solver_type`` enum -> ``type`` string).

Early-2015 and Noh's-fork solvers differ from BVLC's only in fields that text format names
(``iter_size``, ``solver_type``), so they parse with our schema and need only this upgrade.
"""
from __future__ import annotations

import logging

from caffe_cae.errors import CaffeCaeError
from caffe_cae.migrate.net import net_needs_upgrade, upgrade_net
from caffe_cae.migrate.notes import Note, NoteLog
from caffe_cae.proto import caffe_pb2

logger = logging.getLogger(__name__)

SOLVER_TYPE_NAMES = {"SGD": "SGD", "NESTEROV": "Nesterov", "ADAGRAD": "AdaGrad",
                     "RMSPROP": "RMSProp", "ADADELTA": "AdaDelta", "ADAM": "Adam"}


def solver_needs_upgrade(solver_param: caffe_pb2.SolverParameter) -> bool:
    """Caffe's ``SolverNeedsTypeUpgrade``: the deprecated ``solver_type`` enum is set."""
    return solver_param.HasField("solver_type")


def upgrade_solver(solver_param: caffe_pb2.SolverParameter, source: str | None = None,
                   inline_nets: bool = False) -> tuple[caffe_pb2.SolverParameter, list[Note]]:
    """Upgrade a solver message as Caffe does; the input is not modified.

    ``inline_nets=True`` also runs :func:`upgrade_net` on ``net_param`` / ``train_net_param`` /
    ``test_net_param`` (Caffe's tool leaves them as written).  Returns ``(solver, notes)``.

    Raises:
        CaffeCaeError: when both ``solver_type`` and ``type`` are given.
    """
    where = str(source) if source is not None else "<solver>"
    log = NoteLog(logger)
    solver = caffe_pb2.SolverParameter()
    solver.CopyFrom(solver_param)
    if solver_needs_upgrade(solver):
        log.info(f"Attempting to upgrade input file specified using deprecated 'solver_type' "
                 f"field (enum)': {where}")
        old = caffe_pb2.SolverParameter.SolverType.Name(solver.solver_type)
        new = SOLVER_TYPE_NAMES[old]
        if solver.HasField("type"):
            raise CaffeCaeError(
                f"{where}: Failed to upgrade solver: old solver_type field (enum) and new type "
                f"field (string) cannot be both specified in solver proto text; keep only one "
                f"(solver_type: {old} is type: \"{new}\", the file also says type: \"{solver.type}\")")
        solver.type = new
        solver.ClearField("solver_type")
        log.info("Successfully upgraded file specified using deprecated 'solver_type' field (enum) "
                 "to 'type' field (string).")
        log.warning("Note that future Caffe releases will only support 'type' field (string) for "
                    "a solver's type.")
    if inline_nets:
        nets = [getattr(solver, f) for f in ("net_param", "train_net_param") if solver.HasField(f)]
        for net in nets + list(solver.test_net_param):
            if net_needs_upgrade(net):
                upgraded, notes = upgrade_net(net, source=f"{where} (inline net '{net.name}')")
                log.extend(notes)
                net.CopyFrom(upgraded)
    return solver, log.notes
