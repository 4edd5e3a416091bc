"""reproduce end to end on a tiny fake MNIST: every stage's files, the report, resuming."""
import json
import logging

import h5py
import numpy as np
import pytest

from caffe_cae.errors import CaffeCaeError
from caffe_cae.experiments import reproduce
from caffe_cae.experiments.run import Run, RunInterrupted
from tests.experiments.fake_mnist import fake_spec, fake_splits, write_idx_dir


def _settings(tmp_path, **overrides):
    splits = fake_splits(counts=(("train", 30), ("test", 40)))
    fields = dict(out=tmp_path / "out", models=["model4"], dims=[2], iters=4, test_every=2, test_iters=1,
                  folds=2, mlp_max_iter=20, mlp_epochs=10, tsne_points=40, progress=False, download=False,
                  from_dir=str(write_idx_dir(tmp_path / "idx", splits)), spec=fake_spec(splits))
    fields.update(overrides)
    return reproduce.Settings(**fields)


def test_pipeline_writes_every_stage_and_resumes(tmp_path):
    settings = _settings(tmp_path, keep_snapshots=2)
    report_path = reproduce.reproduce(settings)
    run = settings.out / "runs" / "model4-2d-run1"
    for name in ("net.prototxt", "solver.prototxt", "snap_iter_4.caffemodel", "snap_iter_2.solverstate",
                 "history.json", "codes.h5", "eval.json", "loss.png", "code.png", "layers.png", "result.json"):
        assert (run / name).is_file(), name
    assert sorted(p.name for p in run.glob("snap_iter_*")) == [
        "snap_iter_2.caffemodel", "snap_iter_2.solverstate", "snap_iter_4.caffemodel", "snap_iter_4.solverstate"]
    assert "mnist/" in (settings.out / ".gitignore").read_text()
    with h5py.File(run / "codes.h5", "r") as h5:
        assert h5["ip2encode"].shape == (40, 2) and h5["label"].shape == (40,)
    record = json.loads((run / "result.json").read_text())
    assert record["losses"] == {"sce": "cross_entropy_loss", "euclidean": "l2_error"}
    assert record["seed"] == 1 + 1000 + 2 and record["shuffled"] is False
    assert record["threads"]["interpreter"] == 1 and record["machine"]["cpus"] >= 1
    assert record["caffe_cae"]["version"]
    assert [x["caffe_cae"] for x in record["sessions"]] == [record["caffe_cae"]]
    assert set(record["eval"]["protocols"]) == {"paper", "sklearn"}
    paper = record["eval"]["protocols"]["paper"]["mlp"]
    assert len(paper["per_fold"]) == 2 and len(paper["per_class"]) == 10
    history = json.loads((run / "history.json").read_text())
    assert [p[0] for p in history["test"]["cross_entropy_loss"]] == [0, 2, 4]
    assert history["train"]["cross_entropy_loss"][-1][0] == 4
    text = report_path.read_text()
    assert "| Model 4 | 2 | 1 x 4 | **not comparable below 50000 iterations** |" in text
    assert "(13.87)" in text                                   # paper's 2-D MLP error
    assert "[result.json](runs/model4-2d-run1/result.json)" in text
    assert (settings.out / "reconstructions.png").is_file()

    # A second call finds everything done and trains nothing.
    stamp = (run / "snap_iter_4.caffemodel").stat().st_mtime_ns
    reproduce.reproduce(_settings(tmp_path, keep_snapshots=2))
    assert (run / "snap_iter_4.caffemodel").stat().st_mtime_ns == stamp

    # Killed after iteration 2: training resumes from that snapshot.
    for name in ("result.json", "snap_iter_4.caffemodel", "snap_iter_4.solverstate"):
        (run / name).unlink()
    history["iter"] = 2
    (run / "history.json").write_text(json.dumps(history))
    reproduce.reproduce(_settings(tmp_path))
    resumed = json.loads((run / "history.json").read_text())
    assert [p[0] for p in resumed["test"]["cross_entropy_loss"]] == [0, 2, 4]
    assert sorted(p.name for p in run.glob("snap_iter_*")) == ["snap_iter_4.caffemodel", "snap_iter_4.solverstate"]


def _train(settings, stop=None):
    from caffe_cae.experiments import mnist

    settings.out = settings.out.resolve()
    files = mnist.prepare_mnist(settings.out / "mnist", from_dir=settings.from_dir, spec=settings.spec)
    run = Run(settings, files, "model1", 2, 1)
    return run, run.train(run.generate(), stop=stop)


def learned(caffemodel):
    """The learned blobs of a caffemodel as bytes (the file also names the run's data paths)."""
    from caffe_cae import weights

    return [(layer.name, [blob.SerializeToString() for blob in layer.blobs])
            for layer in weights.read_net_binary(caffemodel).layer if layer.blobs]


def _comparable(history):
    """The history as history.json holds it, less the wall times."""
    return json.loads(json.dumps({k: v for k, v in history.items() if k not in ("sessions", "seconds")}))


def test_a_stopped_and_resumed_run_is_the_uninterrupted_run(tmp_path):
    # 30 training rows, batch 100: every batch wraps; a resume must read on where it stopped.
    common = dict(iters=7, test_every=3, test_iters=1, record_every=2)
    whole, whole_history = _train(_settings(tmp_path / "a", **common))
    calls = []   # stop() is asked after iterations 1, 2, after the chunk's test at 3, after 4, 5 ...
    with pytest.raises(RunInterrupted) as stopped:
        _train(_settings(tmp_path / "b", **common), stop=lambda: calls.append(1) or len(calls) >= 5)
    assert stopped.value.iteration == 5                       # mid-chunk: no test, half a loss window
    run, history = _train(_settings(tmp_path / "b", **common))
    assert [s["from"] for s in history["sessions"]] == [0, 5]
    assert _comparable(history) == _comparable(whole_history)
    assert learned(run.dir / "snap_iter_7.caffemodel") == learned(whole.dir / "snap_iter_7.caffemodel")


def test_a_stop_at_a_chunks_end_keeps_its_test(tmp_path):
    common = dict(iters=6, test_every=3, test_iters=1, record_every=2)
    whole, whole_history = _train(_settings(tmp_path / "a", **common))
    calls = []   # the 3rd call is the one after the test at iteration 3
    with pytest.raises(RunInterrupted) as stopped:
        _train(_settings(tmp_path / "b", **common), stop=lambda: calls.append(1) or len(calls) >= 3)
    assert stopped.value.iteration == 3
    run, history = _train(_settings(tmp_path / "b", **common))
    assert _comparable(history) == _comparable(whole_history)
    assert learned(run.dir / "snap_iter_6.caffemodel") == learned(whole.dir / "snap_iter_6.caffemodel")


def test_a_committed_run_folder_resumes_elsewhere(tmp_path):
    settings = _settings(tmp_path / "first", iters=4, test_every=2)
    with pytest.raises(RunInterrupted):
        _train(settings, stop=lambda: True)
    moved = tmp_path / "moved"
    (tmp_path / "first").rename(moved)      # absolute paths in the snapshot now point nowhere
    run, history = _train(_settings(moved, iters=4, test_every=2))
    assert history["iter"] == 4 and [s["from"] for s in history["sessions"]] == [0, 1]


def test_finished_runs_are_skipped_and_say_so(tmp_path, caplog):
    settings = _settings(tmp_path, figures=False, protocols=["sklearn"])
    reproduce.reproduce(settings)
    with caplog.at_level(logging.INFO, logger="caffe_cae.experiments.reproduce"):
        reproduce.reproduce(_settings(tmp_path, figures=False, protocols=["sklearn"]))
    assert "model4-2d-run1: finished earlier (runs/model4-2d-run1/result.json), skipped" in caplog.text


def test_unknown_and_unsupported_models_are_refused(tmp_path):
    with pytest.raises(CaffeCaeError, match="unknown model 'model9'"):
        reproduce.reproduce(_settings(tmp_path, models=["model9"]))
    with pytest.raises(CaffeCaeError, match="siamese"):
        reproduce.reproduce(_settings(tmp_path, models=["siamese"]))
    with pytest.raises(CaffeCaeError, match="--protocol: matlab"):
        reproduce.reproduce(_settings(tmp_path, protocols=["matlab"]))


def test_more_threads_than_cpus_is_refused(tmp_path):
    from caffe_cae.experiments import provenance

    cpus = provenance.cpu_count()
    with pytest.raises(CaffeCaeError, match=f"--workers {cpus + 1} x --threads 1"):
        reproduce.reproduce(_settings(tmp_path, workers=cpus + 1))
    with pytest.raises(CaffeCaeError, match="fixed --threads"):
        reproduce.reproduce(_settings(tmp_path, workers=2, threads=None))
    with pytest.raises(CaffeCaeError, match="tcp://HOST:PORT"):
        reproduce.reproduce(_settings(tmp_path, scheduler="localhost:8786"))


def test_settings_travel_as_json(tmp_path):
    settings = _settings(tmp_path, workers=2)
    again = reproduce.Settings.from_json(json.loads(json.dumps(settings.to_json())))
    assert again == reproduce.Settings(**{**settings.__dict__, "models": list(settings.models),
                                          "dims": list(settings.dims), "protocols": list(settings.protocols)})
    assert np.all(again.spec.counts["train"] == 30)


def test_a_stop_while_evaluating_leaves_the_trained_run_to_finish_later(tmp_path):
    from caffe_cae.experiments import mnist

    settings = _settings(tmp_path, figures=False, iters=2, test_every=2)
    settings.out = settings.out.resolve()
    files = mnist.prepare_mnist(settings.out / "mnist", from_dir=settings.from_dir, spec=settings.spec)
    run = Run(settings, files, "model4", 2, 1)
    asked = []   # training asks after iterations 1 and 2; evaluation before each fold
    with pytest.raises(RunInterrupted) as stopped:
        run.execute(stop=lambda: asked.append(1) or len(asked) > 4)
    assert stopped.value.iteration == 2 and not run.result_path.exists() and not (run.dir / "eval.json").exists()
    record = run.execute()
    assert record["iters"] == 2 and len(json.loads(run.history_path.read_text())["sessions"]) == 1


@pytest.mark.parametrize("shuffle", [False, True])
def test_advance_data_reads_on_where_forward_would(tmp_path, shuffle):
    from caffe_cae.experiments.run import advance_data
    from caffe_cae.net import Net

    for k, rows in enumerate((7, 5)):   # two files: the order of files is shuffled too
        with h5py.File(tmp_path / f"d{k}.h5", "w") as h5:
            h5["data"] = np.arange(100 * k, 100 * k + rows, dtype=np.float32)[:, None]
    (tmp_path / "list.txt").write_text(f"{tmp_path / 'd0.h5'}\n{tmp_path / 'd1.h5'}\n")
    net_file = tmp_path / "net.prototxt"
    net_file.write_text(f'layer {{ name: "data" type: "HDF5Data" top: "data" hdf5_data_param {{ '
                        f'source: "{tmp_path / "list.txt"}" batch_size: 3 shuffle: {str(shuffle).lower()} }} }}')
    whole, resumed = Net(str(net_file), phase=0, seed=5), Net(str(net_file), phase=0, seed=5)
    for _ in range(9):
        whole.forward()
    advance_data(resumed, 9)
    for _ in range(4):
        whole.forward()
        resumed.forward()
        np.testing.assert_array_equal(resumed.blobs["data"].data, whole.blobs["data"].data)


def test_report_only_lists_an_unfinished_run_with_the_iteration_it_reached(tmp_path):
    settings = _settings(tmp_path, models=["model1"], iters=7, test_every=3, record_every=2, figures=False, protocols=["sklearn"])
    calls = []   # stopped after iteration 5: the newest snapshot is iteration 5, the newest test iteration 3
    with pytest.raises(RunInterrupted):
        _train(settings, stop=lambda: calls.append(1) or len(calls) >= 5)
    again = dict(models=["model1"], iters=7, test_every=3, record_every=2, figures=False, protocols=["sklearn"])
    text = reproduce.report_only(_settings(tmp_path, **again)).read_text()
    assert "**Interim report: 0 of 1 runs finished.**" in text
    row = next(line for line in text.splitlines() if line.startswith("| model1-2d-run1 | "))
    assert row.startswith("| model1-2d-run1 | 5 of 7 | training | ") and "(3) |" in row
    assert "--models model1 --dims 2 --iters 7" in text
    assert not (settings.out / "runs/model1-2d-run1/result.json").exists()   # nothing was computed

    final = reproduce.reproduce(_settings(tmp_path, **again)).read_text()
    assert "Interim report" not in final and "| Model 1 | 2 | 1 x 7 |" in final


def test_the_report_covers_runs_other_commands_finished_in_the_same_folder(tmp_path):
    reproduce.reproduce(_settings(tmp_path, figures=False, protocols=["sklearn"]))   # model4, 2-D
    text = reproduce.report_only(_settings(tmp_path, models=["model1"], figures=False)).read_text()
    assert "| Model 4 | 2 | 1 x 4 |" in text                    # Table 4 row of the earlier sweep's run
    assert "- also in this folder: model4 2-D run 1 (4 iterations) (finished by earlier commands)" in text
    assert "**Interim report: 1 of 2 runs finished.**" in text

    # A run evaluated before the sparsity of magnitudes was measured gets it from its codes file.
    run = tmp_path / "out" / "runs" / "model4-2d-run1"
    record = json.loads((run / "result.json").read_text())
    expected = record["eval"].pop("sparsity_magnitude")
    (run / "result.json").write_text(json.dumps(record))
    text = reproduce.report_only(_settings(tmp_path, models=["model1"], figures=False)).read_text()
    row = next(line for line in text.splitlines() if line.startswith("| Model 4 | 2 |"))
    assert f"| {record['eval']['sparsity']:.1f} (70.9) | {expected:.1f} (70.9) |" in row
    assert next(line for line in text.splitlines() if line.startswith("| model1-2d-run1 | ")).startswith(
        "| model1-2d-run1 | 0 of 4 | not started | ")


def test_report_only_needs_runs(tmp_path):
    with pytest.raises(CaffeCaeError, match="no runs folder; start the runs with the same command"):
        reproduce.report_only(_settings(tmp_path))


def test_the_resume_command_names_the_output_folder_as_typed_below_the_current_one(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    below = reproduce.Settings(out=(tmp_path / "docs/reproduction").resolve(), dims=[10], workers=1)
    assert reproduce.resume_command(below).startswith("caffe-cae reproduce --out docs/reproduction --models ")
    elsewhere = reproduce.Settings(out=tmp_path.parent.resolve() / "x", dims=[10])
    assert f"--out {tmp_path.parent.resolve() / 'x'} " in reproduce.resume_command(elsewhere)
