"""Run one fuzz case in a forked child with a memory and time budget, and judge the outcome.

Outcomes: ``ok`` (accepted), ``error`` (one ``CaffeCaeError`` line that names a file, layer,
blob or option), and the failures: ``raw`` (any other exception, a traceback, an internal-error
exit, or an error line without a location), ``hang`` (over the time budget), ``blowup`` (a
MemoryError under the memory budget, or the child killed), ``accepted`` (success on an input
that Caffe refuses).
"""
from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import random
import re
import resource
import shutil
import signal
import sys
import tempfile
import time
import traceback
from dataclasses import asdict, dataclass, field

from caffe_cae.testing.fuzz import mutate
from caffe_cae.testing.fuzz.corpus import seed_files, write_files
from caffe_cae.testing.fuzz.targets import TARGETS, Target

FAILURES = ("raw", "hang", "blowup", "accepted")
#: memory a case may add to the process (address space), and its wall-clock budget
MEMORY_BUDGET = 1536 * 2**20
TIME_BUDGET = 20.0

_LOCATION = re.compile(r"^(layer '|blob '|net '|--?[a-z]|[^\s:]+\.[\w.]+[:\s(]|[^\s:]+: )")


@dataclass
class Case:
    file: str
    mutation: str
    target: str
    refuse: bool = False


@dataclass
class Outcome:
    kind: str
    detail: str = ""
    place: str = ""
    seconds: float = 0.0
    case: dict = field(default_factory=dict)

    @property
    def failed(self) -> bool:
        return self.kind in FAILURES


def mutators_for(name: str):
    from caffe_cae.proto import caffe_pb2

    if name == "solver.prototxt":
        return mutate.TEXT_MUTATORS + [mutate.solver_structure] * 4
    if name.endswith(".prototxt"):
        return mutate.TEXT_MUTATORS + [mutate.net_structure] * 6
    if name.endswith(".txt"):
        return mutate.TEXT_MUTATORS + [_other_list_file] * 3
    if name.endswith(".h5"):
        return [mutate.hdf5_structure] * 6 + mutate.BYTE_MUTATORS
    if name.endswith(".caffemodel"):
        return [mutate.binary_structure(caffe_pb2.NetParameter)] * 4 + mutate.BYTE_MUTATORS
    if name.endswith(".solverstate"):
        return [mutate.binary_structure(caffe_pb2.SolverState)] * 4 + mutate.BYTE_MUTATORS
    if name.endswith(".binaryproto"):
        return [mutate.binary_structure(caffe_pb2.BlobProto)] * 3 + mutate.BYTE_MUTATORS
    if name.endswith(".onnx"):
        import onnx

        return [mutate.binary_structure(onnx.ModelProto)] * 3 + mutate.BYTE_MUTATORS
    return mutate.BYTE_MUTATORS


def _other_list_file(rng: random.Random, data: bytes) -> mutate.Mutant:
    new = rng.choice([b"", b"nosuch.h5\n", b"codes.h5\n", b"model.onnx\n", b"train.prototxt\n", b"data.h5 data.h5\n",
                      b"data.h5 codes.h5\n", b".\n", b"data.h5\x00\n", b"snap_iter_2.caffemodel.h5\n"])
    return mutate.Mutant(new, f"list file -> {new!r}")


def apply_mutator(mutator, rng: random.Random, content: bytes) -> tuple[str, mutate.Mutant]:
    """``(mutator name, mutant)``; a mutation that does not apply to this content (a string
    dataset for a numeric change, ...) falls back to random bytes."""
    try:
        return mutator.__name__, mutator(rng, content)
    except Exception:  # noqa: BLE001 - the mutator's own limits, not the project's
        return "flip_bytes", mutate.flip_bytes(rng, content)


def make_case(name: str, mutator, target: Target, rng: random.Random) -> tuple[Case, dict[str, bytes]]:
    seeds = seed_files()
    used, mutant = apply_mutator(mutator, rng, seeds[name])
    files = dict(seeds)
    files[name] = mutant.content
    return Case(name, f"{used}: {mutant.what}", target.name, mutant.refuse), files


def draw_case(rng: random.Random) -> tuple[Case, dict[str, bytes]]:
    """A random case: one seed file mutated, one target that reads it."""
    name = rng.choice(sorted(TARGETS))
    mutator = rng.choice(mutators_for(name))
    target = rng.choice(TARGETS[name])
    return make_case(name, mutator, target, rng)


def target_by_name(file: str, name: str) -> Target:
    return next(t for t in TARGETS[file] if t.name == name)


# ------------------------------------------------------------------------------------------
# the child


class _Timeout(BaseException):
    pass


def _innermost_project_frame(tb) -> str:
    frames = [f for f in traceback.extract_tb(tb) if "caffe_cae" in f.filename and "/testing/fuzz/" not in f.filename]
    if not frames:
        frames = traceback.extract_tb(tb)[-1:]
    if not frames:
        return "?"
    f = frames[-1]
    return f"{f.filename.split('caffe_cae/')[-1]}:{f.lineno} ({f.name})"


def _judge_message(message: str, case: Case) -> Outcome:
    lines = [line for line in message.splitlines() if line.strip()]
    if len(lines) != 1:
        return Outcome("raw", f"error of {len(lines)} lines: {message[:300]}")
    text = lines[0]
    named = ("layer '" in text or "blob '" in text or "LMDB '" in text
             or any(name in text for name in seed_files()))
    if not (_LOCATION.match(text) or named):
        return Outcome("raw", f"error without a location: {text[:300]}")
    return Outcome("error", text[:300])


def _run_cli(target: Target, case: Case) -> Outcome:
    from caffe_cae import cli

    err = io.StringIO()
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        status = cli.main(list(target.argv))
    text = err.getvalue()
    if "Traceback" in text:
        return Outcome("raw", text[-600:], place=_traceback_place(text))
    errors = [line for line in text.splitlines() if ": error: " in line]
    if status == 0:
        return Outcome("ok")
    if status in (1, 2) and len(errors) == 1:
        message = errors[0].split(": error: ", 1)[1]
        return _judge_message(message, case)
    return Outcome("raw", f"exit status {status}, {len(errors)} error lines: {text[-400:]}",
                   place=f"exit {status}")


def _traceback_place(text: str) -> str:
    found = re.findall(r'File "[^"]*caffe_cae/([^"]+)", line (\d+), in (\w+)', text)
    return f"{found[-1][0]}:{found[-1][1]} ({found[-1][2]})" if found else "?"


def _child(target: Target, case: Case, write) -> None:
    from caffe_cae.errors import CaffeCaeError

    def alarm(signum, frame):
        raise _Timeout()

    signal.signal(signal.SIGALRM, alarm)
    signal.setitimer(signal.ITIMER_REAL, TIME_BUDGET)
    start = time.perf_counter()
    try:
        if target.call is None:
            outcome = _run_cli(target, case)
        else:
            root = logging.getLogger()
            for handler in list(root.handlers):
                root.removeHandler(handler)
            root.addHandler(logging.NullHandler())
            with contextlib.redirect_stdout(io.StringIO()):
                target.call()
            outcome = Outcome("ok")
    except CaffeCaeError as err:
        outcome = _judge_message(str(err), case)
        if outcome.kind == "raw":
            outcome.place = _innermost_project_frame(err.__traceback__)
    except _Timeout:
        outcome = Outcome("hang", f"over {TIME_BUDGET:g} s")
    except MemoryError as err:
        outcome = Outcome("blowup", f"MemoryError {err}"[:300], place=_innermost_project_frame(err.__traceback__))
    except BaseException as err:  # noqa: BLE001 - every other exception is what the fuzz looks for
        outcome = Outcome("raw", f"{type(err).__name__}: {err}"[:400], place=_innermost_project_frame(err.__traceback__))
    signal.setitimer(signal.ITIMER_REAL, 0)
    unread = any(f"dataset '{name}'" in case.mutation for name in target.ignores)
    if outcome.kind == "ok" and case.refuse and target.semantic and not unread:
        outcome = Outcome("accepted", "Caffe refuses this input")
    outcome.seconds = time.perf_counter() - start
    write(json.dumps(asdict(outcome)).encode())


def _address_space() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[0]) * resource.getpagesize()


def run_case(case: Case, files: dict[str, bytes]) -> Outcome:
    """Run ``case`` in a fresh folder in a forked child; the outcome, judged."""
    target = target_by_name(case.file, case.target)
    folder = tempfile.mkdtemp(prefix="caffe-cae-fuzz-")
    write_files(folder, files)
    read_end, write_end = os.pipe()
    start = time.perf_counter()
    pid = os.fork()
    if pid == 0:  # the child
        status = 0
        try:
            os.close(read_end)
            os.chdir(folder)
            limit = _address_space() + MEMORY_BUDGET
            resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
            _child(target, case, lambda data: os.write(write_end, data))
        except BaseException:  # noqa: BLE001
            status = 3
        finally:
            os._exit(status)
    os.close(write_end)
    try:
        data, status = _wait(pid, read_end, TIME_BUDGET + 10)
    finally:
        os.close(read_end)
        shutil.rmtree(folder, ignore_errors=True)
    if status is None:
        outcome = Outcome("hang", f"killed after {TIME_BUDGET + 10:g} s (stuck outside Python)")
    elif not data:
        outcome = Outcome("blowup", f"the child died ({_describe_status(status)})")
    else:
        outcome = Outcome(**{k: v for k, v in json.loads(data).items() if k != "case"})
    outcome.case = asdict(case)
    if not outcome.seconds:
        outcome.seconds = time.perf_counter() - start
    return outcome


def _wait(pid: int, fd: int, timeout: float):
    import select

    chunks, deadline = [], time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            return b"".join(chunks), None
        ready, _, _ = select.select([fd], [], [], min(left, 0.5))
        if ready:
            chunk = os.read(fd, 65536)
            if chunk:
                chunks.append(chunk)
                continue
            _, status = os.waitpid(pid, 0)
            return b"".join(chunks), status
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            rest = os.read(fd, 1 << 20)
            return b"".join(chunks) + rest, status


def _describe_status(status: int) -> str:
    if os.WIFSIGNALED(status):
        return f"signal {signal.Signals(os.WTERMSIG(status)).name}"
    return f"exit status {os.WEXITSTATUS(status)}"


def warm_up() -> None:
    """Import what the targets use once, before any fork (children start warm)."""
    import caffe_cae.cli
    import caffe_cae.experiments.encode  # noqa: F401
    import caffe_cae.experiments.evaluate  # noqa: F401
    import caffe_cae.onnx  # noqa: F401
    import onnxruntime  # noqa: F401
    import sklearn.discriminant_analysis  # noqa: F401
    import sklearn.model_selection  # noqa: F401
    import tqdm  # noqa: F401

    caffe_cae.cli.build_parser()
    seed_files()


__all__ = ["Case", "Outcome", "draw_case", "run_case", "warm_up", "FAILURES", "sys"]
