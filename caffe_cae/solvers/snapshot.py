"""Snapshot files as Caffe names and writes them, and reading solver states back.

``<prefix>_iter_<N>.caffemodel`` + ``.solverstate`` (BINARYPROTO), or ``.caffemodel.h5`` +
``.solverstate.h5`` (HDF5).  Every file is written atomically (temp file + rename), the model
first, so a state file never names a model that is not complete on disk.
"""
from __future__ import annotations

import os

import numpy as np

from caffe_cae import weights
from caffe_cae.errors import CaffeCaeError
from caffe_cae.proto import caffe_pb2

HDF5 = caffe_pb2.SolverParameter.HDF5
BINARYPROTO = caffe_pb2.SolverParameter.BINARYPROTO


def snapshot_filename(prefix: str, it: int, extension: str) -> str:
    """Caffe's ``Solver::SnapshotFilename``: ``<prefix>_iter_<iter><extension>``."""
    return f"{prefix}_iter_{it}{extension}"


def model_extension(fmt: int) -> str:
    return ".caffemodel.h5" if fmt == HDF5 else ".caffemodel"


def state_extension(fmt: int) -> str:
    return ".solverstate.h5" if fmt == HDF5 else ".solverstate"


def make_state(it: int, learned_net: str, current_step: int, history: list[np.ndarray]):
    """A SolverState message as ``SGDSolver::SnapshotSolverStateToBinaryProto`` fills it."""
    state = caffe_pb2.SolverState(iter=it, learned_net=learned_net, current_step=current_step)
    for array in history:
        state.history.append(weights.array_to_blob(array))
    return state


def resolve_learned_net(learned_net: str, state_path: str) -> str:
    """Caffe opens ``learned_net`` as written (relative to the CWD); if that does not exist, try
    it beside the state file (a snapshot folder moved or committed elsewhere still restores)."""
    if os.path.exists(learned_net):
        return learned_net
    beside = os.path.join(os.path.dirname(os.path.abspath(state_path)), os.path.basename(learned_net))
    if os.path.exists(beside):
        return beside
    raise CaffeCaeError(
        f"{state_path}: learned_net '{learned_net}' not found (neither relative to the current "
        f"folder nor beside the solverstate)"
    )


def load_history(state: caffe_pb2.SolverState, history: list[np.ndarray], path: str) -> None:
    """Copy the state's history blobs into ``history`` (in place), checking count and sizes.

    Legacy 4-D history blobs (num/channels/height/width) load into params of any shape with
    the same element count, as Caffe's flat update arithmetic allows.
    """
    if len(state.history) != len(history):
        raise CaffeCaeError(
            f"{path}: incorrect length of history blobs: the file has {len(state.history)}, "
            f"this solver needs {len(history)}"
        )
    for i, (blob, target) in enumerate(zip(state.history, history)):
        array = weights.blob_to_array(blob, what=f"{path}: history blob {i}")
        if array.size != target.size:
            raise CaffeCaeError(
                f"{path}: history blob {i} has shape {list(array.shape)}, the param has "
                f"{list(target.shape)}"
            )
        target[...] = array.reshape(target.shape)
