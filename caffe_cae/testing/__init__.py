"""Test utilities shipped with the package (importable by every test suite)."""
from caffe_cae.testing.gradcheck import (
    GradientCheckError,
    GradientReport,
    check_gradients,
    check_in_place,
)

__all__ = ["GradientCheckError", "GradientReport", "check_gradients", "check_in_place"]
