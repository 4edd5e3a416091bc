"""onnxruntime sessions: the CUDA provider when it really works, otherwise the CPU provider with
one notice line (no stack of provider errors), and a report of which node ran where."""
from __future__ import annotations

import ctypes
import json
import logging
import os
import tempfile
from collections import OrderedDict

import numpy as np
import onnx

from caffe_cae.errors import CaffeCaeError

log = logging.getLogger(__name__)

CUDA, CPU = "CUDAExecutionProvider", "CPUExecutionProvider"
DEVICES = ("auto", "cuda", "cpu")


def cuda_status() -> tuple[bool, str]:
    """(usable, why not): the provider must be built in and a CUDA driver must load."""
    import onnxruntime as ort

    if CUDA not in ort.get_available_providers():
        return False, "this onnxruntime has no CUDA provider"
    try:
        ctypes.CDLL("libcuda.so.1")
    except OSError:
        return False, "no CUDA driver (libcuda.so.1) on this machine"
    return True, ""


def _options(profile_dir: str | None = None):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3  # errors only: a failed provider is reported by us, in one line
    if profile_dir:
        options.enable_profiling = True
        options.profile_file_prefix = os.path.join(profile_dir, "ort")
    return options


def make_session(model, device: str = "auto", profile_dir: str | None = None):
    """An InferenceSession for ``model`` (path, bytes or ModelProto) on ``device``.

    ``auto``: CUDA if usable, else CPU with one notice; ``cuda``: CUDA or an error; ``cpu``: CPU.
    """
    import onnxruntime as ort

    if device not in DEVICES:
        raise CaffeCaeError(f"--device {device}: choose one of {', '.join(DEVICES)}")
    source = model.SerializeToString() if isinstance(model, onnx.ModelProto) else model
    if isinstance(source, os.PathLike):
        source = os.fspath(source)
    if isinstance(source, str) and not os.path.exists(source):
        raise CaffeCaeError(f"{source}: no such file")
    if isinstance(source, str) and os.path.isdir(source):
        raise CaffeCaeError(f"{source}: is a directory, expected an .onnx file")
    if device != "cpu":
        usable, why = cuda_status()
        if usable:
            try:
                session = ort.InferenceSession(source, _options(profile_dir), providers=[CUDA, CPU])
                if session.get_providers()[0] == CUDA:
                    return session
                why = "the CUDA provider could not be initialised"
            except Exception as err:  # onnxruntime raises plain RuntimeError/Fail types
                why = f"the CUDA provider failed ({str(err).splitlines()[0]})"
        if device == "cuda":
            raise CaffeCaeError(f"--device cuda: {why}")
        log.info("CUDA not used: %s; running on the CPU provider", why)
    try:
        return ort.InferenceSession(source, _options(profile_dir), providers=[CPU])
    except Exception as err:
        where = f"{source}: " if isinstance(source, str) else ""
        raise CaffeCaeError(f"{where}onnxruntime cannot load the model: {str(err).splitlines()[0]}") from None


def run_batched(session, feeds: dict[str, np.ndarray], batch: int | None = None, progress=None) -> dict[str, np.ndarray]:
    """Run ``session`` over the first axis of ``feeds`` in chunks of ``batch``; concatenate outputs."""
    names = [o.name for o in session.get_outputs()]
    total = len(next(iter(feeds.values())))
    step = batch or total
    pieces: dict[str, list[np.ndarray]] = {n: [] for n in names}
    for start in range(0, total, step):
        chunk = {k: np.ascontiguousarray(v[start:start + step], dtype=np.float32) for k, v in feeds.items()}
        for name, value in zip(names, session.run(names, chunk)):
            pieces[name].append(value)
        if progress is not None:
            progress.update(min(step, total - start))
    return {n: np.concatenate(p) if p else np.empty((0,)) for n, p in pieces.items()}


def node_placement(model, feeds: dict[str, np.ndarray], device: str = "auto") -> "OrderedDict[str, str]":
    """Which execution provider ran each node: ``{node name: provider}`` from one profiled run."""
    with tempfile.TemporaryDirectory() as tmp:
        session = make_session(model, device, profile_dir=tmp)
        session.run(None, feeds)
        with open(session.end_profiling()) as handle:
            events = json.load(handle)
    placement: OrderedDict[str, str] = OrderedDict()
    for event in events:
        args = event.get("args", {})
        if event.get("cat") == "Node" and "provider" in args and event["name"].endswith("_kernel_time"):
            placement.setdefault(event["name"][: -len("_kernel_time")], args["provider"])
    return placement
