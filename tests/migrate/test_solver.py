"""Solver upgrade: solver_type enum -> type string, Caffe's refusal, inline nets on request."""
import pytest

from caffe_cae import prototxt
from caffe_cae.errors import CaffeCaeError
from caffe_cae.migrate import solver_needs_upgrade, upgrade_solver
from caffe_cae.proto import caffe_pb2


def solver(text):
    return prototxt.parse_text(text, caffe_pb2.SolverParameter)


@pytest.mark.parametrize("old, new", [("SGD", "SGD"), ("NESTEROV", "Nesterov"), ("ADAGRAD", "AdaGrad"),
                                      ("RMSPROP", "RMSProp"), ("ADADELTA", "AdaDelta"), ("ADAM", "Adam")])
def test_every_solver_type(old, new):
    upgraded, notes = upgrade_solver(solver(f"base_lr: 0.1 solver_type: {old}"))
    assert upgraded.type == new and not upgraded.HasField("solver_type")
    assert prototxt.to_text(upgraded) == f'base_lr: 0.1\ntype: "{new}"\n'
    assert not any(n.level == "error" for n in notes)


def test_both_types_refused_with_a_fix():
    with pytest.raises(CaffeCaeError, match='cannot be both specified.*keep only one'):
        upgrade_solver(solver('solver_type: ADAM type: "Adam"'), source="s.prototxt")


def test_up_to_date_solver_is_unchanged():
    original = solver('type: "Adam" base_lr: 0.001')
    assert not solver_needs_upgrade(original)
    upgraded, notes = upgrade_solver(original)
    assert upgraded == original and notes == []


def test_inline_nets_upgraded_only_on_request():
    text = ('solver_type: SGD net_param { name: "n" layers { name: "r" type: RELU bottom: "x" top: "x" } }\n'
            'test_net_param { layers { name: "s" type: SIGMOID bottom: "x" top: "x" } }')
    plain, _ = upgrade_solver(solver(text))
    assert len(plain.net_param.layers) == 1
    upgraded, _ = upgrade_solver(solver(text), inline_nets=True)
    assert [l.type for l in upgraded.net_param.layer] == ["ReLU"] and not upgraded.net_param.layers
    assert [l.type for l in upgraded.test_net_param[0].layer] == ["Sigmoid"]
    assert not upgraded.HasField("train_net_param")
