"""Binary Caffe files: ``.caffemodel`` (NetParameter), ``.solverstate`` (SolverState), their HDF5
variants (``.caffemodel.h5`` with ``/data/<layer>/<i>``; ``.solverstate.h5``), and BlobProto <->
NumPy conversion.

Binary files are read and written with the generated bindings, so a read -> write round trip is
byte-identical for files Caffe wrote.  Every write is atomic.
"""
from __future__ import annotations

import os
import pathlib
from collections import OrderedDict
from collections.abc import Mapping, Sequence

import numpy as np
from google.protobuf.message import DecodeError, Message

from caffe_cae.errors import CaffeCaeError
from caffe_cae.fileio import atomic_write, atomic_write_bytes, open_hdf5
from caffe_cae.hdf5io import dataset_or_error, group_or_error, hdf5_errors, read_dataset, read_scalar, read_string
from caffe_cae.limits import INT_MAX, check_allocation, check_shape
from caffe_cae.proto import caffe_pb2
from caffe_cae.proto.fork_fields import FORK_FIELDS, renumber_fork_fields

# ------------------------------------------------------------------------------------------
# BlobProto <-> ndarray


def blob_shape(blob: caffe_pb2.BlobProto) -> tuple[int, ...]:
    """The blob's shape: ``shape.dim`` if present, else legacy (num, channels, height, width)."""
    if blob.HasField("shape"):
        return tuple(int(d) for d in blob.shape.dim)
    if any(blob.HasField(f) for f in ("num", "channels", "height", "width")):
        return (blob.num, blob.channels, blob.height, blob.width)
    # No dims at all: a 0-d blob (one value), as Caffe's Blob::FromProto reads it; Caffe writes
    # 0-d blobs (Scale/Bias num_axes 0, shared PReLU slope) with neither shape nor legacy dims.
    return ()


def blob_has_legacy_dims(blob: caffe_pb2.BlobProto) -> bool:
    """True when the shape comes from num/channels/height/width (pre-2015 files)."""
    return not blob.HasField("shape") and any(
        blob.HasField(f) for f in ("num", "channels", "height", "width")
    )


def blob_to_array(blob: caffe_pb2.BlobProto, diff: bool = False, what: str = "blob") -> np.ndarray:
    """The blob's data (or diff) as a float32 array with the blob's shape.

    ``what`` names the blob in errors (``FILE: layer 'conv1' blob 0``).  The shape is checked
    as Caffe's ``Blob::Reshape`` does (no negative axis, at most INT_MAX elements) before the
    values are converted."""
    shape = blob_shape(blob)
    count = check_shape(shape, what)
    if diff:
        values = blob.double_diff if len(blob.double_diff) else blob.diff
    else:
        values = blob.double_data if len(blob.double_data) else blob.data
    if len(values) != count:
        kind = "diff" if diff else "data"
        raise CaffeCaeError(f"{what}: shape {list(shape)} holds {len(values)} {kind} values, expected {count}")
    return np.asarray(values, dtype=np.float32).reshape(shape)


def array_to_blob(array: np.ndarray, diff: np.ndarray | None = None) -> caffe_pb2.BlobProto:
    """A BlobProto as modern Caffe's ``Blob::ToProto`` writes it: ``shape`` + float ``data``."""
    blob = caffe_pb2.BlobProto()
    array = np.asarray(array, dtype=np.float32)
    if array.ndim:  # a 0-d blob has no shape field at all, as Caffe writes it
        blob.shape.dim.extend(int(d) for d in array.shape)
    blob.data.extend(array.ravel().tolist())
    if diff is not None:
        blob.diff.extend(np.asarray(diff, dtype=np.float32).ravel().tolist())
    return blob


# ------------------------------------------------------------------------------------------
# Binary protobuf files


def read_binary(path: str | os.PathLike, message_type: type[Message], what: str) -> Message:
    """Parse a binary protobuf file; errors name the file and what it should have been.

    As Caffe's ``ReadProtoFromBinaryFile``: at most INT_MAX bytes; every string field must be
    valid UTF-8 (protobuf hands invalid ones back as bytes)."""
    return _parse(_read_bytes(path, what), message_type, what, path)


def _read_bytes(path: str | os.PathLike, what: str = "caffemodel (NetParameter)") -> bytes:
    file = pathlib.Path(path)
    kind = what.split(" (")[0]
    try:
        if file.is_dir():
            raise CaffeCaeError(f"{path}: is a directory, expected a {kind} file")
        size = file.stat().st_size
        if size > INT_MAX:
            raise CaffeCaeError(f"{path}: {size} bytes, more than the 2 GiB protobuf (and Caffe) can read")
        check_allocation(size, 1, f"{path}: reading the file")
        data = file.read_bytes()
    except FileNotFoundError:
        raise CaffeCaeError(f"{path}: no such file") from None
    except OSError as err:
        raise CaffeCaeError(f"{path}: cannot read ({err.strerror})") from None
    if data.startswith(HDF5_SIGNATURE):
        raise CaffeCaeError(f"{path}: is an HDF5 file, not a binary {kind}; HDF5 files are read by the name "
                            f"they end with (.{kind}.h5)")
    if data[:1] == b"\x08" and _is_onnx_model(data):
        raise CaffeCaeError(f"{path}: is an ONNX model, not a {kind}; run ONNX models with `caffe-cae infer`")
    return data


def _parse(data: bytes, message_type: type[Message], what: str, path) -> Message:
    message = message_type()
    try:
        message.ParseFromString(data)
    except (DecodeError, RuntimeError, ValueError) as err:  # upb raises DecodeError; deep nesting others
        raise CaffeCaeError(f"{path}: not a binary {what} ({one_line_text(err)})") from None
    check_strings(message, f"{path}: not a binary {what}")
    return message


HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"


def _is_onnx_model(data: bytes) -> bool:
    """Does ``data`` parse as an ONNX model with a graph (which a Caffe file never does)?"""
    try:
        import onnx

        model = onnx.ModelProto()
        model.ParseFromString(data)
    except Exception:  # noqa: BLE001 - any parse failure: not ONNX
        return False
    return model.HasField("graph") and len(model.graph.node) > 0


def one_line_text(err: BaseException) -> str:
    return " ".join(str(err).split()) or type(err).__name__


def check_strings(message: Message, where: str, prefix: str = "") -> None:
    """Refuse string fields that are not valid UTF-8 (``where: field path ...``)."""
    from google.protobuf.descriptor import FieldDescriptor as FD

    for field, value in message.ListFields():
        if field.type == FD.TYPE_STRING:
            items = value if field.is_repeated else [value]
            for k, item in enumerate(items):
                if isinstance(item, bytes):
                    at = f"{prefix}{field.name}" + (f"[{k}]" if field.is_repeated else "")
                    raise CaffeCaeError(f"{where}: string field {at} is not valid UTF-8 ({item[:40]!r})")
        elif field.type == FD.TYPE_MESSAGE:
            if field.is_repeated:
                for k, item in enumerate(value):
                    check_strings(item, where, f"{prefix}{field.name}[{k}].")
            else:
                check_strings(value, where, f"{prefix}{field.name}.")


def write_binary(path: str | os.PathLike, message: Message) -> None:
    """Serialize ``message`` to ``path`` atomically."""
    atomic_write_bytes(path, message.SerializeToString())


def read_net_binary(path: str | os.PathLike) -> caffe_pb2.NetParameter:
    """A ``.caffemodel`` as written (no upgrade); a Caffe fork's layer parameters, stored at the
    fork's field numbers, are read at ours (:mod:`caffe_cae.proto.fork_fields`).

    A file that parses to no known field at all but is not empty holds some other message
    (protobuf keeps unknown fields aside): it is refused instead of loading nothing."""
    what = "caffemodel (NetParameter)"
    data = _read_bytes(path, what)
    net = _parse(data, caffe_pb2.NetParameter, what, path)
    if any(layer.type in FORK_FIELDS for layer in net.layer):
        net = _parse(renumber_fork_fields(data), caffe_pb2.NetParameter, what, path)
    if not net.ListFields() and data:
        raise CaffeCaeError(f"{path}: not a binary caffemodel: it holds no layers (some other protobuf message?)")
    return net


def read_solverstate_binary(path: str | os.PathLike) -> caffe_pb2.SolverState:
    return read_binary(path, caffe_pb2.SolverState, "solverstate (SolverState)")


# ------------------------------------------------------------------------------------------
# Weights as {layer name: [arrays]}, any format


def is_hdf5(path: str | os.PathLike) -> bool:
    return str(path).endswith(".h5")


def net_weights(net: caffe_pb2.NetParameter, where: str = "<weights>") -> "OrderedDict[str, list[np.ndarray]]":
    """``{layer name: [param arrays]}`` of a NetParameter (current ``layer`` or legacy ``layers``).

    Layers without blobs are left out; for duplicate names the first one wins (Caffe matches
    layers by name and takes the first).  ``where`` (the file) starts every error.
    """
    out: OrderedDict[str, list[np.ndarray]] = OrderedDict()
    for layer in list(net.layer) + list(net.layers):
        if layer.blobs and layer.name not in out:
            out[layer.name] = [blob_to_array(b, what=f"{where}: layer '{layer.name}' blob {i}")
                               for i, b in enumerate(layer.blobs)]
    return out


def hdf5_layer_groups(handle, path) -> list[tuple[str, object]]:
    """``[(layer name, group)]`` of an HDF5 caffemodel's ``/data``, in Caffe's layer order."""
    group = group_or_error(handle, "data", path, "HDF5 caffemodel")
    with hdf5_errors(path, "the /data group"):
        return [(name, group_or_error(group, name, path, "HDF5 caffemodel")) for name in _creation_order(group)]


def hdf5_layer_blobs(group, layer: str, path) -> dict[int, object]:
    """``{param index: dataset}`` of one layer group (indices can have gaps: shared params are
    saved by their owner only)."""
    with hdf5_errors(path, f"the group of layer '{layer}'"):
        keys = list(group.keys())
    bad = [k for k in keys if not k.isdigit()]
    if bad:
        raise CaffeCaeError(f"{path}: layer '{layer}': '{bad[0]}' is not a param index (datasets are named 0, 1, ...)")
    return {int(k): dataset_or_error(group, k, path) for k in keys}


def read_weights_hdf5(path: str | os.PathLike) -> "OrderedDict[str, list[np.ndarray]]":
    """``/data/<layer>/<i>`` datasets of an HDF5 caffemodel, in file order of the layer groups."""
    with open_hdf5(path, "HDF5 caffemodel") as handle:
        out: OrderedDict[str, list[np.ndarray]] = OrderedDict()
        for name, blobs in hdf5_layer_groups(handle, path):
            datasets = hdf5_layer_blobs(blobs, name, path)
            out[name] = [read_dataset(datasets[k], path) for k in sorted(datasets)]
        return out


def _creation_order(group) -> list[str]:
    import h5py

    names: list[str] = []
    try:
        group.id.links.iterate(lambda n: names.append(n.decode("utf-8", "replace")) or None,
                               idx_type=h5py.h5.INDEX_CRT_ORDER)
        return names
    except (KeyError, RuntimeError, ValueError):  # no creation-order index in the file: name order
        return list(group.keys())


def write_weights_hdf5(
    path: str | os.PathLike,
    weights: "Mapping[str, Sequence[np.ndarray] | Mapping[int, np.ndarray]]",
    diffs: "Mapping[str, Sequence[np.ndarray] | Mapping[int, np.ndarray]] | None" = None,
) -> None:
    """Write ``/data/<layer>/<i>`` (and ``/diff/...``) like Caffe's HDF5 snapshot, atomically.

    Per layer either a list of arrays or ``{param index: array}`` (Caffe skips shared params
    that a layer does not own, so indices can have gaps); layers keep their order.
    """
    import h5py

    def write(tmp: str) -> None:
        with h5py.File(tmp, "w", track_order=True) as handle:
            for group_name, content in (("data", weights), ("diff", diffs)):
                if content is None:
                    continue
                group = handle.create_group(group_name, track_order=True)
                for layer, arrays in content.items():
                    sub = group.create_group(layer, track_order=True)
                    items = arrays.items() if isinstance(arrays, Mapping) else enumerate(arrays)
                    for i, array in items:
                        sub.create_dataset(str(i), data=np.asarray(array, dtype=np.float32))

    atomic_write(path, write)


def read_weights(path: str | os.PathLike) -> "OrderedDict[str, list[np.ndarray]]":
    """Weights from a binary or HDF5 caffemodel, as ``{layer name: [arrays]}``."""
    if is_hdf5(path):
        return read_weights_hdf5(path)
    return net_weights(read_net_binary(path), str(path))


# ------------------------------------------------------------------------------------------
# Solver states, any format


def read_solverstate(path: str | os.PathLike) -> caffe_pb2.SolverState:
    """A SolverState from ``.solverstate`` or ``.solverstate.h5`` (HDF5 is converted)."""
    if not is_hdf5(path):
        return read_solverstate_binary(path)
    state = caffe_pb2.SolverState()
    with open_hdf5(path, "HDF5 solverstate") as handle:
        with hdf5_errors(path):
            missing = [key for key in ("iter", "learned_net", "history") if key not in handle]
        if missing:
            raise CaffeCaeError(f"{path}: HDF5 solverstate has no '{missing[0]}'")
        # Caffe's hdf5_save_int writes a rank-1 dataset of one int (hdf5_load_int reads one).
        state.iter = _int32(read_scalar(dataset_or_error(handle, "iter", path), path), path, "iter")
        state.learned_net = read_string(dataset_or_error(handle, "learned_net", path), path)
        with hdf5_errors(path):
            has_step = "current_step" in handle
        if has_step:
            step = read_scalar(dataset_or_error(handle, "current_step", path), path)
            state.current_step = _int32(step, path, "current_step")
        history = group_or_error(handle, "history", path, "HDF5 solverstate")
        with hdf5_errors(path, "the history group"):
            count = len(history)
        for i in range(count):
            values = read_dataset(dataset_or_error(history, str(i), path), path)
            state.history.append(array_to_blob(values))
    return state


def _int32(value: int, path, name: str) -> int:
    if not -(2**31) <= value <= INT_MAX:
        raise CaffeCaeError(f"{path}: dataset '{name}' = {value} does not fit Caffe's int")
    return value


def _write_c_string(handle, name: str, text: str) -> None:
    """A scalar dataset as ``H5LTmake_dataset_string`` makes it (NULLTERM, size strlen + 1)."""
    import h5py

    data = text.encode() + b"\0"
    string_type = h5py.h5t.C_S1.copy()
    string_type.set_size(len(data))
    string_type.set_strpad(h5py.h5t.STR_NULLTERM)
    space = h5py.h5s.create(h5py.h5s.SCALAR)
    dataset = h5py.h5d.create(handle.id, name.encode(), string_type, space)
    dataset.write(h5py.h5s.ALL, h5py.h5s.ALL, np.array(data, dtype=f"S{len(data)}"))


def write_solverstate(path: str | os.PathLike, state: caffe_pb2.SolverState) -> None:
    """Write a SolverState as binary proto, or as Caffe's HDF5 layout for ``*.h5``, atomically."""
    if not is_hdf5(path):
        write_binary(path, state)
        return
    import h5py

    def write(tmp: str) -> None:
        # The layout of Caffe's H5LT calls: hdf5_save_int = rank 1, one int; hdf5_save_string =
        # scalar NUL-terminated string of strlen + 1 bytes (Caffe reads it back with string(buf)).
        with h5py.File(tmp, "w") as handle:
            handle.create_dataset("iter", data=np.array([state.iter], np.int32))
            _write_c_string(handle, "learned_net", state.learned_net)
            handle.create_dataset("current_step", data=np.array([state.current_step], np.int32))
            group = handle.create_group("history")
            for i, blob in enumerate(state.history):
                group.create_dataset(str(i), data=blob_to_array(blob))

    atomic_write(path, write)
