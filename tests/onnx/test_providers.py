"""Which onnxruntime build runs, and what the notice says when CUDA is not used."""
from __future__ import annotations

import pytest

from caffe_cae.onnx import runtime


@pytest.fixture
def cpu_build(monkeypatch):
    import onnxruntime

    monkeypatch.setattr(onnxruntime, "get_available_providers", lambda: [runtime.CPU])


def test_the_cpu_build_says_how_to_get_cuda(cpu_build, monkeypatch):
    monkeypatch.setattr(runtime, "_installed", lambda name: name == "onnxruntime")
    usable, why = runtime.cuda_status()
    assert not usable and "the CPU build" in why and "pip install 'caffe-cae[gpu]'" in why


def test_both_builds_installed_is_named(cpu_build, monkeypatch):
    monkeypatch.setattr(runtime, "_installed", lambda name: True)
    usable, why = runtime.cuda_status()
    assert not usable and "both onnxruntime and onnxruntime-gpu are installed" in why
    assert "pip uninstall -y onnxruntime" in why


def test_the_base_install_pulls_no_gpu_runtime():
    import tomllib

    from tests.helpers.paths import TESTS

    project = tomllib.loads((TESTS.parent / "pyproject.toml").read_text())["project"]
    names = [dep.split(">")[0].split("=")[0].split("<")[0].split(";")[0].strip() for dep in project["dependencies"]]
    assert "onnxruntime" in names and not any("gpu" in n or "cuda" in n or "nvidia" in n for n in names)
    assert [d.split(">")[0] for d in project["optional-dependencies"]["gpu"]] == ["onnxruntime-gpu"]


def test_infer_names_the_provider(tmp_path, monkeypatch, caplog):
    import logging

    from caffe_cae import cli
    from caffe_cae.testing.fuzz.corpus import seed_files, write_files

    write_files(str(tmp_path), seed_files())
    monkeypatch.chdir(tmp_path)
    with caplog.at_level(logging.INFO):
        assert cli.main(["infer", "model.onnx", "--input", "data.h5", "-o", "o.h5", "--device", "cpu"]) == 0
    assert "provider CPUExecutionProvider" in caplog.text
