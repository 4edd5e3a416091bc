"""The data / encode / evaluate / reproduce commands: arguments, output, one-line errors."""
import h5py
import numpy as np

from caffe_cae.cli import main
from tests.experiments.fake_mnist import fake_splits, write_idx_dir
from tests.experiments.test_encode import TINY_NET


def test_data_refuses_files_that_are_not_mnist(tmp_path, capsys):
    # Fake IDX files are well-formed but fail the published MNIST checksums / counts.
    src = write_idx_dir(tmp_path / "idx", fake_splits())
    assert main(["data", "mnist", "--out", str(tmp_path / "out"), "--from", str(src)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("caffe-cae data: error: MNIST train")
    assert not (tmp_path / "out" / "mnist_train.h5").exists()


def test_encode_then_evaluate(tmp_path, capsys):
    rng = np.random.default_rng(0)
    data_h5 = tmp_path / "data.h5"
    with h5py.File(data_h5, "w") as h5:
        h5["data"] = rng.random((30, 1, 8, 8)).astype(np.float32)
        h5["label"] = (np.arange(30) % 3).astype(np.float32)
    (tmp_path / "list.txt").write_text(f"{data_h5}\n")
    net = tmp_path / "net.prototxt"
    net.write_text(TINY_NET.replace("LIST", str(tmp_path / "list.txt")))
    from caffe_cae.net import Net

    Net(str(net), seed=0).save(str(tmp_path / "w.caffemodel"))
    codes = tmp_path / "codes.h5"
    assert main(["encode", str(net), str(tmp_path / "w.caffemodel"), str(data_h5), "--out", str(codes),
                 "--blob", "pool1", "--batch", "7"]) == 0
    assert "pool1 [30, 2, 3, 3], 30 labels" in capsys.readouterr().out
    assert main(["evaluate", str(codes), "--folds", "3", "--classifiers", "linear"]) == 0
    out = capsys.readouterr().out
    assert "codes:        30 x 18" in out and "MLP error:    -" in out
    assert "compression:" in out and "switches [[18, 36]]" in out
    assert main(["evaluate", str(codes), "--blob", "nope"]) == 1
    assert "no dataset 'nope'" in capsys.readouterr().err


def test_reproduce_refuses_bad_arguments(tmp_path, capsys):
    assert main(["reproduce", "--out", str(tmp_path), "--models", "siamese"]) == 1
    assert "siamese" in capsys.readouterr().err
    assert main(["reproduce", "--out", str(tmp_path), "--iters", "0"]) == 1


def test_reproduce_refuses_more_workers_than_cpus(tmp_path, capsys):
    import os

    cpus = len(os.sched_getaffinity(0))
    assert main(["reproduce", "--out", str(tmp_path), "--workers", str(cpus + 1)]) == 1
    assert f"--workers {cpus + 1} x --threads 1" in capsys.readouterr().err
    assert main(["reproduce", "--out", str(tmp_path), "--scheduler", "host:1"]) == 1
    assert "tcp://HOST:PORT" in capsys.readouterr().err
