"""Every ``mig_*`` case of the golden data: our upgrade prints exactly what Caffe's tools printed,
and what Caffe refused we refuse with one clear line and a non-zero exit."""
import json

import numpy as np
import pytest

from caffe_cae import prototxt, weights
from caffe_cae.errors import CaffeCaeError
from caffe_cae.migrate import upgrade_caffemodel, upgrade_net, upgrade_solver
from caffe_cae.proto import caffe_pb2
from tests.helpers.paths import GOLDEN
from tests.migrate.conftest import migrate_subprocess

CASES = sorted(p.name for p in GOLDEN.glob("mig_*") if (p / "in.prototxt").exists())


def info(case):
    return json.loads((GOLDEN / case / "info.json").read_text())


def is_solver(case):
    return info(case)["tool"] == "upgrade_solver_proto_text"



def test_golden_cases_are_found():
    assert len(CASES) >= 12 and "mig_v0_net" in CASES


@pytest.mark.parametrize("case", [c for c in CASES if info(c)["exit_code"] == 0])
def test_api_prints_what_caffe_printed(case):
    path = GOLDEN / case / "in.prototxt"
    if is_solver(case):
        upgraded, _ = upgrade_solver(prototxt.read_solver_text(path), source=path)
    else:
        # Caffe's tool knows no Reshape fix; compare the pure Caffe upgrade.
        upgraded, _ = upgrade_net(prototxt.read_net_text(path), source=path, reshape_fix=False)
    expected = (GOLDEN / case / "out.prototxt").read_text()
    assert prototxt.to_text(upgraded) == expected
    message_type = caffe_pb2.SolverParameter if is_solver(case) else caffe_pb2.NetParameter
    assert upgraded == prototxt.parse_text(expected, message_type)


@pytest.mark.parametrize("case", [c for c in CASES if info(c)["exit_code"] == 0])
def test_cli_writes_what_caffe_wrote(case, tmp_path, migrate_main):
    out = tmp_path / "out.prototxt"
    args = ["--solver"] if is_solver(case) else ["--no-reshape-fix"]
    result = migrate_main(*args, GOLDEN / case / "in.prototxt", "-o", out)
    assert result.returncode == 0, result.stderr
    assert out.read_text() == (GOLDEN / case / "out.prototxt").read_text()


@pytest.mark.parametrize("case", [c for c in CASES if info(c)["exit_code"] != 0])
def test_refusals_are_one_line_errors(case, migrate_main):
    path = GOLDEN / case / "in.prototxt"
    args = ["--solver"] if is_solver(case) else []
    result = migrate_main(*args, path)
    assert result.returncode != 0
    assert result.stdout == ""
    lines = result.error.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"caffe-cae migrate: error: {path}")
    fatal = info(case).get("fatal")
    if fatal:  # Caffe's own explanation is part of ours
        core = fatal.split("Failed to upgrade solver: ")[-1].split(" in solver proto text")[0]
        assert core in lines[-1]


def test_mixed_syntax_message_says_how_to_fix():
    path = GOLDEN / "mig_mixed_layer_layers" / "in.prototxt"
    with pytest.raises(CaffeCaeError, match="Manually switch the definition to 'layer' format"):
        upgrade_net(prototxt.read_net_text(path), source=path)


def test_syntax_error_is_one_line_with_line_and_column_no_traceback():
    result = migrate_subprocess(GOLDEN / "mig_syntax_error" / "in.prototxt")
    assert result.returncode == 2 and result.stdout == ""  # Caffe: 2 = input could not be parsed
    assert result.stderr.splitlines() == [
        f"caffe-cae migrate: error: {GOLDEN / 'mig_syntax_error' / 'in.prototxt'}:15:1: Expected \"}}\"."]


# -- binary caffemodel --------------------------------------------------------------------------

BINARY = GOLDEN / "mig_caffemodel_v1_binary"


def test_caffemodel_caffe_exact_mode_is_byte_identical():
    upgraded = upgrade_caffemodel(weights.read_net_binary(BINARY / "in.caffemodel"),
                                  keep_legacy_dims=True)
    assert upgraded.SerializeToString() == (BINARY / "out.caffemodel").read_bytes()
    assert all(weights.blob_has_legacy_dims(b) for layer in upgraded.layer for b in layer.blobs)


def test_caffemodel_default_gives_modern_shapes_loaded_like_caffe():
    data = np.load(BINARY / "data.npz")
    upgraded = upgrade_caffemodel(weights.read_net_binary(BINARY / "in.caffemodel"))
    loaded = info("mig_caffemodel_v1_binary")["loaded_param_shapes"]
    seen = 0
    for layer in upgraded.layer:
        for i, blob in enumerate(layer.blobs):
            assert not weights.blob_has_legacy_dims(blob)
            array = weights.blob_to_array(blob)
            assert list(array.shape) == loaded[layer.name][i]
            np.testing.assert_array_equal(array, data[f"param/{layer.name}/{i}"])
            seen += 1
    assert seen == 4
    assert len(upgraded.layers) == 0 and [l.type for l in upgraded.layer] == [
        "Convolution", "ReLU", "InnerProduct"]


@pytest.mark.parametrize("extra, legacy", [([], False), (["--keep-legacy-dims"], True)])
def test_cli_caffemodel(tmp_path, extra, legacy, migrate_main):
    out = tmp_path / "new.caffemodel"
    result = migrate_main(BINARY / "in.caffemodel", "-o", out, *extra)
    assert result.returncode == 0, result.stderr
    written = weights.read_net_binary(out)
    ip = [layer for layer in written.layer if layer.name == "ip1"][0]
    assert weights.blob_has_legacy_dims(ip.blobs[0]) == legacy
    assert weights.blob_to_array(ip.blobs[0]).shape == ((1, 1, 5, 64) if legacy else (5, 64))
    if legacy:
        assert out.read_bytes() == (BINARY / "out.caffemodel").read_bytes()


def test_cli_caffemodel_needs_output(migrate_main):
    result = migrate_main(BINARY / "in.caffemodel")
    assert result.returncode == 1 and "-o NEW.caffemodel" in result.error


@pytest.mark.parametrize("case", [c for c in CASES if info(c)["exit_code"] == 0 and not is_solver(c)]
                         + ["mig_solver_nesterov"])
def test_notes_repeat_caffes_log_lines(case):
    """Caffe's info/warning lines of the upgrade itself are among our notes (same words)."""
    path = GOLDEN / case / "in.prototxt"
    if is_solver(case):
        _, notes = upgrade_solver(prototxt.read_solver_text(path), source="in.prototxt")
    else:
        _, notes = upgrade_net(prototxt.read_net_text(path), source="in.prototxt", reshape_fix=False)
    expected = [m[2:] for m in info(case)["messages"]
                if m[:1] in "IW" and not m[2:].startswith(("Wrote upgraded", "Note that future Caffe "
                                                           "releases will not support V0"))]
    assert [n for n in notes if n in expected] == expected
