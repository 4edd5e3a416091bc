"""Fixtures shared by the whole suite."""
import pytest

from caffe_cae import engine


@pytest.fixture(params=engine.ENGINES)
def each_engine(request):
    """Run the test once under each engine (fast, reference): golden and gradient suites."""
    with engine.using(request.param):
        yield request.param


@pytest.fixture
def fast_engine():
    """Tests of the fast path itself (thread splits, sparse deconvolution, column layouts) run
    it whatever ``CAFFE_CAE_ENGINE`` says."""
    with engine.using(engine.FAST):
        yield
