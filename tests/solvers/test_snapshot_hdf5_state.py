"""Audit of the HDF5 solver state against Caffe's ``SGDSolver::SnapshotSolverStateToHDF5`` /
``RestoreSolverStateFromHDF5`` and ``src/caffe/util/hdf5.cpp``: ``hdf5_save_int`` writes a rank-1
dataset of one int (``H5LTmake_dataset_int(loc, name, 1, &one, &i)``), ``hdf5_save_string`` a
scalar NUL-terminated string of ``strlen + 1`` bytes (``H5LTmake_dataset_string``)."""
from __future__ import annotations

import h5py
import numpy as np

from caffe_cae import weights


def write_caffe_style_state(path, it, learned_net, current_step, history):
    """A .solverstate.h5 laid out byte for byte as Caffe's H5LT calls write it."""
    with h5py.File(path, "w") as handle:
        handle.create_dataset("iter", data=np.array([it], np.int32))
        string_type = h5py.h5t.C_S1.copy()
        string_type.set_size(len(learned_net) + 1)
        string_type.set_strpad(h5py.h5t.STR_NULLTERM)
        space = h5py.h5s.create(h5py.h5s.SCALAR)
        dataset = h5py.h5d.create(handle.id, b"learned_net", string_type, space)
        dataset.write(h5py.h5s.ALL, h5py.h5s.ALL,
                      np.array(learned_net.encode() + b"\0", dtype=f"S{len(learned_net) + 1}"))
        handle.create_dataset("current_step", data=np.array([current_step], np.int32))
        group = handle.create_group("history")
        for i, array in enumerate(history):
            group.create_dataset(str(i), data=array)


def test_reads_a_solverstate_written_by_caffe(tmp_path):
    path = tmp_path / "snap_iter_7.solverstate.h5"
    history = [np.arange(6, dtype=np.float32).reshape(2, 3), np.ones(3, np.float32)]
    write_caffe_style_state(path, 7, "snap_iter_7.caffemodel.h5", 2, history)
    state = weights.read_solverstate(path)
    assert (state.iter, state.learned_net, state.current_step) == (7, "snap_iter_7.caffemodel.h5", 2)
    assert [weights.blob_to_array(b).tolist() for b in state.history] == [h.tolist() for h in history]


def test_writes_caffes_layout(tmp_path):
    from caffe_cae.proto import caffe_pb2

    state = caffe_pb2.SolverState(iter=5, learned_net="p_iter_5.caffemodel.h5", current_step=1)
    state.history.append(weights.array_to_blob(np.zeros((2, 2), np.float32)))
    path = tmp_path / "p_iter_5.solverstate.h5"
    weights.write_solverstate(path, state)
    with h5py.File(path, "r") as handle:
        for name, value in (("iter", 5), ("current_step", 1)):
            assert handle[name].shape == (1,) and handle[name].dtype == np.int32
            assert int(handle[name][0]) == value
        string_type = handle["learned_net"].id.get_type()
        assert handle["learned_net"].shape == ()
        assert string_type.get_size() == len("p_iter_5.caffemodel.h5") + 1
        assert string_type.get_strpad() == h5py.h5t.STR_NULLTERM
        assert handle["learned_net"][()] == b"p_iter_5.caffemodel.h5"
        assert handle["history/0"].shape == (2, 2) and handle["history/0"].dtype == np.float32
    assert weights.read_solverstate(path) == state
