"""``report.md`` of a reproduce run: a Table-4-style table side by side with the paper's numbers,
the loss trend of every run, the qualitative findings checked on our numbers, and the figures.

Input: one record (a JSON-able dict) per trained run, as :mod:`.reproduce` writes to
``runs/<name>/result.json``::

    model, dims, run, iters, seconds (training), seed, shuffled, threads, machine, caffe_cae,
    losses: {"sce": output name, "euclidean": output name},
    train_first / train_last / test_first / test_last: {output: value},
    eval: CodeEvaluation.as_dict() + protocols: {name: protocol.evaluate(...)},
    figures: {kind: path relative to the report}

Runs shorter than the paper's 50000 iterations are marked "not comparable": the losses and codes
of a partly trained net say nothing about the paper's numbers.  An interim report (a sweep still
going) also lists the unfinished runs: the iteration reached and the newest test losses.
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


def protocol_error(record: dict, protocol: str, kind: str) -> float | None:
    """A run's error (%) under ``protocol``; records from before the protocols count as sklearn's."""
    protocols = record["eval"].get("protocols")
    if protocols is None:
        return record["eval"].get(f"{kind}_error") if protocol == "sklearn" else None
    return protocols.get(protocol, {}).get(kind, {}).get("error")


def protocols_of(records: Sequence[dict]) -> list[str]:
    seen = []
    for r in records:
        for name in r["eval"].get("protocols", {"sklearn": None}):
            if name not in seen:
                seen.append(name)
    return seen


def summary_rows(records: Sequence[dict]) -> list[dict]:
    """One row per (model, dims): our means over runs and the paper's Table 4 values."""
    rows = []
    names = protocols_of(records)
    for (model, dims), runs in group_runs(records).items():
        ours = {
            "train": (_mean(_loss(r, "train", "sce") for r in runs), _mean(_loss(r, "train", "euclidean") for r in runs)),
            "test": (_mean(_loss(r, "test", "sce") for r in runs), _mean(_loss(r, "test", "euclidean") for r in runs)),
            "errors": {p: {k: _mean(protocol_error(r, p, k) for r in runs) for k in ("linear", "mlp")} for p in names},
            "sparsity": _mean(r["eval"].get("sparsity") for r in runs),
            "sparsity_magnitude": _mean(r["eval"].get("sparsity_magnitude") for r in runs),
            "compression": _mean(r["eval"].get("compression") for r in runs),
            "seconds": _mean(r.get("seconds") for r in runs),
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


def comparable(iters: Sequence[int], paper_iters: int) -> str:
    short = [i for i in iters if i < paper_iters]
    return f"**not comparable below {paper_iters} iterations**" if short else "yes"


def table4_markdown(rows: Sequence[dict], paper_iters: int = 50000) -> str:
    names = list(rows[0]["ours"]["errors"]) if rows else []
    error_heads = "".join(f"| Linear error %, {p} protocol (paper) | MLP error %, {p} protocol (paper) " for p in names)
    head = ("| Model | Dims | Runs x iters (paper 3 x {pi}) | Comparable | Train loss SCE; Eucl. (paper) "
            "| Test loss SCE; Eucl. (paper) " + error_heads + "| Sparsity % (paper) | Sparsity % of magnitudes (paper) | Compression % (paper) |\n"
            "|---|---|---|---|---|---|" + "---|---|" * len(names) + "---|---|---|\n").replace("{pi}", str(paper_iters))
    lines = []
    for row in rows:
        o, p = row["ours"], row["paper"]
        title = paper.MODEL_TITLES.get(row["model"], row["model"]).split(" (")[0]
        iters = "/".join(str(i) for i in row["iters"])
        errors = "".join(f"| {_num(o['errors'][n]['linear'])} ({_num(p['linear'])}) "
                         f"| {_num(o['errors'][n]['mlp'])} ({_num(p['mlp'])}) " for n in names)
        lines.append(
            f"| {title} | {row['dims']} | {row['runs']} x {iters} | {comparable(row['iters'], paper_iters)} "
            f"| {_pair(*o['train'])} ({_pair(*p['train'])}) | {_pair(*o['test'])} ({_pair(*p['test'])}) "
            f"{errors}"
            f"| {_num(o['sparsity'], 1)} ({_num(p['sparsity'], 1)}) "
            f"| {_num(o['sparsity_magnitude'], 1)} ({_num(p['sparsity'], 1)}) "
            f"| {_num(o['compression'], 1)} ({_num(p['compression'], 0)}) |"
        )
    return head + "\n".join(lines) + "\n"


def times_markdown(rows: Sequence[dict], paper_iters: int = 50000) -> str:
    """Our training minutes per run next to the paper's Table 5 (minutes per 50000 iterations)."""
    systems = list(paper.TABLE5_MINUTES)
    head = ("| Model | Dims | Iterations | Minutes per run (ours) | Per 50000 iterations (ours, scaled) | "
            + " | ".join(f"Table 5: {name}" for name in systems) + " |\n|---|---|---|---|---|"
            + "---|" * len(systems) + "\n").replace("50000", str(paper_iters))
    lines = []
    for row in rows:
        seconds = row["ours"].get("seconds")
        iters = max(row["iters"])
        minutes = None if seconds is None else seconds / 60.0
        scaled = None if minutes is None else minutes * paper_iters / iters
        theirs = " | ".join(_num(paper.TABLE5_MINUTES[name].get(row["model"]), 0) for name in systems)
        lines.append(f"| {row['model']} | {row['dims']} | {iters} | {_num(minutes, 1)} | {_num(scaled, 0)} | {theirs} |")
    return head + "\n".join(lines) + "\n"


def runs_markdown(records: Sequence[dict]) -> str:
    """Seed, threads, machine, code version, time and the JSON of every run."""
    lines = ["| Run | Iters | Seed | Threads (interpreter; BLAS) | Machine | caffe-cae | Training min | Shuffled | Result |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in records:
        threads = r.get("threads") or {}
        blas = ", ".join(f"{k} {v}" for k, v in threads.items() if k != "interpreter") or "-"
        host = r.get("machine") or {}
        machine = f"{host.get('cpu', '-')} ({host.get('cpus', '-')} CPUs), {host.get('host', '-')}"
        code = r.get("caffe_cae") or {}
        version = f"{code.get('version', '-')} {(code.get('commit') or '')[:12]}".strip()
        # A resumed run trained in several sessions, perhaps with different checkouts.
        trained = list(dict.fromkeys((x.get("caffe_cae") or {}).get("commit") or "?"
                                     for x in r.get("sessions", []) if "caffe_cae" in x))
        if trained:
            version += f" (trained by {', '.join(c[:12] for c in trained)})"
        name = f"{r['model']}-{r['dims']}d-run{r['run']}"
        seconds = r.get("seconds")
        lines.append(f"| {name} | {r['iters']} | {r.get('seed', '-')} | {threads.get('interpreter', '-')}; {blas} "
                     f"| {machine} | {version} | {_num(None if seconds is None else seconds / 60, 1)} "
                     f"| {'yes' if r.get('shuffled') else 'no'} | [result.json](runs/{name}/result.json) |")
    return "\n".join(lines) + "\n"


def per_class_markdown(records: Sequence[dict]) -> str:
    """Per-class errors (%, pooled over the folds) of every run, classifier and protocol."""
    lines = []
    for r in records:
        for name, result in r["eval"].get("protocols", {}).items():
            for kind in ("linear", "mlp"):
                entry = result.get(kind) or {}
                if not entry.get("per_class"):
                    continue
                if not lines:
                    classes = entry["classes"]
                    lines = ["| Run | Protocol | Classifier | Average | " + " | ".join(f"digit {c}" for c in classes) + " |",
                             "|---|---|---|---|" + "---|" * len(classes)]
                lines.append(f"| {r['model']} {r['dims']}-D run {r['run']} | {name} | {kind} | {_num(entry['error'])} | "
                             + " | ".join(_num(v) for v in entry["per_class"]) + " |")
    return "\n".join(lines) + "\n" if lines else "- (no per-class errors recorded)\n"


SHUFFLE_NOTE = (
    "Training data is **not shuffled**, as in the authors' files: their `HDF5_DATA` layers have no "
    "`shuffle` (Caffe's default is false), so every epoch (600 iterations of 100 digits) reads the 60000 "
    "training digits in the same order.  That is why the test loss jumps at each epoch end: the last "
    "batches of MNIST's training file (rows 59300-59499) hold digits with about 40 % more ink than "
    "average; plain SGD at a fixed learning rate follows the most recent batches, so right after them the "
    "net reconstructs ordinary digits worse.  Measured on Model 1, 2-D (full test set): test SCE 205 at "
    "iteration 550, 229 at 600 (the epoch end), 198 at 700.  The effect repeats every 600 iterations and "
    "is visible whenever a test falls on an epoch end (e.g. 15000, 30000, 45000); the paper's final test "
    "at 50000 iterations falls 200 iterations after one.\n")
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


def _main_mlp(row: dict) -> float | None:
    """The MLP error the findings use: the paper protocol's when it was run."""
    errors = row["ours"]["errors"]
    chosen = errors.get("paper") or next(iter(errors.values()), {})
    return chosen.get("mlp")


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
        mlp = {m: _main_mlp(r) for m, r in cae.items() if _main_mlp(r) is not None}
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


NONE_FINISHED = "- (no run finished yet)\n"


def pending_markdown(pending: Sequence[dict], resume: str | None = None) -> str:
    """Unfinished runs: the iteration reached, the newest test losses next to the paper's final ones."""
    lines = ["| Run | Iterations reached | State | Newest test loss SCE; Eucl. (at iteration) "
             "| Paper's final test loss SCE; Eucl. | Training min so far |",
             "|---|---|---|---|---|---|"]
    for p in pending:
        latest = p.get("test_latest", {})
        sce, l2 = latest.get("sce"), latest.get("euclidean")
        at = f" ({(sce or l2)[0]})" if sce or l2 else ""
        ours = (f"{_num(sce and sce[1])}; {_num(l2 and l2[1])}" if sce or l2 else "-") + at
        losses = paper.mean_losses(p["model"], p["dims"])
        seconds = p.get("seconds")
        lines.append(f"| {p['name']} | {p['iter']} of {p['iters']} | {p['state']} "
                     f"| {ours} | {_pair(*losses[1]) if losses else '-'} "
                     f"| {_num(None if seconds is None else seconds / 60, 1)} |")
    text = "\n".join(lines) + "\n"
    if resume:
        text += f"\nThey continue from their newest snapshots with `{resume}` (and the other options as before).\n"
    return text


def write_report(path: str | os.PathLike, records: Sequence[dict], settings: dict,
                 figures: Sequence[tuple[str, str]] = (), paper_iters: int = 50000,
                 pending: Sequence[dict] = (), resume: str | None = None) -> str:
    """Write ``report.md``; ``figures``: (caption, relative path) of report-level figures;
    ``pending``: the state of runs not finished yet (an interim report), ``resume``: how to go on."""
    rows = summary_rows(records)
    short = sorted({r["iters"] for r in records if r["iters"] < paper_iters})
    warning = (f"**Not comparable with the paper: these runs trained {', '.join(map(str, short))} iterations, "
               f"the paper {paper_iters}.**  Losses and errors of partly trained nets are reported for "
               f"checking the pipeline only.\n") if short else ""
    if pending:
        warning += (f"**Interim report: {len(records)} of {len(records) + len(pending)} runs finished.**  The "
                    "tables hold the finished runs; the others are listed under \"Runs not finished yet\" "
                    "with the iteration they reached.\n")
    parts = [
        "# Reproduction: deep convolutional auto-encoders on MNIST\n",
        f"Paper: {paper.SOURCE}.  Generated {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC "
        "by `caffe-cae reproduce`.\n",
        warning,
        "## Settings\n",
        "\n".join(f"- {k}: {v}" for k, v in settings.items()) + "\n",
        f"The paper trained {paper_iters} iterations (SGD, batch 100, lr 0.006 fixed, weight decay 0.0005); "
        "runs with fewer iterations are not expected to reach its loss values.  Losses are Caffe's "
        "(sums normalised by the batch size): SCE = SigmoidCrossEntropyLoss, Euclidean = EuclideanLoss.  "
        "Paper values: mean of its three runs (Table 4); compression from Sec. 5.1.\n",
        "## Table 4: ours (paper)\n",
        table4_markdown(rows, paper_iters) if rows else NONE_FINISHED,
        "Errors: average per-class classification error (%) under each classification protocol (see "
        "settings), on the codes of the 10000 test digits.  The **paper** protocol rebuilds the authors' "
        "Matlab one (classify, patternnet + trainscg); the **sklearn** protocol is caffe-cae's earlier "
        "variant.  Sparsity: % of code elements below 30 % of the maximum, read as the paper's expression "
        "(2) is written (signed values: negative elements count as sparse) and on magnitudes (|c| below "
        "30 % of the largest |c|); the paper does not say which it used.\n",
        "## Training time: ours next to the paper's Table 5 (minutes per run)\n",
        times_markdown(rows, paper_iters) if rows else NONE_FINISHED,
        "## Runs\n",
        runs_markdown(records) if records else NONE_FINISHED,
        *(["## Runs not finished yet\n", pending_markdown(pending, resume)] if pending else []),
        "## Training data order\n",
        SHUFFLE_NOTE,
        "## Loss during training\n",
        loss_trend_markdown(records) if records else NONE_FINISHED,
        "## Per-class errors\n",
        per_class_markdown(records),
        "## The paper's findings, checked on these runs\n",
        findings_markdown(rows),
        "## Figures\n",
        "Loss curves: SCE and Euclidean against the iteration; dashed lines are the paper's final values "
        f"(mean of its three runs at {paper_iters} iterations).\n",
    ]
    for caption, rel in figures:
        parts.append(f"### {caption}\n\n![{caption}]({rel})\n")
    for r in records:
        for kind, rel in r.get("figures", {}).items():
            caption = f"{r['model']} {r['dims']}-D run {r['run']}: {kind}"
            parts.append(f"### {caption}\n\n![{caption}]({rel})\n")
    text = "\n".join(p for p in parts if p)
    atomic_write_bytes(path, text.encode("utf-8"))
    return text
