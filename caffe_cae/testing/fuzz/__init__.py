"""Fuzzing every reader and entry point with mutated seed files (``tools/fuzz.py`` runs it at
length; ``tests/fuzz`` runs a bounded property-based share of it in the suite)."""
from caffe_cae.testing.fuzz.oracle import FAILURES, Case, Outcome, draw_case, run_case, warm_up

__all__ = ["FAILURES", "Case", "Outcome", "draw_case", "run_case", "warm_up"]
