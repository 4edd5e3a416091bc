"""The command line: --version, --help everywhere, and user errors as one line with exit != 0."""
import subprocess
import sys

import pytest

from caffe_cae import __version__, cli
from tests.helpers.paths import GOLDEN


def run_cli(*args, cwd=None):
    return subprocess.run(
        [sys.executable, "-m", "caffe_cae", *map(str, args)], capture_output=True, text=True, cwd=cwd
    )


def test_version():
    result = run_cli("--version")
    assert result.returncode == 0 and result.stdout.strip() == f"caffe-cae {__version__}"


@pytest.mark.parametrize("command", cli.COMMANDS)
def test_every_command_has_help(command, capsys):
    with pytest.raises(SystemExit) as done:
        cli.main([command, "--help"])
    assert done.value.code == 0
    assert "usage: caffe-cae" in capsys.readouterr().out


def test_no_command_prints_help_and_fails(capsys):
    assert cli.main([]) == 2
    assert "COMMAND" in capsys.readouterr().err


def test_syntax_error_is_one_line_without_traceback():
    path = GOLDEN / "mig_syntax_error" / "in.prototxt"
    result = run_cli("show", path)
    assert result.returncode != 0
    assert result.stderr.splitlines() == [f"caffe-cae show: error: {path}:15:1: Expected \"}}\"."]
    assert "Traceback" not in result.stderr


def test_missing_file_names_the_path(tmp_path):
    result = run_cli("show", tmp_path / "missing.prototxt")
    assert result.returncode == 1
    assert result.stderr.strip() == f"caffe-cae show: error: {tmp_path / 'missing.prototxt'}: no such file"


def test_bad_argument_fails_with_usage():
    result = run_cli("show", "--kind", "banana", "x")
    assert result.returncode == 2 and "invalid choice" in result.stderr


def test_show_prints_caffemodel_shapes_without_values():
    result = run_cli("show", GOLDEN / "conv_k3s1p0" / "init.caffemodel")
    assert result.returncode == 0, result.stderr
    assert 'type: "Convolution"' in result.stdout and "data:" not in result.stdout
    assert "dim: 4\n      dim: 3\n      dim: 3\n      dim: 3" in result.stdout


def test_show_prints_a_0d_blob_as_an_empty_shape():
    """Caffe writes a Scale with num_axes 0 as blobs with no dims at all (one value each)."""
    from tests.helpers.paths import GOLDEN_BVLC

    result = run_cli("show", GOLDEN_BVLC / "scale_scalar" / "init.caffemodel")
    assert result.returncode == 0, result.stderr
    scale = result.stdout.split('name: "scale"')[1]
    assert scale.count("blobs {\n    shape {\n    }\n  }") == 2 and "dim: 1" not in scale


def test_show_reprints_prototxt_canonically():
    path = GOLDEN / "mig_v0_net" / "out.prototxt"
    result = run_cli("show", path)
    assert result.returncode == 0 and result.stdout == path.read_text()
