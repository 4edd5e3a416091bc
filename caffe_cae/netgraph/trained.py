"""Weights in and out of a built net, as Caffe's ``Net`` does it.

* :func:`net_to_proto` - ``Net::ToProto``: ``name`` plus one ``layer`` per instantiated layer
  (Split and Input layers included), each the LayerParameter as instantiated (``phase`` filled
  in, split-renamed bottoms, loss layers' default ``loss_weight: 1``) with its blobs
  (``shape`` + ``data``; ``double_data`` for float64 nets; diffs on request).
* :func:`write_hdf5` - ``Net::ToHDF5``: ``/data/<layer>/<i>`` for every layer, owned params only
  (``/diff/...`` for all params when asked).
* :func:`copy_trained_layers` - ``Net::CopyTrainedLayersFrom``: binary files are upgraded like
  Caffe's reader does (V0/V1 ``layers``, legacy blob dims kept), layers matched by name to the
  *first* layer of that name, unknown source layers ignored, blob counts must match and shapes
  must be equal (legacy num/channels/height/width compared with the last four axes, padded
  with 1s).  HDF5 files match the *last* layer of a name (Caffe's ``layer_names_index_``), and
  a missing dataset is fine only for a param shared from another layer.
"""
from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING

import numpy as np

from caffe_cae.errors import CaffeCaeError
from caffe_cae.fileio import open_hdf5
from caffe_cae.hdf5io import check_dataset, read_dataset
from caffe_cae.netgraph.graph import shape_string
from caffe_cae.netgraph.logs import quiet_loggers
from caffe_cae.proto import caffe_pb2
from caffe_cae.weights import (blob_has_legacy_dims, blob_shape, hdf5_layer_blobs, hdf5_layer_groups, is_hdf5,
                               read_net_binary, write_weights_hdf5)

if TYPE_CHECKING:  # pragma: no cover
    from caffe_cae.net import Net

log = logging.getLogger(__name__)


# --------------------------------------------------------------------------------------------
# out


def blob_to_proto(data: np.ndarray, diff: np.ndarray | None = None) -> caffe_pb2.BlobProto:
    """``Blob::ToProto``: shape + data (float32 ``data`` or float64 ``double_data``)."""
    blob = caffe_pb2.BlobProto()
    if data.ndim:  # a 0-d blob has no shape field at all, as Caffe writes it
        blob.shape.dim.extend(int(d) for d in data.shape)
    if data.dtype == np.float64:
        blob.double_data.extend(data.ravel().tolist())
        if diff is not None:
            blob.double_diff.extend(diff.ravel().tolist())
    else:
        blob.data.extend(np.asarray(data, dtype=np.float32).ravel().tolist())
        if diff is not None:
            blob.diff.extend(np.asarray(diff, dtype=np.float32).ravel().tolist())
    return blob


def net_to_proto(net: "Net", write_diff: bool = False) -> caffe_pb2.NetParameter:
    out = caffe_pb2.NetParameter()
    out.name = net.name
    for node in net.graph.layers:
        layer = out.layer.add()
        layer.CopyFrom(node.param)
        del layer.blobs[:]
        for blob in node.layer.blobs:
            layer.blobs.append(blob_to_proto(blob.data, blob.diff if write_diff else None))
    return out


def write_hdf5(net: "Net", path: str | os.PathLike, write_diff: bool = False) -> None:
    graph = net.graph
    # One group per layer name.  Caffe aborts on a repeated name (H5Gcreate2 fails); a repeat
    # without parameters (the CAE nets' two "loss" layers) loses nothing, so it is skipped.
    layers, seen = [], set()
    for node in graph.layers:
        if node.name in seen:
            if node.param_ids:
                raise CaffeCaeError(
                    f"layer '{node.name}' ({node.type}): cannot save weights to HDF5: another layer "
                    "has the same name (HDF5 groups are keyed by layer name); save a binary caffemodel"
                )
            continue
        seen.add(node.name)
        layers.append(node)

    # /data holds the owners' params only, /diff every param's diff (as Caffe writes them).
    data = {node.name: {k: node.layer.blobs[k].data for k, entry_id in enumerate(node.param_ids)
                        if graph.params[entry_id].owner == -1} for node in layers}
    diffs = {node.name: {k: blob.diff for k, blob in enumerate(node.layer.blobs)} for node in layers}
    write_weights_hdf5(path, data, diffs if write_diff else None)


# --------------------------------------------------------------------------------------------
# in


def legacy_shape_equals(shape: tuple[int, ...], blob: caffe_pb2.BlobProto) -> bool:
    """``Blob::ShapeEquals`` for a proto with legacy dims: compare the last four axes."""
    if len(shape) > 4:
        return False
    padded = (1,) * (4 - len(shape)) + tuple(shape)
    return padded == (blob.num, blob.channels, blob.height, blob.width)


def proto_values(blob: caffe_pb2.BlobProto) -> np.ndarray:
    values = blob.double_data if len(blob.double_data) else blob.data
    dtype = np.float64 if len(blob.double_data) else np.float32
    return np.asarray(values, dtype=dtype)


def load_blob(target, proto: caffe_pb2.BlobProto, what: str) -> None:
    """Copy ``proto``'s values into ``target`` (a Blob) after Caffe's shape check."""
    if blob_has_legacy_dims(proto):
        ok = legacy_shape_equals(target.shape, proto)
        source_shape = (proto.num, proto.channels, proto.height, proto.width)
    else:
        source_shape = blob_shape(proto)
        ok = tuple(source_shape) == tuple(target.shape)
    if not ok:
        raise CaffeCaeError(
            f"{what}: shape mismatch; source param shape is {shape_string(source_shape)}, "
            f"target param shape is {shape_string(target.shape)} (to learn this layer from "
            "scratch instead, rename it)"
        )
    values = proto_values(proto)
    if values.size != target.count:
        raise CaffeCaeError(
            f"{what}: the source blob holds {values.size} values, expected {target.count}"
        )
    target.data[...] = values.reshape(target.shape)


def copy_layers_from_proto(net: "Net", source: caffe_pb2.NetParameter, where: str) -> None:
    graph = net.graph
    for layer in source.layer:
        try:
            index = graph.layer_index(layer.name)
        except CaffeCaeError:
            log.info("Ignoring source layer %s", layer.name)
            continue
        node = graph.layers[index]
        targets = node.layer.blobs
        if len(targets) != len(layer.blobs):
            raise CaffeCaeError(
                f"{where}: layer '{layer.name}': incompatible number of blobs: the file has "
                f"{len(layer.blobs)}, the net's {node.type} layer has {len(targets)}"
            )
        for j, (target, proto) in enumerate(zip(targets, layer.blobs)):
            load_blob(target, proto, f"{where}: layer '{layer.name}': cannot copy param {j} weights")


def copy_layers_from_hdf5(net: "Net", path: str | os.PathLike) -> None:
    graph = net.graph
    last_index = {node.name: node.index for node in graph.layers}
    with open_hdf5(path, "HDF5 caffemodel") as handle:
        for name, group in hdf5_layer_groups(handle, path):
            if name not in last_index:
                log.info("Ignoring source layer %s", name)
                continue
            node = graph.layers[last_index[name]]
            targets = node.layer.blobs
            datasets = hdf5_layer_blobs(group, name, path)
            if len(datasets) > len(targets) or any(j >= len(targets) for j in datasets):
                raise CaffeCaeError(
                    f"{path}: layer '{name}': incompatible number of blobs: the file has "
                    f"{len(datasets)}, the net's {node.type} layer has {len(targets)}"
                )
            for j, target in enumerate(targets):
                if j not in datasets:
                    if graph.params[node.param_ids[j]].owner != -1:
                        continue  # weight-shared in the net: the owner brings the values
                    raise CaffeCaeError(
                        f"{path}: layer '{name}': incompatible number of blobs: dataset "
                        f"'{j}' is missing"
                    )
                shape = check_dataset(datasets[j], path)
                if tuple(shape) != tuple(target.shape):
                    raise CaffeCaeError(
                        f"{path}: layer '{name}': cannot load param {j}: dimension mismatch; "
                        f"file has {shape_string(shape)}, net has "
                        f"{shape_string(target.shape)}"
                    )
                target.data[...] = read_dataset(datasets[j], path, target.data.dtype)


def copy_trained_layers(net: "Net", weights) -> None:
    """Load ``weights`` (a path to a binary or ``.h5`` caffemodel, or a NetParameter)."""
    if isinstance(weights, caffe_pb2.NetParameter):
        source, where = weights, "<weights>"
    elif is_hdf5(weights):
        copy_layers_from_hdf5(net, weights)
        return
    else:
        source, where = read_net_binary(weights), str(weights)
    from caffe_cae.migrate import net_needs_upgrade, upgrade_caffemodel

    if net_needs_upgrade(source):
        log.info("%s: weights file is in a legacy format; upgrading it in memory", where)
        with quiet_loggers("caffe_cae.migrate"):
            source = upgrade_caffemodel(source, source=where, keep_legacy_dims=True)
    copy_layers_from_proto(net, source, where)
