"""Golden cases from real Caffe (``tests/data/golden/``): loading and Caffe-tolerance checks.

A case folder holds ``case.json`` (its manifest entry), ``info.json`` (the net as Caffe
instantiated it), ``data.npz`` (arrays; ``/`` is literal inside key names), the Caffe-written
``init.caffemodel`` and the prototxt(s).  See ``tests/data/golden/README.md``.
"""
from __future__ import annotations

import functools
import json
import pathlib

import numpy as np

from tests.helpers.paths import GOLDEN, GOLDEN_BVLC

#: Case-name prefix -> folder of a golden set (``bvlc/lrn_across5`` is golden_bvlc's case).
ROOTS = {"": GOLDEN, "bvlc/": GOLDEN_BVLC}


@functools.lru_cache(maxsize=None)
def manifest(root: pathlib.Path = GOLDEN) -> dict:
    return json.loads((root / "manifest.json").read_text())


def case_names(*kinds: str, root: pathlib.Path = GOLDEN) -> list[str]:
    """Names of the cases of the given kinds (all kinds when none given), manifest order."""
    return [c["name"] for c in manifest(root)["cases"] if not kinds or c["kind"] in kinds]


def all_case_names(*kinds: str) -> list[str]:
    """``case_names`` over every golden set, prefixed as in :data:`ROOTS`."""
    return [prefix + name for prefix, root in ROOTS.items() for name in case_names(*kinds, root=root)]


def open_case(name: str) -> "GoldenCase":
    """The case of a prefixed name (see :func:`all_case_names`)."""
    for prefix, root in ROOTS.items():
        if prefix and name.startswith(prefix):
            return GoldenCase(name[len(prefix):], root)
    return GoldenCase(name)


class GoldenCase:
    """One case: ``entry`` (manifest), ``info`` (info.json), ``data`` (npz as a dict)."""

    def __init__(self, name: str, root: pathlib.Path = GOLDEN):
        self.name = name
        self.dir = root / name
        self.entry = json.loads((self.dir / "case.json").read_text())
        info = self.dir / "info.json"
        self.info = json.loads(info.read_text()) if info.exists() else {}

    @property
    def phase(self) -> str:
        return self.info.get("phase", "TEST")

    @property
    def uses_files(self) -> bool:
        """The net reads or writes files relative to the case folder (LMDB, images, HDF5)."""
        return bool(self.info.get("prepared_files") or self.info.get("h5_datasets")
                    or self.info.get("files_read"))

    def path(self, file: str) -> pathlib.Path:
        return self.dir / file

    @functools.cached_property
    def data(self) -> dict[str, np.ndarray]:
        with np.load(self.dir / "data.npz") as npz:
            return {key: npz[key] for key in npz.files}

    def keys(self, prefix: str) -> list[str]:
        """The data keys below ``prefix/`` with the prefix removed, sorted."""
        start = prefix.rstrip("/") + "/"
        return sorted(k[len(start):] for k in self.data if k.startswith(start))

    def tolerance(self, quantity: str) -> dict:
        """``{rtol, atol, atol_rel_max}`` for ``forward`` / ``backward`` / ``loss`` / ..."""
        tol = dict(self.entry.get("tolerance", {}).get(quantity, {}))
        tol.setdefault("rtol", 1e-5)
        tol.setdefault("atol", 1e-7)
        tol.setdefault("atol_rel_max", 0.0)
        return tol

    def layer_key_index(self) -> dict[str, int]:
        """info.json layer key (``loss``, ``loss#1`` for a repeated name) -> layer index."""
        return {layer["key"]: layer["index"] for layer in self.info.get("layers", [])}


def close_report(mine, golden, rtol: float, atol: float, atol_rel_max: float = 0.0) -> str | None:
    """None when ``|mine - golden| <= atol + rtol*|golden|`` elementwise, with
    ``atol = max(atol, atol_rel_max * max|golden|)`` (the README rule); else what differs."""
    mine = np.asarray(mine, dtype=np.float64)
    golden = np.asarray(golden, dtype=np.float64)
    if mine.shape != golden.shape:
        return f"shape {mine.shape} != golden {golden.shape}"
    if golden.size == 0:
        return None
    atol = max(atol, atol_rel_max * float(np.max(np.abs(golden))))
    error = np.abs(mine - golden)
    bad = error > atol + rtol * np.abs(golden)
    if not bad.any():
        return None
    worst = np.unravel_index(int(np.argmax(error - rtol * np.abs(golden))), golden.shape)
    return (
        f"{int(bad.sum())}/{golden.size} elements off; worst at {tuple(int(i) for i in worst)}: "
        f"{mine[worst]:.9g} vs golden {golden[worst]:.9g} (atol {atol:.3g}, rtol {rtol:.3g})"
    )


def assert_close(mine, golden, tol: dict, what: str) -> None:
    report = close_report(mine, golden, tol["rtol"], tol["atol"], tol.get("atol_rel_max", 0.0))
    assert report is None, f"{what}: {report}"
