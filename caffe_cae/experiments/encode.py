"""Run a trained net over a data set and keep some blobs (the internal code ``ip2encode`` ...).

A train/test net reads its data through data layers (HDF5Data ...).  :func:`feed_net_param`
replaces those by one ``Input`` layer with the same tops, shaped after the data file's datasets of
the same names, so the same prototxt the solver trained can encode any HDF5 file batch by batch.
Nets that already start with ``Input`` (deploy nets) are used as they are.

Codes file written by :func:`write_codes` (read back by :func:`caffe_cae.experiments.evaluate.read_codes`)::

    <blob>   float32 (N, ...) for every kept blob (one sample per row)
    label    int64 (N,) when the data file has labels
    attrs    code_blob (the first kept blob), net, weights, data, switches (JSON list of
             [count, plane_cells] per pooling layer whose switches the decoder consumes)
"""
from __future__ import annotations

import json
import logging
import os
import pathlib
from typing import Iterable, Sequence

import h5py
import numpy as np

from caffe_cae.errors import CaffeCaeError
from caffe_cae.fileio import atomic_write, open_hdf5
from caffe_cae.proto import caffe_pb2

log = logging.getLogger(__name__)

SKIP_IN_TRACE = {"Split", "Silence"}


def is_data_layer(layer: caffe_pb2.LayerParameter) -> bool:
    """A layer that brings data from outside the net (the ``is_data`` trait; Input layers are
    kept: they are fed already)."""
    from caffe_cae.layers import LAYERS

    cls = LAYERS.get(layer.type)
    return cls is not None and cls.is_data and layer.type != "Input"


def load_net_param(net) -> caffe_pb2.NetParameter:
    """A NetParameter in current syntax from a path or message (legacy input is upgraded)."""
    from caffe_cae import prototxt
    from caffe_cae.migrate import net_needs_upgrade, upgrade_net

    source = None
    if not isinstance(net, caffe_pb2.NetParameter):
        source = str(net)
        net = prototxt.read_net_text(source)
    if net_needs_upgrade(net):
        net, _notes = upgrade_net(net, source=source)
    return net


def _phase_ok(layer: caffe_pb2.LayerParameter, phase: int) -> bool:
    """Does the layer take part in ``phase`` (only the phase part of Caffe's NetStateRule)?"""
    if layer.include:
        return any(not rule.HasField("phase") or rule.phase == phase for rule in layer.include)
    return not any(rule.HasField("phase") and rule.phase == phase and not rule.stage
                   and not rule.not_stage and not rule.HasField("min_level")
                   and not rule.HasField("max_level") for rule in layer.exclude)


def feed_net_param(net_param: caffe_pb2.NetParameter, shapes: dict[str, Sequence[int]],
                   phase: int = caffe_pb2.TEST) -> caffe_pb2.NetParameter:
    """Replace the ``phase`` data layers by one Input layer with the same tops of ``shapes``.

    Data layers of the other phase are dropped.  A net without data layers is returned as is.
    """
    data_layers = [layer for layer in net_param.layer if is_data_layer(layer)]
    if not data_layers:
        return net_param
    tops: list[str] = []
    name = None
    for layer in data_layers:
        if _phase_ok(layer, phase):
            name = name or layer.name
            tops += [t for t in layer.top if t not in tops]
    if not tops:
        raise CaffeCaeError(f"net '{net_param.name}': no data layer for the {caffe_pb2.Phase.Name(phase)} phase")
    missing = [t for t in tops if t not in shapes]
    if missing:
        raise CaffeCaeError(f"blob '{missing[0]}': the data layer's top has no dataset of that name "
                            f"in the data file (has: {', '.join(shapes)})")
    out = caffe_pb2.NetParameter()
    out.CopyFrom(net_param)
    del out.layer[:]
    feed = out.layer.add()
    feed.name = name
    feed.type = "Input"
    feed.top.extend(tops)
    for top in tops:
        feed.input_param.shape.add().dim.extend(int(d) for d in shapes[top])
    for layer in net_param.layer:
        if not is_data_layer(layer):
            out.layer.add().CopyFrom(layer)
    return out


def switch_inventory(net) -> list[list[int]]:
    """``[count, plane_cells]`` per pooling layer whose mask top another layer consumes.

    ``count`` = switches per sample (C x H_out x W_out); ``plane_cells`` = H_in x W_in, the
    range of one switch (Caffe's mask holds the per-plane index ``h * W + w``).
    """
    consumed = {b for names in net.bottom_names for b in names}
    out = []
    for layer, bottoms, tops in zip(net.layers, net.bottom_names, net.top_names):
        if layer.type == "Pooling" and len(tops) > 1 and tops[1] in consumed:
            mask_shape = net.blobs[tops[1]].shape
            in_shape = net.blobs[bottoms[0]].shape
            out.append([int(np.prod(mask_shape[1:])), int(in_shape[-2] * in_shape[-1])])
    return out


def _writers(net, blobs: Iterable[str]) -> int:
    """Index of the last layer that writes any of ``blobs`` (forward can stop there)."""
    last = -1
    for i, tops in enumerate(net.top_names):
        if any(b in tops for b in blobs):
            last = i
    return last


class Encoder:
    """A net with trained weights, fed batch by batch from arrays named like its data tops."""

    def __init__(self, net, weights: str | None, data_shapes: dict[str, Sequence[int]], batch_size: int = 100):
        from caffe_cae.net import Net

        self.batch_size = int(batch_size)
        param = load_net_param(net)
        shapes = {k: (self.batch_size, *tuple(v)) for k, v in data_shapes.items()}
        self.param = feed_net_param(param, shapes)
        self.net = Net(self.param, weights=weights, phase=caffe_pb2.TEST)
        self.inputs = list(self.net.inputs)

    def check_blobs(self, blobs: Sequence[str]) -> None:
        for blob in blobs:
            if blob not in self.net.blobs:
                raise CaffeCaeError(f"blob '{blob}': not in the net (blobs: {', '.join(self.net.blobs)})")

    def _feed(self, arrays: dict[str, np.ndarray]) -> tuple[dict, int]:
        """Pad the batch to ``batch_size`` (samples are independent in these nets)."""
        n = len(next(iter(arrays.values())))
        consumed = {b for names in self.net.bottom_names for b in names}
        fed = {}
        for name in self.inputs:
            if name in arrays:
                x = np.asarray(arrays[name], dtype=np.float32)
            elif name not in consumed:     # e.g. 'label' of a data layer that no layer reads
                x = np.zeros((n, *self.net.blobs[name].shape[1:]), np.float32)
            else:
                raise CaffeCaeError(f"blob '{name}': the net's input has no data")
            if n < self.batch_size:
                x = np.concatenate([x, np.zeros((self.batch_size - n, *x.shape[1:]), np.float32)])
            fed[name] = x
        return fed, n

    def run(self, arrays: dict[str, np.ndarray], blobs: Sequence[str]) -> dict[str, np.ndarray]:
        """Forward one batch (at most ``batch_size`` samples); copies of ``blobs``."""
        fed, n = self._feed(arrays)
        end = _writers(self.net, blobs)
        self.net.forward(end=self.net.layer_names[end] if end >= 0 else None, **fed)
        return {b: self.net.blobs[b].data[:n].copy() for b in blobs}

    def trace(self, arrays: dict[str, np.ndarray]) -> list[tuple[str, str, np.ndarray]]:
        """One sample through the net, layer by layer: ``(blob, layer, values)`` after each
        layer that writes a blob (unused inputs, Split/Silence and loss layers left out), as in
        Fig. 11."""
        fed, _ = self._feed({k: v[:1] for k, v in arrays.items()})
        for name, x in fed.items():
            self.net.blobs[name].data[...] = x
        panels = []
        consumed = {b for names in self.net.bottom_names for b in names}
        for name in self.inputs:
            if name in consumed:
                panels.append((name, self.net.layer_names[0], self.net.blobs[name].data[0].copy()))
        for i, (layer, name) in enumerate(zip(self.net.layers, self.net.layer_names)):
            if layer.type == "Input":
                continue
            self.net.forward(start=name, end=name)
            if layer.type in SKIP_IN_TRACE or layer.type.endswith("Loss"):
                continue
            tops = self.net.top_names[i]
            if layer.type == "Pooling" and len(tops) > 1:
                tops = tops[:1]  # the mask is an index map, not a picture
            for top in tops:
                panels.append((top, name, self.net.blobs[top].data[0].copy()))
        return panels


def encode_open(encoder: Encoder, h5: h5py.File, blobs: Sequence[str], limit: int | None = None,
                progress: bool = False, path: str | os.PathLike = "<data file>"):
    """Encode the samples of an open data file with ``encoder``: ``({blob: array}, labels or None)``.

    Reads one batch of rows at a time (never the whole file), each dataset checked first."""
    from caffe_cae.experiments.evaluate import check_labels
    from caffe_cae.hdf5io import check_dataset, dataset_or_error, hdf5_errors, read_dataset

    encoder.check_blobs(blobs)
    with hdf5_errors(path, "data file"):
        present = {name: name in h5 for name in [*encoder.inputs, "label"]}
    first = encoder.inputs[0]
    if not present[first]:
        raise CaffeCaeError(f"blob '{first}': the data file has no dataset of that name ({path})")
    inputs = {name: dataset_or_error(h5, name, path) for name in encoder.inputs if present[name]}
    rows = set()
    for name, dataset in inputs.items():
        shape = check_dataset(dataset, path, rows=0)
        if not shape:
            raise CaffeCaeError(f"{path}: dataset '{name}' is a scalar; need one row per sample")
        rows.add(shape[0])
    total = min(rows)
    if len(rows) > 1:
        raise CaffeCaeError(f"{path}: the input datasets have different numbers of rows {sorted(rows)}")
    total = min(total, limit) if limit else total
    chunks = {b: [] for b in blobs}
    starts = range(0, total, encoder.batch_size)
    if progress:
        from tqdm import tqdm
        starts = tqdm(starts, desc="encode", unit="batch", leave=False, disable=None)  # None: off unless a terminal
    for start in starts:
        stop = min(start + encoder.batch_size, total)
        arrays = {name: read_dataset(dataset, path, rows=slice(start, stop)) for name, dataset in inputs.items()}
        for b, values in encoder.run(arrays, blobs).items():
            chunks[b].append(values)
    labels = None
    if present["label"]:
        values = read_dataset(dataset_or_error(h5, "label", path), path, np.float64, rows=slice(0, total))
        labels = check_labels(values.reshape(len(values), -1)[:, 0] if values.ndim > 1 else values.reshape(-1),
                              path)
    codes = {b: np.concatenate(v) if v else np.zeros((0,), np.float32) for b, v in chunks.items()}
    return codes, labels


def data_shapes(h5: h5py.File, path: str | os.PathLike = "<data file>") -> dict[str, tuple[int, ...]]:
    """Per-sample shapes of the datasets of a data file (what the Input layer is shaped after)."""
    from caffe_cae.hdf5io import hdf5_errors

    with hdf5_errors(path, "data file"):
        return {name: tuple(int(d) for d in h5[name].shape[1:]) for name in h5.keys()
                if isinstance(h5[name], h5py.Dataset) and h5[name].shape}


def encode_h5(net, weights: str | None, data_h5: str | os.PathLike, blobs: Sequence[str] = ("ip2encode",),
              batch_size: int = 100, limit: int | None = None, progress: bool = False):
    """Encode the samples of ``data_h5``: ``({blob: array}, labels or None, switches)``."""
    data_h5 = pathlib.Path(data_h5)
    if int(batch_size) < 1:
        raise CaffeCaeError(f"batch size must be at least 1, got {batch_size}")
    if limit is not None and limit < 1:
        raise CaffeCaeError(f"limit must be at least 1 sample, got {limit}")
    with open_hdf5(data_h5, "HDF5 data file") as h5:
        encoder = Encoder(net, weights, data_shapes(h5, data_h5), batch_size)
        codes, labels = encode_open(encoder, h5, blobs, limit, progress, data_h5)
    return codes, labels, switch_inventory(encoder.net)


def write_codes(path: str | os.PathLike, codes: dict[str, np.ndarray], labels: np.ndarray | None,
                attrs: dict | None = None, switches: Sequence = ()) -> None:
    """Write a codes file (see the module docstring); the first blob is the ``code_blob``."""
    def writer(tmp: str) -> None:
        with h5py.File(tmp, "w") as h5:
            for name, values in codes.items():
                h5.create_dataset(name, data=np.asarray(values, dtype=np.float32))
            if labels is not None:
                h5.create_dataset("label", data=np.asarray(labels, dtype=np.int64))
            h5.attrs["code_blob"] = next(iter(codes))
            h5.attrs["switches"] = json.dumps([list(map(int, s)) for s in switches])
            for key, value in (attrs or {}).items():
                h5.attrs[key] = str(value)

    atomic_write(path, writer)
