"""Running ``caffe-cae migrate`` in-process (a subprocess per call costs seconds of imports)."""
import logging
import subprocess
import sys
from types import SimpleNamespace

import pytest

from caffe_cae import cli


@pytest.fixture
def migrate_main(capsys, caplog):
    """``migrate_main(*args)`` -> (exit status, stdout, stderr + log lines) of ``caffe-cae migrate``."""

    def run(*args):
        caplog.clear()
        with caplog.at_level(logging.INFO):
            status = cli.main(["migrate", *map(str, args)])
        captured = capsys.readouterr()
        return SimpleNamespace(returncode=status, stdout=captured.out,
                               stderr=caplog.text + captured.err, error=captured.err)

    return run


def migrate_subprocess(*args):
    """The real command line, for what only a separate process shows (no traceback, streams)."""
    return subprocess.run([sys.executable, "-m", "caffe_cae", "migrate", *map(str, args)],
                          capture_output=True, text=True)
