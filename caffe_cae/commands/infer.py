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


def _read_inputs(path: str, names: list[str]) -> tuple[dict[str, np.ndarray], np.ndarray | None]:
    with open_hdf5(path) as handle:
        missing = [n for n in names if n not in handle]
        if missing:
            raise CaffeCaeError(f"{path}: no dataset {', '.join(map(repr, missing))} (has: {', '.join(handle)})")
        feeds = {n: np.asarray(handle[n], dtype=np.float32) for n in names}
        labels = np.asarray(handle["label"]) if "label" in handle and "label" not in names else None
    counts = {len(v) for v in feeds.values()}
    if len(counts) != 1:
        raise CaffeCaeError(f"{path}: the input datasets have different lengths {sorted(counts)}")
    return feeds, labels


def _check_shapes(path: str, session, feeds: dict[str, np.ndarray]) -> None:
    """Each dataset's sample shape must match the graph input's fixed dimensions (batch axis free)."""
    for graph_input in session.get_inputs():
        want = list(graph_input.shape)
        got = list(feeds[graph_input.name].shape)
        fixed = [d if isinstance(d, int) else None for d in want[1:]]
        if len(got) != len(want) or any(w is not None and w != g for w, g in zip(fixed, got[1:])):
            shown = ", ".join("?" if d is None else str(d) for d in fixed)
            raise CaffeCaeError(f"blob '{graph_input.name}': {path} has samples of shape {got[1:]}, "
                                f"the model expects [{shown}]")


def run(args) -> int:
    import h5py
    from tqdm import tqdm

    from caffe_cae.fileio import atomic_write
    from caffe_cae.onnx.runtime import make_session, node_placement, run_batched

    if args.batch < 1:
        raise CaffeCaeError(f"--batch {args.batch}: must be at least 1")
    import pathlib

    if pathlib.Path(args.input).is_dir():
        raise CaffeCaeError(f"{args.input}: is a directory, expected an HDF5 file")
    if not pathlib.Path(args.input).is_file():  # before the session: no provider notice for a typo
        raise CaffeCaeError(f"{args.input}: no such file")
    session = make_session(args.model, args.device)
    names = [i.name for i in session.get_inputs()]
    feeds, labels = _read_inputs(args.input, names)
    _check_shapes(args.input, session, feeds)
    total = len(next(iter(feeds.values())))
    log.info("Running %s on %s: %d rows, provider %s", args.model, args.input, total, session.get_providers()[0])
    with tqdm(total=total, unit="img", disable=None, leave=False) as progress:
        outputs = run_batched(session, feeds, args.batch, progress)

    def write(tmp: str) -> None:
        with h5py.File(tmp, "w") as handle:
            for name, value in outputs.items():
                handle.create_dataset(name, data=value)
            if labels is not None:
                handle.create_dataset("label", data=labels)

    atomic_write(args.output, write)
    log.info("Wrote %s: %s", args.output, ", ".join(f"{n} {list(v.shape)}" for n, v in outputs.items()))
    if args.placement:
        sample = {k: v[:1] for k, v in feeds.items()}
        for node, provider in node_placement(args.model, sample, args.device).items():
            log.info("  %-40s %s", node, provider)
    return 0
