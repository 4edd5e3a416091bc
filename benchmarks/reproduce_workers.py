"""Wall time of ``caffe-cae reproduce`` for R independent runs: one after another vs. N worker processes.

    python benchmarks/reproduce_workers.py                    # 4 runs of Model 1, 2-D, 60 iterations
    python benchmarks/reproduce_workers.py --runs 4 --iters 100 --workers 2 --model model4

Both sweeps train the same runs (same seeds, 1 thread per run) on a synthetic MNIST-shaped data
set (random digits, 600 train / 200 test; nothing downloaded) with the figures off and the
sklearn protocol only, so the time is mostly training.  The script checks that both sweeps
learned the same weights bit for bit and prints the wall times and the speed-up.  Run it on a
quiet machine: other processes on the cores make both numbers worse and the ratio noisy.
"""
from __future__ import annotations

import argparse
import os
import pathlib
import sys
import tempfile
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

from caffe_cae import weights  # noqa: E402
from caffe_cae.experiments import provenance, reproduce  # noqa: E402
from tests.experiments.fake_mnist import fake_spec, fake_splits, write_idx_dir  # noqa: E402


def learned(path: pathlib.Path) -> list:
    return [(layer.name, [b.SerializeToString() for b in layer.blobs])
            for layer in weights.read_net_binary(path).layer if layer.blobs]


def sweep(root: pathlib.Path, args, workers: int) -> float:
    splits = fake_splits(seed=7, counts=(("train", 600), ("test", 200)))
    idx = write_idx_dir(root / "idx", splits)
    settings = reproduce.Settings(
        out=root / "out", models=[args.model], dims=[2], runs=args.runs, iters=args.iters,
        test_every=args.iters, test_iters=2, folds=2, mlp_max_iter=20, protocols=["sklearn"],
        figures=False, progress=False, download=False, from_dir=str(idx), spec=fake_spec(splits),
        workers=workers, threads=1)
    started = time.perf_counter()
    reproduce.reproduce(settings)
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="model1")
    parser.add_argument("--runs", type=int, default=4)
    parser.add_argument("--iters", type=int, default=60)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = pathlib.Path(tmp)
        sequential = sweep(root / "sequential", args, 1)
        parallel = sweep(root / "workers", args, args.workers)
        for k in range(1, args.runs + 1):
            name = f"{args.model}-2d-run{k}/snap_iter_{args.iters}.caffemodel"
            if learned(root / "sequential/out/runs" / name) != learned(root / "workers/out/runs" / name):
                print(f"MISMATCH: {name} differs between the sweeps")
                return 1
    machine = provenance.machine()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"{machine['cpu']}, {machine['cpus']} CPUs, load average {load:.1f} at the end")
    print(f"{args.runs} runs of {args.model} 2-D x {args.iters} iterations, 1 thread per run:")
    print(f"  sequential:           {sequential:7.1f} s")
    print(f"  --workers {args.workers}:          {parallel:7.1f} s   ({sequential / parallel:.2f}x faster)")
    print("  weights: identical in both sweeps")
    return 0


if __name__ == "__main__":
    sys.exit(main())
