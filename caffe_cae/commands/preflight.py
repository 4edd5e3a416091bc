"""Cheap checks of a command's input files before any net is built: each file exists, is the
kind of file the argument wants, and parses.  A typo or a swapped argument is then one line
at once, not after the hundreds of lines a net's set-up logs (not a command itself)."""
from __future__ import annotations

import os

from caffe_cae.errors import CaffeCaeError
from caffe_cae.fileio import check_input_file


def net_file(path: str, what: str = "a net prototxt") -> None:
    from caffe_cae import prototxt
    from caffe_cae.proto import caffe_pb2

    check_input_file(path, what)
    _refuse_binary(path, what)
    try:
        prototxt.read_net_text(path)
    except CaffeCaeError:
        text = prototxt.read_file_text(path)
        try:
            solver = prototxt.parse_text(text, caffe_pb2.SolverParameter, path)
        except CaffeCaeError:
            solver = None
        if solver is not None and solver.ListFields():
            raise CaffeCaeError(f"{path}: is a solver prototxt, expected {what} (the solver names its net)") from None
        raise


def solver_file(path: str) -> None:
    from caffe_cae.solvers.config import load_solver

    check_input_file(path, "a solver prototxt")
    _refuse_binary(path, "a solver prototxt")
    load_solver(path)  # read and upgraded; names a net file given by mistake


def weights_files(paths: str | None, command: str) -> None:
    """Every entry of a comma-separated ``--weights`` list: a readable caffemodel (binary or HDF5)."""
    from caffe_cae import weights

    for path in [p.strip() for p in (paths or "").split(",") if p.strip()]:
        check_input_file(path, "a .caffemodel")
        if path.endswith(".onnx"):
            raise CaffeCaeError(f"{path}: is an ONNX model; {command} reads Caffe weights (.caffemodel or "
                                f".caffemodel.h5); run ONNX models with `caffe-cae infer`")
        if path.endswith((".solverstate", ".solverstate.h5")):
            raise CaffeCaeError(f"{path}: is a solver state; weights are a .caffemodel (a state goes to "
                                f"`train --snapshot`)")
        if path.endswith((".prototxt", ".pbtxt")):
            raise CaffeCaeError(f"{path}: not a binary caffemodel (a prototxt is text; weights are a .caffemodel)")
        if weights.is_hdf5(path):
            _hdf5_weights(path)
        else:
            weights.read_net_binary(path)


def _hdf5_weights(path: str) -> None:
    """The layout of an HDF5 caffemodel and the type and size of every dataset (nothing read)."""
    from caffe_cae import weights
    from caffe_cae.fileio import open_hdf5
    from caffe_cae.hdf5io import check_dataset

    with open_hdf5(path, "HDF5 caffemodel") as handle:
        for name, group in weights.hdf5_layer_groups(handle, path):
            for dataset in weights.hdf5_layer_blobs(group, name, path).values():
                check_dataset(dataset, path)


def solverstate_file(path: str) -> None:
    from caffe_cae import weights

    if not os.path.exists(path):
        raise CaffeCaeError(f"{path}: no such solverstate file")
    check_input_file(path, "a .solverstate")
    if path.endswith((".caffemodel", ".caffemodel.h5")):
        raise CaffeCaeError(f"{path}: not a solverstate but a caffemodel; --snapshot resumes from a .solverstate "
                            f"(weights go to --weights)")
    weights.read_solverstate(path)


def _refuse_binary(path: str, what: str) -> None:
    with open(path, "rb") as f:
        head = f.read(4096)
    if head.startswith(b"\x89HDF\r\n\x1a\n"):
        raise CaffeCaeError(f"{path}: is an HDF5 file, expected {what}")
    if path.endswith(".onnx"):
        raise CaffeCaeError(f"{path}: is an ONNX model, expected {what}")
    if b"\0" in head:
        raise CaffeCaeError(f"{path}: not a text file (binary data: a .caffemodel?), expected {what}")
