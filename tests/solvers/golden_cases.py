"""Loading the golden solver cases (tests/data/golden/<case>/, kind "solver") and comparing
arrays with the case's tolerances (README: |mine - golden| <= atol + rtol*|golden|, with
atol = max(atol, atol_rel_max * max|golden|))."""
from __future__ import annotations

import json

import numpy as np

from tests.helpers.paths import GOLDEN, GOLDEN_BVLC

ROOTS = {"": GOLDEN, "bvlc/": GOLDEN_BVLC}  # case-name prefix -> folder of the set


def _solver_cases(small_only: bool) -> list[str]:
    return sorted(
        prefix + p.parent.name for prefix, root in ROOTS.items() for p in root.glob("*/case.json")
        if json.loads(p.read_text())["kind"] == "solver"
        and (not small_only or json.loads((p.parent / "info.json").read_text()).get("params_in_npz", True))
    )


SMALL_CASES = _solver_cases(small_only=True)
ALL_CASES = _solver_cases(small_only=False)


def case_folder(case):
    """The folder of a case name (``bvlc/<name>`` for the golden_bvlc set)."""
    for prefix, root in ROOTS.items():
        if prefix and case.startswith(prefix):
            return root / case[len(prefix):]
    return GOLDEN / case


def _has_tiny_net(case) -> bool:
    info = json.loads((case_folder(case) / "info.json").read_text())
    return [layer["name"] for layer in info["layers"] if layer["param_shapes"]] == ["ip1", "ip2"]


#: Cases whose net is the tiny autoencoder that tests/solvers/fake_net.py stands in for.
TINY_NET_CASES = [case for case in SMALL_CASES if _has_tiny_net(case)]

#: Parameters whose true gradient is 0 and whose Caffe gradient is float rounding noise, so
#: their trajectory cannot be reproduced: {case: {(layer, index): why}}.  Their final values
#: are only checked to stay within the steps the solver can take (see test_golden_solver).
ROUNDING_NOISE_PARAMS = {
    "bvlc/bn_adam_two_bn": {
        ("ip1", 1): "ip1 feeds bn2, whose batch statistics remove any per-channel constant: "
                    "the bias gradient is rounding noise (|g| ~ 1e-8), which Adam's "
                    "m / (sqrt(v) + delta) turns into steps of up to lr",
    },
}


def load(case):
    folder = case_folder(case)
    return (folder, json.loads((folder / "case.json").read_text()),
            json.loads((folder / "info.json").read_text()), np.load(folder / "data.npz"))


def tolerance(case_json, quantity, rtol=1e-4, atol=1e-6):
    tol = dict(case_json.get("tolerance", {}).get(quantity, {}))
    return tol.get("rtol", rtol), tol.get("atol", atol), tol.get("atol_rel_max", 0.0)


def loss_tolerance(case_json):
    """Losses: rtol 1e-4 (tighter than the cases' suggested 1e-3; we measure ~1e-7, paper_sgd
    ~3e-6), the case's atol."""
    rtol, atol, atol_rel_max = tolerance(case_json, "iter_loss")
    return min(rtol, 1e-4), atol, atol_rel_max


def assert_close(mine, golden, tol, what):
    rtol, atol, atol_rel_max = tol
    mine = np.asarray(mine, np.float64)
    golden = np.asarray(golden, np.float64)
    assert mine.shape == golden.shape, f"{what}: shape {mine.shape} != {golden.shape}"
    if golden.size:
        atol = max(atol, atol_rel_max * float(np.abs(golden).max()))
    bad = np.abs(mine - golden) > atol + rtol * np.abs(golden)
    assert not bad.any(), (
        f"{what}: {int(bad.sum())}/{bad.size} elements off; max |diff| "
        f"{float(np.abs(mine - golden).max()):.3g} (rtol {rtol}, atol {atol:.3g})"
    )


def params_with_prefix(data, prefix):
    """``{(layer, i): array}`` of the npz keys ``<prefix>/<layer>/<i>``."""
    out = {}
    for key in data.files:
        if key.startswith(prefix + "/"):
            layer, index = key[len(prefix) + 1:].rsplit("/", 1)
            out[(layer, int(index))] = data[key]
    return out
