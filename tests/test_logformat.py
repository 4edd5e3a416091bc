"""``train`` logs in glog's format by default, line for line what Caffe's log parsers read.

The patterns below are those of BVLC Caffe's ``tools/extra/parse_log.py`` and
``extract_seconds.py``: every line after the first ``Iteration`` line must carry glog's
timestamp (``extract_datetime_from_line`` exits on any other line), the ``Solving`` line gives
the start time, and the train/test output and learning-rate lines give the table's columns.
"""
from __future__ import annotations

import datetime
import re

import pytest

from caffe_cae import logformat
from caffe_cae.testing.fuzz.corpus import seed_files
from tests.helpers.cli import run_cli

# parse_log.py
ITERATION = re.compile(r"Iteration (\d+)")
TRAIN_OUTPUT = re.compile(r"Train net output #(\d+): (\S+) = ([\.\deE+-]+)")
TEST_OUTPUT = re.compile(r"Test net output #(\d+): (\S+) = ([\.\deE+-]+)")
LEARNING_RATE = re.compile(r"lr = ([-+]?[0-9]*\.?[0-9]+([eE]?[-+]?[0-9]+)?)")


def extract_datetime(line: str, year: int) -> datetime.datetime:
    """extract_seconds.py's reading of a glog line (it exits on a ValueError)."""
    fields = line.strip().split()
    month, day = int(fields[0][1:3]), int(fields[0][3:])
    stamp = fields[1]
    dot = stamp.rfind(".")
    hour, minute, second = (int(x) for x in stamp[:dot].split(":"))
    return datetime.datetime(year, month, day, hour, minute, second, int(stamp[dot + 1:]))


@pytest.fixture
def train_log(tmp_path):
    for name in ("train.prototxt", "solver.prototxt", "train.txt", "test.txt", "data.h5"):
        (tmp_path / name).write_bytes(seed_files()[name])
    result = run_cli("train", "solver.prototxt", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    return result.stderr


def test_every_line_parses_as_caffes_tools_parse_it(train_log):
    lines = train_log.splitlines()
    assert lines and all(line.strip() for line in lines)
    year = datetime.date.today().year
    start = next(extract_datetime(line, year) for line in lines if "Solving" in line)
    seen_iteration = False
    rows = {"train": [], "test": [], "lr": []}
    for line in lines:
        assert re.match(r"^[IWEF]\d{4} \d\d:\d\d:\d\d\.\d{6} \d+ [\w.]+:\d+\] ", line), line
        seen_iteration = seen_iteration or bool(ITERATION.search(line))
        if seen_iteration:
            assert extract_datetime(line, year) >= start - datetime.timedelta(seconds=1)
        for key, pattern in (("train", TRAIN_OUTPUT), ("test", TEST_OUTPUT), ("lr", LEARNING_RATE)):
            match = pattern.search(line)
            if match and (key == "lr" or match.group(2) == "loss"):
                rows[key].append(float(match.group(3 if key != "lr" else 1)))
    assert len(rows["train"]) == 2 and len(rows["lr"]) == 2   # display: 1, max_iter: 2
    assert len(rows["test"]) == 2                              # test_interval: 2 -> iterations 0 and 2
    assert any(re.search(r"\] Iteration 0, Testing net \(#0\)$", line) for line in lines)
    assert any(re.search(r"\] Iteration 2, loss = [\d.e+-]+$", line) for line in lines)
    assert any(re.search(r"\]     Train net output #\d+: loss = [\d.e+-]+ \(\* 1 = [\d.e+-]+ loss\)$", line)
               for line in lines)
    # Caffe master's display line, and the learning rate after it
    assert any(re.search(r"\] Iteration 1 \([\d.e+-]+ iter/s, [\d.e+-]+s/1 iters\), loss = [\d.e+-]+$", line)
               for line in lines)
    assert any(re.search(r"\] Iteration 1, lr = 0\.01$", line) for line in lines)


def test_plain_format_and_warnings(tmp_path):
    for name in ("train.prototxt", "solver.prototxt", "train.txt", "test.txt", "data.h5"):
        (tmp_path / name).write_bytes(seed_files()[name])
    result = run_cli("train", "solver.prototxt", "--log-format", "plain", "-gpu", "0", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    lines = result.stderr.splitlines()
    assert "caffe-cae train: -gpu 0 ignored: the interpreter runs on the CPU" in lines[0]
    assert "Solving tiny_cae" in lines and not any(re.match(r"^[IWEF]\d{4} ", line) for line in lines)


def test_glog_prefix_shape():
    prefix = logformat.glog_prefix(0.9999999, 20, 42, "solver.py", 7)
    assert re.fullmatch(r"I\d{4} \d\d:\d\d:\d\d\.\d{6} 42 solver\.py:7\] ", prefix)
