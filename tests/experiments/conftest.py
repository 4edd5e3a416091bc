"""One BLAS/OpenMP thread in these tests: on a shared 2-core machine spinning worker threads make
t-SNE and the GEMMs many times slower (the reproduce command does the same by default)."""
import pytest
from threadpoolctl import threadpool_limits


@pytest.fixture(autouse=True)
def _one_thread():
    with threadpool_limits(limits=1):
        yield
