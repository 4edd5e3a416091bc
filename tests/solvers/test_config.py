"""Solver settings Caffe refuses (CHECK failures) become one-line errors naming the solver file;
net resolution and NetState merging follow Solver::InitTrainNet / InitTestNets."""
from __future__ import annotations

import pytest

from caffe_cae import prototxt
from caffe_cae.errors import CaffeCaeError
from caffe_cae.proto import caffe_pb2
from caffe_cae.solvers import config

BASE = 'base_lr: 0.1\nlr_policy: "fixed"\n'
NET = 'net_param { name: "n" state { stage: "own" } }\n'


def solver(text):
    return prototxt.parse_text(text, caffe_pb2.SolverParameter, "s.prototxt")


@pytest.mark.parametrize("text, message", [
    (BASE + 'type: "AdaGrad"\nmomentum: 0.9\n', "s.prototxt: momentum cannot be used with AdaGrad"),
    (BASE + 'type: "RMSProp"\nmomentum: 0.9\n', "s.prototxt: momentum cannot be used with RMSProp"),
    (BASE + 'weight_decay: 0.01\nregularization_type: "L3"\n', "s.prototxt: unknown regularization_type 'L3'; known: L2, L1"),
    (BASE + "iter_size: 0\n", "s.prototxt: iter_size must be >= 1 (got 0)"),
    (BASE + "average_loss: 0\n", "s.prototxt: average_loss must be >= 1 (got 0)"),
    ('base_lr: 0.1\nlr_policy: "step"\n', "s.prototxt: lr_policy 'step' needs stepsize > 0 (got 0)"),
    ('base_lr: 0.1\nlr_policy: "sigmoid"\nstepsize: 3\ngamma: -1\n',
     "s.prototxt: lr_policy 'sigmoid' needs gamma >= 0 (got -1)"),
    ('base_lr: 0.1\nlr_policy: "poly"\npower: 2\n', "s.prototxt: lr_policy 'poly' needs max_iter > 0"),
])
def test_refused_settings(text, message):
    with pytest.raises(CaffeCaeError) as err:
        config.check_solver(solver(text), "s.prototxt")
    assert str(err.value) == message


@pytest.mark.parametrize("text, message", [
    (BASE + NET + 'train_net_param { name: "t" }\n',
     "s.prototxt: more than one train net given (net_param, train_net_param); "
     "give one of net, net_param, train_net, train_net_param"),
    (BASE + NET + "test_iter: 1\n", "s.prototxt: test nets given but test_interval is not > 0"),
    (BASE + 'train_net_param { name: "t" }\ntest_net_param { name: "u" }\ntest_interval: 1\n',
     "s.prototxt: test_iter must be specified for each test net (1 test nets, 0 test_iter)"),
    (BASE + NET + "test_iter: 1\ntest_iter: 2\ntest_interval: 1\ntest_state { stage: 'x' }\n",
     "s.prototxt: test_state must be unspecified or given once per test net (2 test nets, 1 test_state)"),
])
def test_refused_nets(text, message):
    with pytest.raises(CaffeCaeError) as err:
        param = solver(text)
        config.train_net_param(param, where="s.prototxt")
        config.test_net_params(param, where="s.prototxt")
    assert str(err.value) == message


def test_net_states_merge_like_caffe():
    param = solver(BASE + NET + 'train_state { level: 2 }\ntest_iter: 1\ntest_iter: 2\ntest_interval: 5\n'
                   'test_state { stage: "a" }\ntest_state { stage: "b" phase: TRAIN }\n')
    train, source = config.train_net_param(param)
    assert source == "net_param"
    assert (train.state.phase, train.state.level, list(train.state.stage)) == (caffe_pb2.TRAIN, 2, ["own"])
    tests = config.test_net_params(param)
    assert [(n.state.phase, list(n.state.stage)) for n, _ in tests] == [
        (caffe_pb2.TEST, ["own", "a"]), (caffe_pb2.TRAIN, ["own", "b"])]


def test_explicit_test_nets_come_first():
    param = solver(BASE + NET + 'test_net_param { name: "explicit" }\ntest_iter: 4\ntest_iter: 6\n'
                   "test_interval: 10\n")
    assert [(n.name, s) for n, s in config.test_net_params(param)] == [
        ("explicit", "test_net_param"), ("n", "net_param")]
