"""The sparsity of every finished run's test codes read both ways, next to the paper's Table 4.

    python tools/code_sparsity.py [--out docs/reproduction]

The paper's expression (2) counts the code elements smaller than 10 / 20 / 30 % of the maximum
(Table 4 gives 30 %).  Read literally on the signed values, a linear code's negative elements
count as sparse; read on magnitudes, only elements near zero do.  The paper does not say which;
this prints both (a Markdown table) so the runs can tell.
"""
from __future__ import annotations

import argparse
import os
import pathlib
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from caffe_cae.experiments import paper_results  # noqa: E402
from caffe_cae.experiments.evaluate import read_codes  # noqa: E402
from caffe_cae.experiments.run import read_json  # noqa: E402
from caffe_cae.experiments.sparsity import sparsity  # noqa: E402

FRACTIONS = (0.1, 0.2, 0.3)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="docs/reproduction", help="the reproduce output folder")
    args = parser.parse_args()
    runs = sorted(pathlib.Path(args.out, "runs").glob("*/result.json"))
    if not runs:
        print(f"{args.out}: no finished runs (runs/*/result.json)", file=sys.stderr)
        return 1
    percents = " / ".join(f"{round(100 * f)}" for f in FRACTIONS)
    print(f"| run | signed, below {percents} % of the max | magnitudes, below {percents} % of the max "
          "| paper (30 %) |\n|---|---|---|---|")
    for path in runs:
        record = read_json(path)
        codes, _, _ = read_codes(path.parent / "codes.h5")
        cells = [" / ".join(f"{sparsity(codes, f, magnitude=m):.1f}" for f in FRACTIONS) for m in (False, True)]
        paper = (paper_results.paper_row(record["model"], record["dims"]) or {}).get("sparsity")
        print(f"| {path.parent.name} | {cells[0]} | {cells[1]} | {'-' if paper is None else paper} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
