"""Migrate legacy Caffe files (2014-2015 BVLC Caffe, Noh's fork) to the current syntax.

Message-level API (files: see ``caffe-cae migrate``):

* :func:`upgrade_net` -- Caffe's ``UpgradeNetAsNeeded`` (V0 -> V1 with padding layers folded,
  data transformation fields, V1 -> current, input fields -> ``Input`` layer, BatchNorm fix)
  plus the Reshape fix for InnerProduct tops feeding spatial layers; :func:`net_needs_upgrade`.
* :func:`upgrade_solver` -- ``solver_type`` enum -> ``type`` string.
* :func:`upgrade_caffemodel` -- old binary weights, optionally keeping Caffe's legacy blob dims.
* ``V1_TYPE_NAMES`` -- V1 enum name -> type string, including Noh's fork (see ``types.py``).
"""
from caffe_cae.migrate.caffemodel import upgrade_caffemodel, upgrade_caffemodel_with_notes
from caffe_cae.migrate.net import net_needs_upgrade, upgrade_net
from caffe_cae.migrate.notes import Note, has_problems
from caffe_cae.migrate.solver import solver_needs_upgrade, upgrade_solver
from caffe_cae.migrate.types import NOH_TYPE_NAMES, V0_TYPE_NAMES, V1_TYPE_NAMES

__all__ = [
    "upgrade_net", "net_needs_upgrade", "upgrade_solver", "solver_needs_upgrade",
    "upgrade_caffemodel", "upgrade_caffemodel_with_notes", "V1_TYPE_NAMES", "NOH_TYPE_NAMES",
    "V0_TYPE_NAMES", "Note", "has_problems",
]
