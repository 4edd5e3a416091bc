"""The one table of solver types: Caffe's ``type`` string -> the class that implements it.

Each class (in :mod:`caffe_cae.solvers.updates`) carries its update rule, history count and
parameter checks; everything that needs to know the solver types asks this table.
"""
from __future__ import annotations

from caffe_cae.errors import CaffeCaeError

#: ``type`` -> solver class, in Caffe's order (filled by :func:`register`)
SOLVER_CLASSES: dict[str, type] = {}


def register(cls: type) -> type:
    """Class decorator: make ``cls`` the solver of ``type: "<cls.TYPE>"``."""
    if cls.TYPE in SOLVER_CLASSES:
        raise ValueError(f"solver type '{cls.TYPE}' registered twice")
    SOLVER_CLASSES[cls.TYPE] = cls
    return cls


def solver_class(type_name: str, where: str = "solver") -> type:
    """The class of solver ``type_name``; an unknown type names the known ones."""
    cls = SOLVER_CLASSES.get(type_name)
    if cls is None:
        raise CaffeCaeError(
            f"{where}: unknown solver type '{type_name}'; known: {', '.join(SOLVER_CLASSES)}"
        )
    return cls
