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
