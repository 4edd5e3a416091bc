#!/usr/bin/env python
"""Speed and memory of the interpreter on the papers' nets, against onnxruntime and PyTorch.

    python benchmarks/bench.py                       # every model, batch 100, 2 threads
    python benchmarks/bench.py --models model4 --iters 30 --output benchmarks/results.md
    python benchmarks/bench.py --layers model4       # per-layer table (as `caffe-cae time`)

For each model (model1..model5, deep-ae; code size 10, float32, the papers' batch of 100) it
measures, each framework in a fresh subprocess with the same thread count:

* **train ms**: one training iteration of the interpreter = ``Solver.step(1)`` (forward,
  backward, SGD update with the model's solver settings), median after warm-up;
* **fwd ms**: forward of the deploy net (Input -> reconstruction, no losses) through
  ``Net.forward``, and **ORT fwd ms**: the same net exported to ONNX on onnxruntime's CPU
  provider; images/s = batch / time;
* **peak RSS**: the interpreter process's high-water resident memory (``VmHWM``) at the end of
  its training iterations (a fresh process per model, so it is that model's training run);
* with PyTorch installed, the same architecture built by ``benchmarks/torch_models.py`` from
  the same net (same shapes and starting weights; the losses of the first iteration are
  compared) is trained with ``torch.optim.SGD`` in eager mode, and **ratio** = our train ms /
  PyTorch train ms.  Without PyTorch those columns say "n/a (no torch)".

The input is a fixed random batch in [0, 1) (timings do not depend on the pixel values).
Threads: ``OMP/OPENBLAS/MKL_NUM_THREADS``, ``torch.set_num_threads``, onnxruntime's
``intra_op_num_threads`` and the interpreter's element-wise threads (``caffe_cae.parallel``)
all get ``--threads`` (default 2); ``--blas-threads`` gives the interpreter's BLAS another
count, ``--wait passive`` makes idle threads of every framework sleep instead of spin.  On a
shared machine use ``--repeat`` (runs the workers several times, interleaved, and keeps each
one's best median) and ``--threads 1 --clock cpu`` (CPU time, immune to other jobs); see
``benchmarks/NOTES.md`` for why.

This is a script, not a test: it prints a Markdown table (and writes it with ``--output``).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
MODELS = ("model1", "model2", "model3", "model4", "model5", "deep-ae")
DIM = 10
SEED = 1
THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
               "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS")
#: ``--wait passive``: idle worker threads sleep at once instead of spinning (OpenBLAS: 2^4
#: cycles, OpenMP: PASSIVE, onnxruntime: no spinning).  On a shared, oversubscribed machine a
#: spinning worker that is descheduled stalls every parallel region of its framework; but
#: OpenBLAS's sleeping workers wake slowly, so neither policy is fair to both there.
PASSIVE_WAIT = {"OPENBLAS_THREAD_TIMEOUT": "4", "OMP_WAIT_POLICY": "PASSIVE",
                "KMP_BLOCKTIME": "0"}


# ------------------------------------------------------------------------------------------
# the nets


def input_net_param(model: str, batch: int, deploy: bool = False):
    """The model's net with an ``Input`` layer ``data`` (batch, 1, 28, 28) instead of its HDF5
    data layers: the train/test net (losses kept) or, with ``deploy``, the deploy net."""
    from caffe_cae import generate
    from caffe_cae.experiments.encode import feed_net_param
    from caffe_cae.proto import caffe_pb2

    param = generate.net_param(model, dim=DIM, batch=batch, deploy=deploy)
    if deploy:
        return param
    return feed_net_param(param, {"data": (batch, 1, 28, 28)}, phase=caffe_pb2.TRAIN)


def solver_param(model: str):
    """The model's solver settings, with testing, display and snapshots off."""
    from caffe_cae import generate

    param = generate.solver_param(model, dim=DIM)
    param.ClearField("net")
    param.ClearField("test_iter")
    param.test_interval = 0
    param.display = 0
    param.snapshot = 0
    param.snapshot_after_train = False
    return param


def batch_data(batch: int):
    import numpy as np

    return np.random.default_rng(0).random((batch, 1, 28, 28), dtype=np.float32)


def peak_rss_mib() -> float:
    """This process's high-water resident set (VmHWM), MiB."""
    try:
        with open("/proc/self/status") as handle:
            for line in handle:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}
CLOCK = CLOCKS["wall"]


def timed(fn, warmup: int, iters: int) -> list[float]:
    """Milliseconds of ``iters`` calls of ``fn`` after ``warmup`` untimed calls (``--clock``)."""
    for _ in range(warmup):
        fn()
    times = []
    clock = CLOCK
    for _ in range(iters):
        start = clock()
        fn()
        times.append((clock() - start) * 1e3)
    return times


# ------------------------------------------------------------------------------------------
# workers (one per subprocess)


def work_interp(args) -> dict:
    import numpy as np

    from caffe_cae.net import TEST, TRAIN, Net
    from caffe_cae.solvers import SOLVER_CLASSES

    x = batch_data(args.batch)
    net = Net(input_net_param(args.model, args.batch), phase=TRAIN, seed=SEED)
    sp = solver_param(args.model)
    solver = SOLVER_CLASSES[sp.type](sp, net=net, test_nets=[])
    net.blobs["data"].data[...] = x
    first_loss = float(net.forward_loss())
    train = timed(lambda: solver.step(1), args.warmup, args.iters)
    rss = peak_rss_mib()
    deploy = Net(input_net_param(args.model, args.batch, deploy=True), phase=TEST, seed=SEED)
    forward = timed(lambda: deploy.forward(data=x), args.warmup, args.iters)
    return {"train_ms": statistics.median(train), "forward_ms": statistics.median(forward),
            "peak_rss_mib": rss, "first_loss": first_loss,
            "params": int(sum(p.count for p in net.learnable_params)),
            "numpy": np.__version__}


def work_onnx(args) -> dict:
    import onnxruntime as ort

    from caffe_cae.net import TEST, Net
    from caffe_cae.onnx import export_net

    x = batch_data(args.batch)
    net = Net(input_net_param(args.model, args.batch, deploy=True), phase=TEST, seed=SEED)
    expected = list(net.forward(data=x).values())[0]
    model = export_net(net)
    options = ort.SessionOptions()
    options.intra_op_num_threads = args.threads
    options.inter_op_num_threads = 1
    if args.wait == "passive":
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.log_severity_level = 3
    session = ort.InferenceSession(model.SerializeToString(), options,
                                   providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    got = session.run(None, {name: x})[0]
    forward = timed(lambda: session.run(None, {name: x}), args.warmup, args.iters)
    return {"ort_forward_ms": statistics.median(forward),
            "ort_max_abs_diff": float(abs(got - expected).max()), "onnxruntime": ort.__version__}


def work_torch(args) -> dict:
    import numpy as np
    import torch

    sys.path.insert(0, HERE)
    from torch_models import build_twin

    from caffe_cae.net import TEST, TRAIN, Net

    torch.set_num_threads(args.threads)
    x = torch.from_numpy(batch_data(args.batch))
    twin = build_twin(Net(input_net_param(args.model, args.batch), phase=TRAIN, seed=SEED))
    optimizer = twin.optimizer(solver_param(args.model))
    with torch.no_grad():
        first_loss = float(twin(x)[0])

    def step():
        optimizer.zero_grad(set_to_none=False)
        loss, _ = twin(x)
        loss.backward()
        optimizer.step()

    train = timed(step, args.warmup, args.iters)
    rss = peak_rss_mib()
    deploy = build_twin(Net(input_net_param(args.model, args.batch, deploy=True), phase=TEST,
                            seed=SEED))

    def forward():
        with torch.inference_mode():
            deploy(x)

    forward_ms = timed(forward, args.warmup, args.iters)
    return {"torch_train_ms": statistics.median(train),
            "torch_forward_ms": statistics.median(forward_ms), "torch_peak_rss_mib": rss,
            "torch_first_loss": first_loss, "torch": torch.__version__,
            "torch_threads": torch.get_num_threads(), "numpy_in_torch": np.__version__}


def work_layers(args) -> dict:
    from caffe_cae.commands.timing import benchmark
    from caffe_cae.net import TRAIN, Net

    net = Net(input_net_param(args.model, args.batch), phase=TRAIN, seed=SEED)
    net.blobs["data"].data[...] = batch_data(args.batch)
    benchmark(net, args.warmup)  # warm-up
    result = benchmark(net, args.iters)
    return {"layers": [[name, layer.type, f, b] for name, layer, f, b in zip(
                net.layer_names, net.layers, result["forward"], result["backward"])],
            "forward_pass": result["forward_pass"], "backward_pass": result["backward_pass"],
            "forward_backward": result["forward_backward"]}


WORKERS = {"interp": work_interp, "onnx": work_onnx, "torch": work_torch, "layers": work_layers}


# ------------------------------------------------------------------------------------------
# the driver


def torch_available() -> bool:
    try:
        import importlib.util

        return importlib.util.find_spec("torch") is not None
    except (ImportError, ValueError):
        return False


def run_worker(kind: str, model: str, args) -> dict:
    env = dict(os.environ)
    for var in THREAD_VARS:
        env[var] = str(args.threads)
    if kind in ("interp", "layers") and args.blas_threads:
        # the interpreter's BLAS alone; its element-wise threads stay at --threads
        env["OPENBLAS_NUM_THREADS"] = env["MKL_NUM_THREADS"] = str(args.blas_threads)
        env["CAFFE_CAE_THREADS"] = str(args.threads)
    if args.wait == "passive":
        env.update(PASSIVE_WAIT)
    env["CAFFE_CAE_ENGINE"] = args.engine
    # the workers time this checkout's caffe_cae, not whichever one is installed
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [os.path.dirname(HERE),
                                                      env.get("PYTHONPATH")]))
    command = [sys.executable, os.path.abspath(__file__), "--worker", kind, "--models", model,
               "--batch", str(args.batch), "--iters", str(args.iters), "--warmup",
               str(args.warmup), "--threads", str(args.threads), "--clock", args.clock,
               "--wait", args.wait]
    proc = subprocess.run(command, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["?"]
        return {"error": f"{kind} worker failed: {tail[0]}"}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def merge(into: dict, new: dict) -> None:
    """Add a worker's result: timings keep the smaller median (noise only adds time)."""
    for key, value in new.items():
        if key.endswith("_ms") and key in into:
            into[key] = min(into[key], value)
        else:
            into.setdefault(key, value)


def machine_line(threads: int) -> str:
    cpu = platform.processor() or "?"
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return (f"{cpu}, {os.cpu_count()} logical CPUs, {threads} threads per framework, "
            f"load average {load:.1f} at start; Python {platform.python_version()}, "
            f"{platform.system()} {platform.release()}")


def fmt(value, spec=".1f", missing="n/a"):
    return missing if value is None else format(value, spec)


def table(rows: dict, args, have_torch: bool) -> str:
    lines = [
        f"Batch {args.batch}, float32, code size {DIM}; median of {args.iters} iterations "
        f"after {args.warmup} warm-up ({args.clock} clock, {args.wait} thread waits"
        + (f", interpreter BLAS on {args.blas_threads} thread(s)" if args.blas_threads else "")
        + f", {args.engine} engine), best of {args.repeat} run(s).",
        "",
        "| model | params | train ms/iter | PyTorch train ms | ratio (ours/PyTorch) | fwd ms "
        "| ORT fwd ms | fwd img/s | ORT img/s | ORT speed-up | PyTorch fwd ms | peak RSS MiB "
        "| loss check |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    no_torch = "n/a (no torch)"
    for model, r in rows.items():
        if "error" in r:
            lines.append(f"| {model} | {r['error']} |" + " |" * 12)
            continue
        t_train, t_fwd = r.get("torch_train_ms"), r.get("torch_forward_ms")
        ort = r.get("ort_forward_ms")
        ratio = r["train_ms"] / t_train if t_train else None
        if "torch_first_loss" in r:
            rel = abs(r["first_loss"] - r["torch_first_loss"]) / max(abs(r["first_loss"]), 1e-12)
            check = f"{'ok' if rel < 1e-3 else 'DIFFERS'} (rel {rel:.1e})"
        else:
            check = r.get("torch_error", no_torch if not have_torch else "n/a")
        batch = args.batch
        lines.append(
            f"| {model} | {r['params']:,} | {fmt(r['train_ms'])} "
            f"| {fmt(t_train, missing=no_torch if not have_torch else 'n/a')} "
            f"| {fmt(ratio, '.2f', no_torch if not have_torch else 'n/a')} "
            f"| {fmt(r['forward_ms'])} | {fmt(ort)} | {batch / r['forward_ms'] * 1e3:,.0f} "
            f"| {fmt(batch / ort * 1e3 if ort else None, ',.0f')} "
            f"| {fmt(r['forward_ms'] / ort if ort else None, '.1f')}x "
            f"| {fmt(t_fwd, missing=no_torch if not have_torch else 'n/a')} "
            f"| {r['peak_rss_mib']:.0f} | {check} |")
    return "\n".join(lines) + "\n"


def layers_table(result: dict, model: str, args) -> str:
    total = result["forward_backward"]
    lines = [f"Per-layer time of {model} (TRAIN net, batch {args.batch}, {args.threads} threads, "
             f"{args.engine} engine, mean of {args.iters} iterations, wall clock, as "
             f"`caffe-cae time`):", "",
             "| layer | type | forward ms | backward ms | share |", "|---|---|---:|---:|---:|"]
    rows = sorted(result["layers"], key=lambda r: -(r[2] + r[3]))
    for name, kind, f, b in rows:
        lines.append(f"| {name} | {kind} | {f:.2f} | {b:.2f} | {(f + b) / total:.0%} |")
    lines.append(f"| **total** | | {result['forward_pass']:.1f} | {result['backward_pass']:.1f} "
                 f"| forward-backward {total:.1f} ms |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default=",".join(MODELS),
                        help=f"comma-separated (default: {','.join(MODELS)})")
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--iters", type=int, default=20, help="timed iterations (median)")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--clock", choices=sorted(CLOCKS), default="wall",
                        help="wall-clock time (default) or this process's CPU time (all its "
                             "threads; robust on a busy machine with --threads 1)")
    parser.add_argument("--blas-threads", type=int, default=0, metavar="N",
                        help="BLAS threads of the interpreter only (default: --threads); "
                             "e.g. 1 on an oversubscribed machine, see NOTES.md")
    parser.add_argument("--wait", choices=("spin", "passive"), default="spin",
                        help="spin: every framework keeps its own idle-thread policy (default); "
                             "passive: idle threads sleep at once (see PASSIVE_WAIT)")
    parser.add_argument("--repeat", type=int, default=1,
                        help="run every worker this many times, interleaved; keep the best")
    parser.add_argument("--engine", choices=("fast", "reference"), default="fast",
                        help="the interpreter's engine (caffe_cae.engine; default fast)")
    parser.add_argument("--no-torch", action="store_true", help="skip PyTorch even if installed")
    parser.add_argument("--layers", metavar="MODEL",
                        help="print the per-layer forward/backward table of MODEL instead")
    parser.add_argument("--output", help="also write the Markdown to this file")
    parser.add_argument("--worker", choices=sorted(WORKERS), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    models = [m for m in args.models.split(",") if m]
    unknown = [m for m in models if m not in MODELS]
    if unknown:
        parser.error(f"unknown model(s) {', '.join(unknown)}; choose from {', '.join(MODELS)}")

    if args.worker:
        global CLOCK
        CLOCK = CLOCKS[args.clock]
        args.model = models[0]
        print(json.dumps(WORKERS[args.worker](args)))
        return 0

    machine = machine_line(args.threads)
    if args.layers:
        result = run_worker("layers", args.layers, args)
        if "error" in result:
            print(result["error"], file=sys.stderr)
            return 1
        text = f"Machine: {machine}\n\n" + layers_table(result, args.layers, args)
    else:
        have_torch = torch_available() and not args.no_torch
        rows: dict[str, dict] = {}
        for model in models:
            merged: dict = {}
            kinds = ["interp", "onnx"] + (["torch"] if have_torch else [])
            for _ in range(args.repeat):
                for kind in kinds:
                    result = run_worker(kind, model, args)
                    if "error" in result:
                        merged.setdefault(f"{kind}_error", result["error"])
                    else:
                        merge(merged, result)
            if "train_ms" not in merged:
                merged = {"error": merged.get("interp_error", "interpreter failed")}
            rows[model] = merged
            print(f"{model}: " + json.dumps(merged), file=sys.stderr)
        versions = next((r for r in rows.values() if "error" not in r), {})
        text = (f"Machine: {machine}\n"
                f"numpy {versions.get('numpy', '?')}, onnxruntime {versions.get('onnxruntime', '?')}, "
                f"PyTorch {versions.get('torch', 'not installed' if not have_torch else '?')}\n\n"
                + table(rows, args, have_torch))
    print(text)
    if args.output:
        with open(args.output, "w") as handle:
            handle.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
