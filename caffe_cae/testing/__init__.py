"""Test utilities shipped with the package (importable by every test suite)."""
from caffe_cae.testing.gradcheck import (
    GradientCheckError,
    GradientReport,
    check_gradients,
    check_in_place,
)
from caffe_cae.testing.rounding import assert_rounding_close, rounding_bound

__all__ = ["GradientCheckError", "GradientReport", "check_gradients", "check_in_place",
           "assert_rounding_close", "rounding_bound"]
