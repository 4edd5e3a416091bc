"""Review: for every solver type and both snapshot formats, k steps + snapshot + restore into a new
solver + k steps gives bit-identical weights to 2k uninterrupted steps (history, iter and lr step
restored); the test net sees the weights the train net learned."""
import numpy as np
import pytest

from caffe_cae.solvers import get_solver

NET = """
name: "restore_review"
layer { name: "d" type: "DummyData" top: "data" top: "t" dummy_data_param { shape { dim: 4 dim: 6 } shape { dim: 4 dim: 3 } data_filler { type: "constant" value: 0.7 } data_filler { type: "constant" value: -0.3 } } }
layer { name: "ip" type: "InnerProduct" bottom: "data" top: "ip" inner_product_param { num_output: 3 weight_filler { type: "gaussian" std: 0.3 } bias_filler { type: "constant" value: 0.1 } } }
layer { name: "loss" type: "EuclideanLoss" bottom: "ip" bottom: "t" top: "loss" }
"""
EXTRA = {"SGD": "momentum: 0.9", "Nesterov": "momentum: 0.9", "AdaGrad": "",
         "RMSProp": "rms_decay: 0.98", "AdaDelta": "momentum: 0.95 delta: 1e-6",
         "Adam": "momentum: 0.9 momentum2: 0.999"}


def _solver_file(tmp_path, kind, fmt, test_net=False):
    (tmp_path / "net.prototxt").write_text(NET)
    tests = f'test_net: "{tmp_path}/net.prototxt" test_iter: 1 test_interval: 1000 ' if test_net else ""
    text = (f'net: "{tmp_path}/net.prototxt" {tests}type: "{kind}" base_lr: 0.01 lr_policy: "step" '
            f'gamma: 0.5 stepsize: 2 {EXTRA[kind]} weight_decay: 0.001 max_iter: 10 '
            f'snapshot_prefix: "{tmp_path}/s" snapshot_format: {fmt} random_seed: 3 display: 0')
    path = tmp_path / "solver.prototxt"
    path.write_text(text)
    return str(path)


@pytest.mark.parametrize("fmt", ["BINARYPROTO", "HDF5"])
@pytest.mark.parametrize("kind", list(EXTRA))
def test_snapshot_restore_continues_exactly(tmp_path, kind, fmt):
    path = _solver_file(tmp_path, kind, fmt)
    straight = get_solver(path)
    straight.step(6)
    first = get_solver(path)
    first.step(3)
    _, state = first.snapshot()
    resumed = get_solver(path)
    resumed.restore(state)
    assert resumed.iter == 3 and resumed.current_step == first.current_step
    resumed.step(3)
    for a, b in zip(straight.net.learnable_params, resumed.net.learnable_params):
        np.testing.assert_array_equal(a.data, b.data)


def test_test_net_sees_trained_weights(tmp_path):
    solver = get_solver(_solver_file(tmp_path, "SGD", "BINARYPROTO", test_net=True))
    solver.step(2)
    means = solver.test(0)
    test_net = solver.test_nets[0]
    np.testing.assert_array_equal(test_net.params["ip"][0].data, solver.net.params["ip"][0].data)
    solver.step(1)  # in-place updates stay visible
    np.testing.assert_array_equal(test_net.params["ip"][0].data, solver.net.params["ip"][0].data)
    assert set(means) == {"loss"}
