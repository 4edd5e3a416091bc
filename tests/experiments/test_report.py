"""report.md: Table 4 side by side with the paper, loss trends, findings checked on our numbers."""
from caffe_cae.experiments import report


def _record(model, dims, mlp, test_sce, run=1):
    return {
        "model": model, "dims": dims, "run": run, "iters": 100, "seconds": 1.0,
        "losses": {"sce": "cross_entropy_loss", "euclidean": "l2_error"},
        "train_first": {"cross_entropy_loss": 500.0, "l2_error": 60.0},
        "train_last": {"cross_entropy_loss": test_sce - 1, "l2_error": 5.0},
        "test_first": {"cross_entropy_loss": 520.0, "l2_error": 61.0},
        "test_last": {"cross_entropy_loss": test_sce, "l2_error": 5.5},
        "eval": {"linear_error": mlp + 2, "mlp_error": mlp, "sparsity": 70.0, "compression": 94.9},
        "figures": {"loss curves": f"runs/{model}-{dims}d-run{run}/loss.png"},
    }


def test_table_has_ours_and_the_papers_values(tmp_path):
    records = [_record("model4", 10, 3.0, 90.0), _record("model4", 10, 5.0, 92.0, run=2)]
    text = report.write_report(tmp_path / "report.md", records, {"iterations": 100})
    row = next(line for line in text.splitlines() if line.startswith("| Model 4 | 10 |"))
    assert "2 x 100" in row
    assert "4.00 (2.89)" in row                  # our mean MLP error over two runs (paper 2.89)
    assert "(82.74; 5.48)" in row                # paper's mean train loss over its three runs
    assert "6.00 (5.06)" in row                  # linear
    assert "| 70.0 (73.7) | - (73.7) |" in row   # sparsity; no magnitude reading in these records
    assert "![model4 10-D run 2: loss curves](runs/model4-10d-run2/loss.png)" in text
    assert (tmp_path / "report.md").read_text() == text


def test_loss_trend_flags_a_falling_loss():
    text = report.loss_trend_markdown([_record("model4", 10, 3.0, 90.0), _record("model1", 10, 3.0, 600.0)])
    lines = text.splitlines()
    assert lines[2].endswith("| yes |") and lines[3].endswith("| NO |")


def test_findings_compare_model3_and_model4():
    agree = report.summary_rows([_record("model3", 10, 9.0, 50.0), _record("model4", 10, 3.0, 80.0)])
    text = report.findings_markdown(agree)
    assert "lowest test loss: **model3** (paper: model3) - agrees" in text
    assert "worst MLP error: **model3** (paper: model3) - agrees" in text
    assert "best MLP error among model3, model4: **model4**" in text and "differs" not in text
    differ = report.summary_rows([_record("model3", 10, 2.0, 90.0), _record("model4", 10, 3.0, 80.0)])
    assert text != report.findings_markdown(differ) and "differs" in report.findings_markdown(differ)
    alone = report.findings_markdown(report.summary_rows([_record("model4", 2, 3.0, 80.0)]))
    assert "only model4 run" in alone


def _full_record(model, dims, iters):
    record = _record(model, dims, 3.0, 90.0)
    record.update(iters=iters, seconds=1200.0, seed=1012, shuffled=False,
                  threads={"interpreter": 1, "openblas": 1}, machine={"cpu": "Xeon", "cpus": 2, "host": "box"},
                  caffe_cae={"version": "0.1.0", "commit": "0123456789abcdef"})
    per = {"error": 2.5, "per_class": [1.0] * 9 + [16.0], "classes": list(range(10)), "per_fold": [2.5] * 10}
    record["eval"]["protocols"] = {"paper": {"linear": dict(per, error=6.0), "mlp": per},
                                   "sklearn": {"linear": dict(per, error=5.0), "mlp": dict(per, error=3.0)}}
    return record


def test_both_protocols_the_comparability_marker_times_and_runs():
    short, full = _full_record("model4", 10, 2000), _full_record("model1", 10, 50000)
    rows = report.summary_rows([short, full])
    table = report.table4_markdown(rows)
    assert "Linear error %, paper protocol (paper)" in table and "MLP error %, sklearn protocol (paper)" in table
    model4 = next(line for line in table.splitlines() if line.startswith("| Model 4 |"))
    assert "| 1 x 2000 | **not comparable below 50000 iterations** |" in model4
    assert "| 6.00 (5.06) | 2.50 (2.89) | 5.00 (5.06) | 3.00 (2.89) |" in model4
    assert "| 1 x 50000 | yes |" in next(line for line in table.splitlines() if line.startswith("| Model 1 |"))
    times = report.times_markdown(rows)
    # 20 minutes for 2000 iterations -> 500 per 50000; Table 5: 758 min on Hodgkin's CPUs for Model 4.
    assert "| model4 | 10 | 2000 | 20.0 | 500 | 758 | 142 | 60 |" in times
    runs = report.runs_markdown([short])
    assert "| model4-10d-run1 | 2000 | 1012 | 1; openblas 1 | Xeon (2 CPUs), box | 0.1.0 0123456789ab | 20.0 | no " \
           "| [result.json](runs/model4-10d-run1/result.json) |" in runs
    per_class = report.per_class_markdown([short])
    assert "| model4 10-D run 1 | paper | mlp | 2.50 | 1.00 |" in per_class and "| 16.00 |" in per_class


def test_report_says_the_data_is_not_shuffled_and_warns_below_the_papers_iterations(tmp_path):
    text = report.write_report(tmp_path / "report.md", [_full_record("model4", 10, 2000)], {})
    assert "Not comparable with the paper: these runs trained 2000 iterations, the paper 50000" in text
    assert "Training data is **not shuffled**, as in the authors' files" in text
    assert "test loss jumps at each epoch end" in text
    assert "## Training time: ours next to the paper's Table 5" in text
    full = report.write_report(tmp_path / "full.md", [_full_record("model4", 10, 50000)], {})
    assert "Not comparable with the paper" not in full


def test_an_interim_report_lists_the_unfinished_runs_next_to_the_papers_final_losses(tmp_path):
    pending = [{"name": "model3-10d-run1", "model": "model3", "dims": 10, "iter": 20000, "iters": 50000, "state": "training",
                "test_latest": {"sce": [20000, 91.5], "euclidean": [20000, 6.25]}, "seconds": 3000.0},
               {"name": "model5-10d-run1", "model": "model5", "dims": 10, "iter": 0, "iters": 50000, "state": "not started",
                "test_latest": {}, "seconds": None}]
    text = report.write_report(tmp_path / "report.md", [_full_record("model4", 10, 50000)], {}, pending=pending,
                               resume="caffe-cae reproduce --out x")
    assert "**Interim report: 1 of 3 runs finished.**" in text
    assert "| model3-10d-run1 | 20000 of 50000 | training | 91.50; 6.25 (20000) | 52.47; 0.75 | 50.0 |" in text
    assert "| model5-10d-run1 | 0 of 50000 | not started | - | " in text
    assert "They continue from their newest snapshots with `caffe-cae reproduce --out x` (and the other" in text
    assert "| Model 4 | 10 | 1 x 50000 | yes |" in text
    final = report.write_report(tmp_path / "final.md", [_full_record("model4", 10, 50000)], {})
    assert "Interim report" not in final and "Runs not finished yet" not in final


def test_a_report_before_any_run_finished_says_so_instead_of_empty_tables(tmp_path):
    pending = [{"name": "model1-10d-run1", "model": "model1", "dims": 10, "iter": 5000, "iters": 50000, "state": "training",
                "test_latest": {"sce": [5000, 112.7]}, "seconds": 600.0}]
    text = report.write_report(tmp_path / "report.md", [], {}, pending=pending)
    assert "**Interim report: 0 of 1 runs finished.**" in text
    assert text.count("- (no run finished yet)") == 4 and "| Model | Dims |" not in text
    assert "| model1-10d-run1 | 5000 of 50000 | training | 112.70; - (5000) |" in text   # no Euclidean value yet


def test_the_runs_table_names_the_code_of_every_training_session():
    record = _full_record("model4", 10, 50000)
    record["sessions"] = [{"from": 0, "to": 100, "caffe_cae": {"version": "0.1.0", "commit": "aaaaaaaaaaaaaaaa"}},
                          {"from": 100, "to": 200, "caffe_cae": {"version": "0.1.0", "commit": "bbbbbbbbbbbbbbbb"}},
                          {"from": 200, "to": 300, "caffe_cae": {"version": "0.1.0", "commit": "bbbbbbbbbbbbbbbb"}}]
    row = report.runs_markdown([record]).splitlines()[2]
    assert "| 0.1.0 0123456789ab (trained by aaaaaaaaaaaa, bbbbbbbbbbbb) |" in row
    record["sessions"] = [{"from": 0, "to": 300}]      # sessions from before the commit was recorded
    assert "trained by" not in report.runs_markdown([record])
