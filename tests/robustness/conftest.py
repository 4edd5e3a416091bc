"""A folder with the fuzz corpus's seed files (a small auto-encoder, its data, weights,
snapshots, codes, ONNX model), for the regression tests of bad inputs."""
from __future__ import annotations

import pytest

from caffe_cae import cli
from caffe_cae.testing.fuzz.corpus import seed_files, write_files
from tests.helpers.logs import strip_glog


@pytest.fixture
def seeded(tmp_path, monkeypatch):
    write_files(str(tmp_path), seed_files())
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture
def run_cli(capsys):
    """``run_cli(*argv)`` -> (status, error lines) of one in-process command."""

    def run(*argv):
        status = cli.main([str(a) for a in argv])
        err = strip_glog(capsys.readouterr().err)
        return status, [line for line in err.splitlines() if line.strip()]

    return run


def one_error(run_cli, *argv, status: int = 1) -> str:
    got, lines = run_cli(*argv)
    assert got == status, lines
    errors = [line for line in lines if ": error: " in line]
    assert len(errors) == 1 and "Traceback" not in "\n".join(lines), lines
    return errors[0]
