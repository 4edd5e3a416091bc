"""Property: whatever a reader or entry point is given, it succeeds or fails with exactly one
``CaffeCaeError`` line that names a file, layer, blob or option -- never another exception, a
hang, a blow-up (a MemoryError under a memory budget, a dead process) or the silent acceptance of
what Caffe refuses.

Each example mutates one seed file of a small auto-encoder (prototxt text and structure, solver,
list file, HDF5 data/weights/codes/solverstate, caffemodel, solverstate, ONNX) and runs one
entry point that reads it, in a forked child with a time and memory budget
(:mod:`caffe_cae.testing.fuzz`).  Bounded here; ``python tools/fuzz.py --cases 10000`` runs it
at length.
"""
from __future__ import annotations

import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from caffe_cae.testing import fuzz
from caffe_cae.testing.fuzz import mutate, oracle
from caffe_cae.testing.fuzz.targets import TARGETS

FILES = sorted(TARGETS)


@pytest.fixture(scope="module", autouse=True)
def warm():
    fuzz.warm_up()


def run(file: str, mutator, target, seed: int) -> oracle.Outcome:
    return fuzz.run_case(*oracle.make_case(file, mutator, target, random.Random(seed)))


@st.composite
def cases(draw):
    file = draw(st.sampled_from(FILES))
    mutators = oracle.mutators_for(file)
    mutator = mutators[draw(st.integers(0, len(mutators) - 1))]
    target = TARGETS[file][draw(st.integers(0, len(TARGETS[file]) - 1))]
    return file, mutator, target, draw(st.integers(0, 2**32 - 1))


@settings(max_examples=60, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(cases())
def test_every_entry_point_fails_in_one_line_or_succeeds(case):
    outcome = run(*case)
    assert not outcome.failed, f"{outcome.kind} at {outcome.place}: {outcome.detail}\n{outcome.case}"


@pytest.mark.parametrize("file, target", [(f, t) for f in FILES for t in TARGETS[f]],
                         ids=[f"{f}:{t.name}" for f in FILES for t in TARGETS[f]])
def test_every_entry_point_on_a_truncated_file(file, target):
    outcome = run(file, mutate.truncate, target, 7)
    assert not outcome.failed, f"{outcome.kind} at {outcome.place}: {outcome.detail}"
