"""The command line in a separate process, running this checkout's code (not an installed copy)."""
import os
import subprocess
import sys

from tests.helpers.paths import TESTS

REPO = TESTS.parent


def cli_env(**extra) -> dict:
    env = dict(os.environ, **extra)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p)
    return env


def run_cli(*args, cwd, **kwargs) -> subprocess.CompletedProcess:
    """``python -m caffe_cae ARGS`` in ``cwd``; text output captured."""
    return subprocess.run([sys.executable, "-m", "caffe_cae", *map(str, args)], cwd=cwd, capture_output=True,
                          text=True, env=cli_env(), **kwargs)
