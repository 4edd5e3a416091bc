"""The README's examples run as written, in a fresh folder, in the order they appear.

Three things differ from a user's run, and only these: ``pip`` lines and the test-suite
command are skipped (this suite runs in the installed project); MNIST comes from a small fake
set in MNIST's own IDX format (28x28 digits, 10 per class in the test split) instead of the
download; every iteration count (``--iters N``, ``-iterations N``, ``step(N)``) is 2, and the
snapshot names that follow from it (``_iter_N``) with it.  Everything else -- commands, flags,
file names, the Python snippet -- is the README's text.
"""
from __future__ import annotations

import contextlib
import io
import os
import pathlib
import re
import shlex

import pytest

from caffe_cae import cli
from caffe_cae.experiments import mnist
from tests.experiments.fake_mnist import fake_spec, fake_splits, write_idx_dir

README = pathlib.Path(__file__).resolve().parents[1] / "README.md"
ITERS = 2
SKIPPED = ("pip install", "pip uninstall", "python -m pytest")


def code_blocks(text: str) -> list[tuple[str, str]]:
    """``[(language, code)]`` of the fenced blocks, in order."""
    return re.findall(r"^```(\w+)\n(.*?)^```", text, flags=re.MULTILINE | re.DOTALL)


def fewer_iterations(code: str) -> str:
    code = re.sub(r"(-{1,2}(?:iters|iterations)[ =])\d+", rf"\g<1>{ITERS}", code)
    code = re.sub(r"step\(\d+\)", f"step({ITERS})", code)
    return re.sub(r"_iter_\d+", f"_iter_{ITERS}", code)


def commands(block: str) -> list[tuple[str, str]]:
    """``[(command line, its comment)]``: one command per line, ``&&`` chains split."""
    out = []
    for line in block.splitlines():
        code, _, comment = line.partition("  #")
        for part in code.split("&&"):
            if part.strip():
                out.append((part.strip(), comment.strip()))
    return out


def run_command(line: str) -> str:
    """One ``caffe-cae`` command in-process (``> file`` redirects its output); its stdout."""
    words = shlex.split(line)
    assert words[0] == "caffe-cae", line
    target = None
    if ">" in words:
        at = words.index(">")
        words, target = words[:at], words[at + 1]
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        status = cli.main(words[1:])
    assert status == 0, f"{line}: exit status {status}"
    if target:
        pathlib.Path(target).write_text(out.getvalue())
    return out.getvalue()


@pytest.fixture
def fake_mnist(tmp_path, monkeypatch):
    """``prepare_mnist`` reads a fake MNIST in IDX files instead of downloading the real one."""
    splits = fake_splits(counts=(("train", 60), ("test", 100)))
    source = write_idx_dir(tmp_path / "idx", splits)
    spec, real = fake_spec(splits), mnist.prepare_mnist

    def prepare(out, *args, **kwargs):
        return real(out, from_dir=source, spec=spec)

    monkeypatch.setattr(mnist, "prepare_mnist", prepare)


def test_readme_examples_run_as_written(tmp_path, fake_mnist, monkeypatch):
    blocks = code_blocks(README.read_text())
    assert [lang for lang, _ in blocks].count("python") >= 1
    work = tmp_path / "clone"
    work.mkdir()
    monkeypatch.chdir(work)
    ran = []
    for lang, code in blocks:
        code = fewer_iterations(code)
        if lang == "python":
            exec(compile(code, str(README), "exec"), {"__name__": "readme"})  # noqa: S102 - the README's own code
            ran.append("python")
            continue
        if lang not in ("bash", "sh"):
            continue
        for line, comment in commands(code):
            if line.startswith(SKIPPED):
                continue
            output = run_command(line)
            ran.append(line)
            numbers = re.findall(r"^(\d+) trainable parameters", comment)
            if numbers:  # the count the comment promises is the one printed
                assert numbers[0] in output.replace(",", ""), (line, output)
    assert any("reproduce" in line for line in ran) and any("export" in line for line in ran)
    assert "python" in ran
    assert os.path.exists("runs/quick/report.md")
