"""The README's examples run as written, in a fresh folder, in the order they appear.

The folder stands for a fresh clone: the repository's ``tests`` folder (whose fixtures the
examples name) is linked into it, nothing else.  What differs from a reader's run, and only this:

* ``pip`` lines and the test-suite command are skipped (this suite runs in the installed project);
* what the README says the reader brings is made small: MNIST comes from a fake set in MNIST's own
  IDX format (28x28 digits, 10 per class in the test split) instead of the download, ``digits/``
  holds 20 generated digit images, ``mobilenet.caffemodel`` holds MobileNet's filler weights;
* every iteration count (``--iters N``, ``-iterations N``, ``step(N)``) is 2, and the snapshot
  names that follow from it (``_iter_N``) with it.

Commands run in-process; the shell the examples use is what :func:`run_line` understands
(``caffe-cae``, ``python -c``, ``mkdir -p``, ``cp``, ``VAR=value`` and ``$VAR``, ``> FILE``,
``| tail -N``); anything else fails the test, so the examples stay within it.
"""
from __future__ import annotations

import contextlib
import io
import os
import pathlib
import re
import shlex
import shutil

import numpy as np
import pytest

from caffe_cae import cli
from caffe_cae.experiments import mnist
from tests.experiments.fake_mnist import fake_spec, fake_splits, write_idx_dir
from tests.helpers.paths import TESTS

README = TESTS.parent / "README.md"
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


def run_line(line: str, env: dict) -> str:
    """One command of an example; its standard output."""
    assignment = re.fullmatch(r"(\w+)=(\S+)", line)
    if assignment:
        env[assignment.group(1)] = assignment.group(2)
        return ""
    line = re.sub(r"\$(\w+)", lambda m: env[m.group(1)], line)
    pipe = None
    if "|" in line and not line.startswith("python -c"):
        line, pipe = (part.strip() for part in line.split("|", 1))
    words = shlex.split(line)
    if words[:2] == ["python", "-c"]:
        exec(compile(words[2], "<README python -c>", "exec"), {"__name__": "readme"})  # noqa: S102
        return ""
    if words[:2] == ["mkdir", "-p"]:
        for folder in words[2:]:
            os.makedirs(folder, exist_ok=True)
        return ""
    if words[0] == "cp":
        *sources, target = words[1:]
        for source in sources:
            shutil.copy(source, target)
        return ""
    assert words[0] == "caffe-cae", f"the README's examples use a command this test does not run: {line}"
    target = None
    if ">" in words:
        at = words.index(">")
        words, target = words[:at], words[at + 1]
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        status = cli.main(words[1:])
    assert status == 0, f"{line}: exit status {status}"
    text = out.getvalue()
    if target:
        pathlib.Path(target).write_text(text)
    if pipe:
        tail = re.fullmatch(r"tail -(\d+)", pipe)
        assert tail, f"unsupported pipe: {pipe}"
        text = "\n".join(text.splitlines()[-int(tail.group(1)):])
    return text


@pytest.fixture
def fresh_clone(tmp_path, monkeypatch):
    """A folder with the repository's tests/ linked in, the reader's own data, fake MNIST."""
    splits = fake_splits(counts=(("train", 60), ("test", 100)))
    source = write_idx_dir(tmp_path / "idx", splits)
    spec, real = fake_spec(splits), mnist.prepare_mnist
    monkeypatch.setattr(mnist, "prepare_mnist", lambda out, *a, **k: real(out, from_dir=source, spec=spec))
    clone = tmp_path / "clone"
    clone.mkdir()
    (clone / "tests").symlink_to(TESTS, target_is_directory=True)
    monkeypatch.chdir(clone)
    _digits(clone / "digits")
    _mobilenet_weights(clone / "mobilenet.caffemodel")
    return clone


def _digits(folder: pathlib.Path) -> None:
    from tests.helpers.datasets import random_images, write_image_files

    images = random_images(20, (28, 28), 0)
    lines = write_image_files(folder, images, np.arange(20) % 10)  # "img_000.png 0", ...
    (folder / "train.txt").write_text("\n".join(lines[:14]) + "\n")
    (folder / "test.txt").write_text("\n".join(lines[14:]) + "\n")


def _mobilenet_weights(path: pathlib.Path) -> None:
    from caffe_cae import TEST, Net

    Net(str(TESTS / "data/fixtures/zoo/mobilenet_v1/mobilenet_deploy.prototxt"), TEST, seed=1).save(str(path))


def test_readme_examples_run_as_written(fresh_clone):
    from caffe_cae import engine

    with engine.using(engine.current()):  # the Python example switches engines: not for later tests
        run_examples()


def run_examples() -> None:
    blocks = code_blocks(README.read_text())
    env: dict[str, str] = {}
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
            output = run_line(line, env)
            ran.append(line)
            numbers = re.findall(r"^(\d+) trainable", comment)
            if numbers:  # the count the comment promises is the one printed
                assert numbers[0] in output.replace(",", ""), (line, output)
    assert any("reproduce" in line for line in ran) and any(line.startswith("caffe-cae export") for line in ran)
    assert ran.count("python") >= 2
    assert os.path.exists("runs/quick/report.md") and os.path.exists("model3.onnx")
