"""--threads reaches both our pool and the BLAS/OpenMP libraries, and is undone afterwards."""
from threadpoolctl import threadpool_info

from caffe_cae import cli, parallel


def test_limit_threads_sets_and_restores_both_pools():
    before = parallel.threads()
    with parallel.limit_threads(1):
        assert parallel.threads() == 1
        assert all(pool["num_threads"] == 1 for pool in threadpool_info())
    assert parallel.threads() == before
    with parallel.limit_threads(None):
        assert parallel.threads() == before


def test_cli_applies_threads_around_the_command(monkeypatch):
    seen = {}
    from caffe_cae.commands import timing

    monkeypatch.setattr(timing, "run", lambda args: seen.setdefault("threads", parallel.threads()) and 0)
    assert cli.main(["time", "--model", "x.prototxt", "--threads", "1"]) == 0
    assert seen["threads"] == 1
