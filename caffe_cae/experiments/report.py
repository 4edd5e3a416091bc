"""``report.md`` of a reproduce run: a Table-4-style table side by side with the paper's numbers,
the loss trend of every run, the qualitative findings checked on our numbers, and the figures.

Input: one record (a JSON-able dict) per trained run, as :mod:`.reproduce` writes to
``runs/<name>/result.json``::

    model, dims, run, iters, seconds,
    losses: {"sce": output name, "euclidean": output name},
    train_first / train_last / test_first / test_last: {output: value},
    eval: CodeEvaluation.as_dict(),
    figures: {kind: path relative to the report}
"""
from __future__ import annotations

import datetime
import os
import statistics
from collections import OrderedDict
from typing import Iterable, Sequence

from caffe_cae.experiments import paper_results as paper
from caffe_cae.fileio import atomic_write_bytes


def _mean(values: Iterable[float | None]) -> float | None:
    values = [v for v in values if v is not None]
    return statistics.fmean(values) if values else None


def _num(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _pair(sce: float | None, l2: float | None) -> str:
    return "-" if sce is None or l2 is None else f"{sce:.2f}; {l2:.2f}"


def _loss(record: dict, phase: str, kind: str) -> float | None:
    name = record.get("losses", {}).get(kind)
    return record.get(f"{phase}_last", {}).get(name) if name else None


def group_runs(records: Sequence[dict]) -> "OrderedDict[tuple, list[dict]]":
    """Records grouped by (model, dims), in the order they first appear."""
    groups: OrderedDict = OrderedDict()
    for record in records:
        groups.setdefault((record["model"], record["dims"]), []).append(record)
    return groups


def summary_rows(records: Sequence[dict]) -> list[dict]:
    """One row per (model, dims): our means over runs and the paper's Table 4 values."""
    rows = []
    for (model, dims), runs in group_runs(records).items():
        ours = {
            "train": (_mean(_loss(r, "train", "sce") for r in runs), _mean(_loss(r, "train", "euclidean") for r in runs)),
            "test": (_mean(_loss(r, "test", "sce") for r in runs), _mean(_loss(r, "test", "euclidean") for r in runs)),
            "linear": _mean(r["eval"].get("linear_error") for r in runs),
            "mlp": _mean(r["eval"].get("mlp_error") for r in runs),
            "sparsity": _mean(r["eval"].get("sparsity") for r in runs),
            "compression": _mean(r["eval"].get("compression") for r in runs),
        }
        published = paper.paper_row(model, dims) or {}
        losses = paper.mean_losses(model, dims)
        theirs = {
            "train": losses[0] if losses else (None, None),
            "test": losses[1] if losses else (None, None),
            "linear": published.get("linear"), "mlp": published.get("mlp"),
            "sparsity": published.get("sparsity"),
            "compression": paper.COMPRESSION.get(model, paper.COMPRESSION.get(dims)),
        }
        rows.append({"model": model, "dims": dims, "runs": len(runs),
                     "iters": sorted({r["iters"] for r in runs}), "ours": ours, "paper": theirs})
    return rows


def table4_markdown(rows: Sequence[dict]) -> str:
    head = ("| Model | Dims | Runs x iters | Train loss SCE; Eucl. (paper) | Test loss SCE; Eucl. (paper) "
            "| Linear error % (paper) | MLP error % (paper) | Sparsity % (paper) | Compression % (paper) |\n"
            "|---|---|---|---|---|---|---|---|---|\n")
    lines = []
    for row in rows:
        o, p = row["ours"], row["paper"]
        title = paper.MODEL_TITLES.get(row["model"], row["model"]).split(" (")[0]
        iters = "/".join(str(i) for i in row["iters"])
        lines.append(
            f"| {title} | {row['dims']} | {row['runs']} x {iters} "
            f"| {_pair(*o['train'])} ({_pair(*p['train'])}) | {_pair(*o['test'])} ({_pair(*p['test'])}) "
            f"| {_num(o['linear'])} ({_num(p['linear'])}) | {_num(o['mlp'])} ({_num(p['mlp'])}) "
            f"| {_num(o['sparsity'], 1)} ({_num(p['sparsity'], 1)}) "
            f"| {_num(o['compression'], 1)} ({_num(p['compression'], 0)}) |"
        )
    return head + "\n".join(lines) + "\n"


def loss_trend_markdown(records: Sequence[dict]) -> str:
    lines = ["| Run | Iters | Train SCE first -> last | Test SCE first -> last | Test Eucl. first -> last | Falling |",
             "|---|---|---|---|---|---|"]
    for r in records:
        sce, l2 = r["losses"].get("sce"), r["losses"].get("euclidean")
        def arrow(phase: str, name: str | None) -> str:
            if not name:
                return "-"
            first, last = r.get(f"{phase}_first", {}).get(name), r.get(f"{phase}_last", {}).get(name)
            return f"{_num(first)} -> {_num(last)}"
        main = sce or next(iter(r.get("test_last", {})), None)
        first, last = r.get("test_first", {}).get(main), r.get("test_last", {}).get(main)
        falling = "-" if first is None or last is None else ("yes" if last < first else "NO")
        lines.append(f"| {r['model']} {r['dims']}-D run {r['run']} | {r['iters']} | {arrow('train', sce)} "
                     f"| {arrow('test', sce)} | {arrow('test', l2)} | {falling} |")
    return "\n".join(lines) + "\n"


def findings_markdown(rows: Sequence[dict]) -> str:
    """The 2019 paper's qualitative claims, checked on our numbers where the models were run."""
    out = []
    by_dims: dict[int, dict[str, dict]] = {}
    for row in rows:
        by_dims.setdefault(row["dims"], {})[row["model"]] = row
    for dims, models in sorted(by_dims.items()):
        cae = {m: r for m, r in models.items() if m.startswith("model")}
        if len(cae) < 2:
            out.append(f"- {dims}-D: only {', '.join(models)} run; the comparisons need at least two of Models 1-5.")
            continue
        test_sce = {m: r["ours"]["test"][0] for m, r in cae.items() if r["ours"]["test"][0] is not None}
        mlp = {m: r["ours"]["mlp"] for m, r in cae.items() if r["ours"]["mlp"] is not None}
        lowest = min(test_sce, key=test_sce.get) if test_sce else None
        worst = max(mlp, key=mlp.get) if mlp else None
        best = min(mlp, key=mlp.get) if mlp else None
        if "model3" in cae:
            out.append(f"- {dims}-D: lowest test loss: **{lowest}** (paper: model3) "
                       f"{'- agrees' if lowest == 'model3' else '- differs'}; "
                       f"worst MLP error: **{worst}** (paper: model3) {'- agrees' if worst == 'model3' else '- differs'}.")
        if "model4" in cae:
            out.append(f"- {dims}-D: best MLP error among {', '.join(sorted(cae))}: **{best}** "
                       f"(paper: model4 best of all CAEs) {'- agrees' if best == 'model4' else '- differs'}.")
    return "\n".join(out) + "\n" if out else "- (no comparison possible with the models run)\n"


def write_report(path: str | os.PathLike, records: Sequence[dict], settings: dict,
                 figures: Sequence[tuple[str, str]] = ()) -> str:
    """Write ``report.md``; ``figures``: (caption, relative path) of report-level figures."""
    rows = summary_rows(records)
    parts = [
        "# Reproduction: deep convolutional auto-encoders on MNIST\n",
        f"Paper: {paper.SOURCE}.  Generated {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC "
        "by `caffe-cae reproduce`.\n",
        "## Settings\n",
        "\n".join(f"- {k}: {v}" for k, v in settings.items()) + "\n",
        "The paper trained 50000 iterations (SGD, batch 100, lr 0.006 fixed, weight decay 0.0005); "
        "runs with fewer iterations are not expected to reach its loss values.  Losses are Caffe's "
        "(sums normalised by the batch size).  Paper values: mean of its three runs (Table 4); "
        "compression from Sec. 5.1.\n",
        "## Table 4: ours (paper)\n",
        table4_markdown(rows),
        "Errors: average per-class classification error, cross-validated (folds: see settings; the "
        "paper used 10) on the codes of the 10000 test digits; linear = LDA (Matlab `classify`), MLP = one sigmoid hidden layer "
        "(14/42/66 units), softmax output.  Sparsity: % of code elements below 30 % of the maximum.\n",
        "## Loss during training\n",
        loss_trend_markdown(records),
        "## The paper's findings, checked on these runs\n",
        findings_markdown(rows),
        "## Figures\n",
    ]
    for caption, rel in figures:
        parts.append(f"### {caption}\n\n![{caption}]({rel})\n")
    for r in records:
        for kind, rel in r.get("figures", {}).items():
            caption = f"{r['model']} {r['dims']}-D run {r['run']}: {kind}"
            parts.append(f"### {caption}\n\n![{caption}]({rel})\n")
    text = "\n".join(parts)
    atomic_write_bytes(path, text.encode("utf-8"))
    return text
