"""The classifiers separate well-clustered synthetic codes from random ones; per-class error; codes files."""
import h5py
import numpy as np
import pytest

from caffe_cae.errors import CaffeCaeError
from caffe_cae.experiments import evaluate, sparsity


def _clustered(n_per_class=60, dims=10, spread=0.3, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(10, dims)) * 3
    labels = np.repeat(np.arange(10), n_per_class)
    return (centres[labels] + spread * rng.normal(size=(len(labels), dims))).astype(np.float32), labels


def test_average_per_class_error_weights_classes_equally():
    y_true = np.array([0] * 8 + [1] * 2)
    y_pred = np.array([0] * 8 + [0, 1])            # class 0: 0 % wrong, class 1: 50 % wrong
    assert evaluate.average_per_class_error(y_true, y_pred) == pytest.approx(25.0)


def test_paper_mlp_sizes():
    assert [evaluate.mlp_hidden_units(d) for d in (2, 10, 30)] == [14, 42, 66]
    assert evaluate.mlp_hidden_units(20) > 14


@pytest.mark.parametrize("kind", ["linear", "mlp"])
def test_clustered_codes_classify_and_random_ones_do_not(kind):
    codes, labels = _clustered()
    good = evaluate.cross_validated_error(codes, labels, kind, folds=5, mlp_max_iter=200)
    noise = np.random.default_rng(1).normal(size=codes.shape).astype(np.float32)
    bad = evaluate.cross_validated_error(noise, labels, kind, folds=5, mlp_max_iter=200)
    assert good < 5.0
    assert bad > 60.0          # chance is 90 %


def test_evaluate_codes_reports_every_measure():
    codes, labels = _clustered(dims=2, n_per_class=30)
    result = evaluate.evaluate_codes(codes, labels, switches=[(3744, 576), (576, 64)], folds=3,
                                     mlp_max_iter=100)
    assert result.code_dim == 2 and result.samples == 300
    assert result.linear_error is not None and result.mlp_error is not None
    assert 0 <= result.sparsity <= 100
    assert result.sparsity_magnitude == pytest.approx(sparsity.sparsity(codes, magnitude=True))
    assert result.compression == pytest.approx(100 * (1 - 4652 / 784))


def test_too_few_samples_per_class_is_an_error():
    codes, labels = _clustered(n_per_class=3)
    with pytest.raises(CaffeCaeError, match="samples per class"):
        evaluate.cross_validated_error(codes, labels, "linear", folds=10)


def test_read_codes(tmp_path):
    path = tmp_path / "codes.h5"
    with h5py.File(path, "w") as h5:
        h5["ip2encode"] = np.ones((4, 2, 1, 1), np.float32)
        h5["label"] = np.arange(4)
        h5.attrs["code_blob"] = "ip2encode"
        h5.attrs["switches"] = "[[3744, 576]]"
    codes, labels, switches = evaluate.read_codes(path)
    assert codes.shape == (4, 2) and list(labels) == [0, 1, 2, 3] and switches == [[3744, 576]]
    with pytest.raises(CaffeCaeError, match="no dataset 'conv1'"):
        evaluate.read_codes(path, "conv1")
