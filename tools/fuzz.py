"""A long fuzz run over every reader and entry point (the test suite runs a bounded share).

    python tools/fuzz.py --cases 10000 [--seed 0] [--json results.json] [--show 20]

Each case mutates one seed file (a small auto-encoder's prototxt, solver, list file, HDF5
data/weights/codes/solverstate files, caffemodel, solverstate, ONNX model) and runs one entry
point on it in a forked child with a memory and time budget.  It prints the counts per outcome
and the distinct failure places; the exit status is 1 when anything failed.
"""
from __future__ import annotations

import argparse
import collections
import json
import os
import random
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", help="write every failing case (and the counts) to this file")
    parser.add_argument("--show", type=int, default=30, help="failure places to print")
    parser.add_argument("--file", help="mutate only this seed file")
    parser.add_argument("--all", action="store_true", help="write every outcome to --json, not only the failures")
    args = parser.parse_args()

    from caffe_cae.testing import fuzz
    from caffe_cae.testing.fuzz import oracle

    fuzz.warm_up()
    rng = random.Random(args.seed)
    counts: collections.Counter = collections.Counter()
    by_target: collections.Counter = collections.Counter()
    places: dict[str, list] = collections.defaultdict(list)
    failures = []
    start = time.time()
    for i in range(args.cases):
        while True:
            case, files = fuzz.draw_case(rng)
            if not args.file or case.file == args.file:
                break
        outcome = fuzz.run_case(case, files)
        counts[outcome.kind] += 1
        by_target[case.target] += 1
        if outcome.failed:
            key = f"{outcome.kind} {outcome.place or outcome.detail[:80]}"
            places[key].append(outcome)
        if outcome.failed or args.all:
            failures.append({"index": i, **outcome.__dict__})
        if (i + 1) % 500 == 0:
            print(f"{i + 1} cases, {time.time() - start:.0f} s: {dict(counts)}", file=sys.stderr, flush=True)
    elapsed = time.time() - start
    print(f"{args.cases} cases in {elapsed:.0f} s (seed {args.seed}): " +
          ", ".join(f"{k} {counts[k]}" for k in ("ok", "error", *oracle.FAILURES)))
    print(f"distinct failure places: {len(places)}")
    for key, outcomes in sorted(places.items(), key=lambda kv: -len(kv[1]))[:args.show]:
        first = outcomes[0]
        print(f"  {len(outcomes):4d}  {key}\n        {first.case['file']} / {first.case['mutation'][:90]} / "
              f"{first.case['target']}\n        {first.detail[:200]}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"counts": dict(counts), "seconds": elapsed, "outcomes" if args.all else "failures": failures},
                      f, indent=1)
    return 1 if any(counts[k] for k in oracle.FAILURES) else 0


if __name__ == "__main__":
    sys.exit(main())
