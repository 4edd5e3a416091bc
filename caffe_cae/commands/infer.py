"""``caffe-cae infer model.onnx --input data.h5 -o out.h5``: run an exported net with onnxruntime.

Each graph input is read from the HDF5 dataset of the same name (e.g. ``data``); every graph
output is written to ``out.h5`` under its name, and a ``label`` dataset is copied along when the
input has one.  Runs on the GPU (CUDA provider) when one works, else on the CPU with one notice.
"""
from __future__ import annotations

import argparse
import logging

import numpy as np

from caffe_cae.errors import CaffeCaeError
from caffe_cae.fileio import open_hdf5
from caffe_cae.onnx.runtime import DEVICES

log = logging.getLogger(__name__)


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "infer", help="run an ONNX model over an HDF5 dataset (GPU when available)", description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("model", help="the .onnx file")
    parser.add_argument("--input", required=True, help="HDF5 file with a dataset per graph input")
    parser.add_argument("-o", "--output", required=True, help="HDF5 file to write the outputs to")
    parser.add_argument("--batch", type=int, default=100, help="rows per run (default 100)")
    parser.add_argument("--device", choices=DEVICES, default="auto", help="execution provider (default: auto)")
    parser.add_argument("--placement", action="store_true", help="log which provider ran each node")
    parser.set_defaults(func=run)


def _open_inputs(handle, path: str, names: list[str]):
    """The input datasets (validated: numbers, one row per sample, the same row count) and the
    ``label`` dataset to copy along (or None)."""
    from caffe_cae.hdf5io import check_dataset, dataset_or_error, hdf5_errors

    with hdf5_errors(path):
        missing = [n for n in names if n not in handle]
        if missing:
            raise CaffeCaeError(f"{path}: no dataset {', '.join(map(repr, missing))} (has: {', '.join(handle)})")
        has_labels = "label" in handle and "label" not in names
    datasets = {n: dataset_or_error(handle, n, path) for n in names}
    rows = set()
    for name, dataset in datasets.items():
        shape = check_dataset(dataset, path, rows=0)
        if not shape:
            raise CaffeCaeError(f"{path}: dataset '{name}' is a scalar; need one row per sample")
        rows.add(shape[0])
    if len(rows) != 1:
        raise CaffeCaeError(f"{path}: the input datasets have different lengths {sorted(rows)}")
    labels = dataset_or_error(handle, "label", path) if has_labels else None
    if labels is not None:
        check_dataset(labels, path, itemsize=labels.dtype.itemsize)
    return datasets, labels, rows.pop()


def _check_shapes(path: str, session, datasets) -> None:
    """Each dataset's sample shape must match the graph input's fixed dimensions (batch axis free)."""
    for graph_input in session.get_inputs():
        want = list(graph_input.shape)
        got = [int(d) for d in datasets[graph_input.name].shape]
        fixed = [d if isinstance(d, int) else None for d in want[1:]]
        if len(got) != len(want) or any(w is not None and w != g for w, g in zip(fixed, got[1:])):
            shown = ", ".join("?" if d is None else str(d) for d in fixed)
            raise CaffeCaeError(f"blob '{graph_input.name}': {path} has samples of shape {got[1:]}, "
                                f"the model expects [{shown}]")


def run(args) -> int:
    import h5py
    from tqdm import tqdm

    from caffe_cae.fileio import atomic_write, check_input_file
    from caffe_cae.hdf5io import hdf5_errors, read_dataset
    from caffe_cae.onnx.runtime import make_session, node_placement, run_chunk

    if args.batch < 1:
        raise CaffeCaeError(f"--batch {args.batch}: must be at least 1")
    check_input_file(args.model, "an .onnx file")  # before the session: no provider notice for a typo
    check_input_file(args.input, "an HDF5 file")
    with open_hdf5(args.input) as handle:
        session = make_session(args.model, args.device)
        names = [i.name for i in session.get_inputs()]
        datasets, labels, total = _open_inputs(handle, args.input, names)
        _check_shapes(args.input, session, datasets)
        provider = session.get_providers()[0]
        log.info("Running %s on %s: %d rows, provider %s", args.model, args.input, total, provider)
        written: dict[str, list[int]] = {}

        def write(tmp: str) -> None:
            # One batch in memory at a time: read, run, write its rows.
            with h5py.File(tmp, "w") as out, tqdm(total=total, unit="img", disable=None, leave=False) as progress:
                for start in range(0, total, args.batch):
                    stop = min(total, start + args.batch)
                    feeds = {n: read_dataset(d, args.input, rows=slice(start, stop)) for n, d in datasets.items()}
                    for name, value in run_chunk(session, feeds, args.model, (start, stop)).items():
                        if name not in out:
                            out.create_dataset(name, shape=(total, *value.shape[1:]), dtype=value.dtype)
                            written[name] = [total, *value.shape[1:]]
                        out[name][start:stop] = value
                    progress.update(stop - start)
                if labels is not None:
                    with hdf5_errors(args.input):
                        out.create_dataset("label", data=read_dataset(labels, args.input, labels.dtype))

        atomic_write(args.output, write)
    log.info("Wrote %s: %s", args.output, ", ".join(f"{n} {v}" for n, v in written.items()))
    if args.placement and total:
        with open_hdf5(args.input) as handle:
            sample = {n: read_dataset(handle[n], args.input, rows=slice(0, 1)) for n in names}
        for node, where in node_placement(args.model, sample, args.device).items():
            log.info("  %-40s %s", node, where)
    return 0
