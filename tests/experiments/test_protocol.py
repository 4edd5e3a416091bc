"""The paper's classification protocol on synthetic codes: Matlab classify (equal priors), patternnet
(mapminmax to [-1, 1], dividerand 70/15/15, trainscg, validation-best weights), 10-fold per-class errors."""
import numpy as np
import pytest

from caffe_cae.errors import CaffeCaeError
from caffe_cae.experiments import patternnet, protocol


def _clustered(n_per_class=60, dims=10, spread=0.3, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(10, dims)) * 3
    labels = np.repeat(np.arange(10), n_per_class)
    return centres[labels] + spread * rng.normal(size=(len(labels), dims)), labels


@pytest.mark.parametrize("trainer", patternnet.TRAINERS)
def test_paper_protocol_separates_clustered_codes_and_not_random_ones(trainer):
    codes, labels = _clustered()
    good = protocol.evaluate(codes, labels, "paper", folds=5, mlp_epochs=150, mlp_trainer=trainer)
    noise = np.random.default_rng(1).normal(size=codes.shape)
    bad = protocol.evaluate(noise, labels, "paper", folds=5, mlp_epochs=150, mlp_trainer=trainer)
    for kind in ("linear", "mlp"):
        assert good[kind]["error"] < 5.0
        assert bad[kind]["error"] > 60.0          # chance: 90 %
    assert "patternnet 10-42-10" in good["settings"] and f"{trainer} 150 epochs" in good["settings"]


def test_mapminmax_maps_the_training_range_onto_minus_one_one_and_drops_constant_features():
    x = np.array([[0.0, 5.0, 2.0], [10.0, 5.0, 4.0], [5.0, 5.0, 3.0]])
    mapping = patternnet.MapMinMax.fit(x)
    mapped = mapping.apply(x)
    assert mapped.shape == (3, 2)                                   # the constant feature is removed
    np.testing.assert_allclose(mapped, [[-1.0, -1.0], [1.0, 1.0], [0.0, 0.0]])
    # Other data uses the training settings: outside the range maps outside [-1, 1].
    np.testing.assert_allclose(mapping.apply(np.array([[20.0, 0.0, 1.0]])), [[3.0, -2.0]])
    with pytest.raises(CaffeCaeError, match="constant"):
        patternnet.MapMinMax.fit(np.ones((4, 2)))


def test_dividerand_cuts_70_15_15_disjoint():
    train, val, test = patternnet.divide_rand(1000, (0.7, 0.15, 0.15), np.random.default_rng(0))
    assert (len(train), len(val), len(test)) == (700, 150, 150)
    assert len(np.unique(np.concatenate([train, val, test]))) == 1000


def test_patternnet_trains_on_70_percent_and_returns_the_validation_best_weights():
    codes, labels = _clustered(n_per_class=30, dims=2, spread=1.5)
    net = patternnet.PatternNet(14, patternnet.TrainParam(epochs=60, max_fail=60), seed=3).fit(codes, labels)
    assert net.record.epochs == 60 and net.record.stop in ("epochs", "max_fail")
    # The returned weights are the best on the validation subset, not necessarily the last ones.
    rng = np.random.default_rng(3)
    mapped = net.mapping.apply(codes)
    _train, val, _test = patternnet.divide_rand(len(codes), (0.7, 0.15, 0.15), rng)
    targets = np.eye(10)[labels]
    vperf = net.network.perf(net.network.predict_proba(net.weights, mapped[val]), targets[val])
    assert vperf == pytest.approx(net.record.best_vperf)
    assert net.network.size == 2 * 14 + 14 + 14 * 10 + 10


def test_patternnet_stops_after_max_fail_validation_failures():
    codes, labels = _clustered(n_per_class=20, dims=2, spread=3.0)
    net = patternnet.PatternNet(14, patternnet.TrainParam(epochs=500, max_fail=3), seed=0).fit(codes, labels)
    assert net.record.stop == "max_fail" and net.record.epochs < 500
    assert net.record.epochs - net.record.best_epoch >= 3


def test_scg_minimises_like_lbfgs():
    codes, labels = _clustered(n_per_class=30, dims=4, spread=2.0)
    param = patternnet.TrainParam(epochs=300, max_fail=300, divide=(1.0, 0.0, 0.0))
    scg = patternnet.PatternNet(8, param, "scg", seed=1).fit(codes, labels)
    lbfgs = patternnet.PatternNet(8, param, "lbfgs", seed=1).fit(codes, labels)
    start = patternnet.Network(4, 8, 10)
    initial = start.perf_grad(start.init(np.random.default_rng(1)), patternnet.MapMinMax.fit(codes).apply(codes),
                              np.eye(10)[labels])[0]
    # Overlapping clusters: the optimum is far above 0; both optimisers get to about the same point.
    assert scg.record.perf < 0.25 * initial
    assert scg.record.perf == pytest.approx(lbfgs.record.perf, rel=0.05)


def test_network_gradient_is_the_derivative_of_matlab_crossentropy():
    rng = np.random.default_rng(0)
    net = patternnet.Network(3, 4, 5)
    w = net.init(rng)
    x, t = rng.uniform(-1, 1, (7, 3)), np.eye(5)[rng.integers(0, 5, 7)]
    perf, grad = net.perf_grad(w, x, t)
    assert perf == pytest.approx(-(t * np.log(net.predict_proba(w, x))).sum() / t.size)
    step = 1e-6
    numeric = [(net.perf_grad(w + step * e, x, t)[0] - net.perf_grad(w - step * e, x, t)[0]) / (2 * step)
               for e in np.eye(w.size)]
    np.testing.assert_allclose(grad, numeric, rtol=1e-5, atol=1e-9)


def test_matlab_classify_uses_equal_priors():
    # Two overlapping classes, 90 % / 10 %: empirical priors favour the large class, equal ones do not.
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(0.0, 1.0, (900, 1)), rng.normal(1.0, 1.0, (100, 1))])
    y = np.repeat([0, 1], [900, 100])
    matlab = protocol.make_model("paper", "linear", 1, 1000, 0, 10, "scg", 10).fit(x, y)
    np.testing.assert_allclose(matlab.model.priors_, [0.5, 0.5])
    sklearn = protocol.make_model("sklearn", "linear", 1, 1000, 0, 10, "scg", 10).fit(x, y)
    between = np.array([[0.7]])     # nearer the small class' mean, but far less likely a priori
    assert matlab.predict(between)[0] == 1 and sklearn.predict(between)[0] == 0


class _WrongOnClass:
    """Predicts the true label except for one class, which it always gets wrong."""

    def __init__(self, labels_of, wrong):
        self.labels_of, self.wrong = labels_of, wrong

    def fit(self, x, y):
        return self

    def predict(self, x):
        y = self.labels_of(x)
        return np.where(y == self.wrong, (y + 1) % 10, y)


def test_ten_fold_error_is_the_mean_of_the_folds_average_per_class_errors():
    labels = np.repeat(np.arange(10), [10, 20, 30, 40, 50, 60, 70, 80, 90, 100])
    codes = labels[:, None].astype(float)
    result = protocol.cross_validate(codes, labels, lambda fold: _WrongOnClass(lambda x: x[:, 0].astype(int), 3),
                                     folds=10)
    assert len(result["per_fold"]) == 10
    # Every fold holds digits of every class; class 3 is always wrong: 1 of 10 classes at 100 %.
    assert result["per_fold"] == pytest.approx([10.0] * 10)
    assert result["error"] == pytest.approx(10.0) and result["pooled_error"] == pytest.approx(10.0)
    assert result["per_class"] == pytest.approx([0, 0, 0, 100, 0, 0, 0, 0, 0, 0])
    with pytest.raises(CaffeCaeError, match="samples per class"):
        protocol.cross_validate(codes[:15], labels[:15], lambda fold: None, folds=10)


def test_sklearn_protocol_is_the_earlier_variant():
    from caffe_cae.experiments import evaluate

    codes, labels = _clustered(n_per_class=20, dims=2, spread=1.0)
    result = protocol.evaluate(codes, labels, "sklearn", folds=4, mlp_max_iter=30)
    for kind in ("linear", "mlp"):
        earlier = evaluate.cross_validated_error(codes, labels, kind, folds=4, mlp_max_iter=30)
        assert result[kind]["error"] == pytest.approx(earlier)
    with pytest.raises(CaffeCaeError, match="unknown protocol"):
        protocol.make_model("matlab", "linear", 2, 100, 0, 10, "scg", 10)


def test_evaluation_stops_between_folds_when_asked():
    codes, labels = _clustered(n_per_class=10, dims=2)
    asked = []
    with pytest.raises(protocol.Stopped):
        protocol.evaluate(codes, labels, "paper", folds=5, mlp_epochs=5, stop=lambda: asked.append(1) or len(asked) > 2)
    assert len(asked) == 3      # two folds ran, the third was not started
