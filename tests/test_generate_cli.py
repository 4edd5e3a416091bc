"""``caffe-cae gen``: listing, writing files, option checks."""
import argparse
import subprocess
import sys

import pytest

from caffe_cae import generate, zoo
from caffe_cae.commands import gen
from caffe_cae.errors import CaffeCaeError


def run_gen(*argv):
    parser = argparse.ArgumentParser(prog="caffe-cae")
    gen.register(parser.add_subparsers())
    args = parser.parse_args(["gen", *map(str, argv)])
    return args.func(args)


def test_list(capsys):
    assert run_gen("--list") == 0
    lines = capsys.readouterr().out.splitlines()
    assert [l.split()[0] for l in lines] == list(zoo.MODELS)
    assert "unpooling WITH switches" in lines[2]


def test_stdout_and_output_file(tmp_path, capsys):
    assert run_gen("model2", "--dim", "30", "--batch", "50") == 0
    printed = capsys.readouterr().out
    assert printed == generate.net_text("model2", dim=30, batch=50)
    out = tmp_path / "sub" / "m.prototxt"
    assert run_gen("model5", "--deploy", "--syntax", "legacy", "-o", out) == 0
    assert out.read_text() == generate.net_text("model5", deploy=True, syntax="legacy")
    assert capsys.readouterr().out == ""


def test_solver(tmp_path):
    out = tmp_path / "solver.prototxt"
    assert run_gen("model4", "--solver", "--net", "n.prototxt", "--snapshot-prefix", "s/m4",
                   "--solver-mode", "GPU", "--seed", "3", "-o", out) == 0
    assert out.read_text() == generate.solver_text("model4", net="n.prototxt", snapshot_prefix="s/m4",
                                                   solver_mode="GPU", random_seed=3)


def test_sources(capsys):
    run_gen("model1", "--train-source", "x/tr.txt", "--test-source", "x/te.txt")
    text = capsys.readouterr().out
    assert 'source: "x/tr.txt"' in text and 'source: "x/te.txt"' in text


@pytest.mark.parametrize("argv, message", [
    ((), "give a model name"),
    (("nosuch",), "unknown model 'nosuch'"),
    (("model1", "--dim", "0"), "--dim must be at least 1"),
    (("model1", "--solver", "--deploy"), "--solver takes no --deploy"),
    (("model1", "--net", "x"), "solver options"),
    (("model1", "--deploy", "--train-source", "x"), "has no data layers"),
])
def test_user_errors(argv, message):
    with pytest.raises(CaffeCaeError, match=message):
        run_gen(*argv)


def test_through_the_real_cli(tmp_path):
    out = tmp_path / "model3.prototxt"
    done = subprocess.run([sys.executable, "-m", "caffe_cae", "gen", "model3", "--dim", "10", "-o", str(out)],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert out.read_text() == generate.net_text("model3", dim=10)
    bad = subprocess.run([sys.executable, "-m", "caffe_cae", "gen", "model9"], capture_output=True, text=True)
    assert bad.returncode == 1 and bad.stderr.startswith("caffe-cae gen: error: unknown model 'model9'")
