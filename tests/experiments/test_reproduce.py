"""reproduce end to end on a tiny fake MNIST: every stage's files, the report, resuming."""
import json

import h5py
import pytest

from caffe_cae.errors import CaffeCaeError
from caffe_cae.experiments import reproduce
from tests.experiments.fake_mnist import fake_spec, fake_splits, write_idx_dir


def _settings(tmp_path, **overrides):
    splits = fake_splits(counts=(("train", 30), ("test", 40)))
    fields = dict(out=tmp_path / "out", models=["model4"], dims=[2], iters=4, test_every=2, test_iters=1,
                  folds=2, mlp_max_iter=20, tsne_points=40, progress=False, download=False,
                  from_dir=str(write_idx_dir(tmp_path / "idx", splits)), spec=fake_spec(splits))
    fields.update(overrides)
    return reproduce.Settings(**fields)


def test_pipeline_writes_every_stage_and_resumes(tmp_path):
    settings = _settings(tmp_path)
    report_path = reproduce.reproduce(settings)
    run = settings.out / "runs" / "model4-2d-run1"
    for name in ("net.prototxt", "solver.prototxt", "snap_iter_4.caffemodel", "snap_iter_2.solverstate",
                 "history.json", "codes.h5", "eval.json", "loss.png", "code.png", "layers.png", "result.json"):
        assert (run / name).is_file(), name
    with h5py.File(run / "codes.h5", "r") as h5:
        assert h5["ip2encode"].shape == (40, 2) and h5["label"].shape == (40,)
    record = json.loads((run / "result.json").read_text())
    assert record["losses"] == {"sce": "cross_entropy_loss", "euclidean": "l2_error"}
    history = json.loads((run / "history.json").read_text())
    assert [p[0] for p in history["test"]["cross_entropy_loss"]] == [0, 2, 4]
    assert history["train"]["cross_entropy_loss"][-1][0] == 4
    text = report_path.read_text()
    assert "| Model 4 | 2 | 1 x 4 |" in text and "(13.87)" in text      # paper's 2-D MLP error
    assert (settings.out / "reconstructions.png").is_file()

    # A second call finds everything done and trains nothing.
    stamp = (run / "snap_iter_4.caffemodel").stat().st_mtime_ns
    reproduce.reproduce(_settings(tmp_path))
    assert (run / "snap_iter_4.caffemodel").stat().st_mtime_ns == stamp

    # Interrupted after iteration 2: training resumes from that snapshot.
    for name in ("result.json", "snap_iter_4.caffemodel", "snap_iter_4.solverstate"):
        (run / name).unlink()
    history["iter"] = 2
    (run / "history.json").write_text(json.dumps(history))
    reproduce.reproduce(_settings(tmp_path))
    resumed = json.loads((run / "history.json").read_text())
    assert [p[0] for p in resumed["test"]["cross_entropy_loss"]] == [0, 2, 4]
    assert (run / "snap_iter_4.caffemodel").is_file()


def test_unknown_and_unsupported_models_are_refused(tmp_path):
    with pytest.raises(CaffeCaeError, match="unknown model 'model9'"):
        reproduce.reproduce(_settings(tmp_path, models=["model9"]))
    with pytest.raises(CaffeCaeError, match="siamese"):
        reproduce.reproduce(_settings(tmp_path, models=["siamese"]))
