"""Net::FilterNet: include/exclude rules on phase, level and stages."""
import pytest

import caffe_cae
from caffe_cae.errors import CaffeCaeError
from caffe_cae.netgraph.filtering import filter_net, state_meets_rule
from caffe_cae.proto import caffe_pb2
from caffe_cae.prototxt import parse_text

RULES = """
name: "rules"
layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 1 dim: 2 } } }
layer { name: "train_only" type: "Sigmoid" bottom: "data" top: "a" include { phase: TRAIN } }
layer { name: "test_only" type: "Sigmoid" bottom: "data" top: "b" include { phase: TEST } }
layer { name: "not_train" type: "Sigmoid" bottom: "data" top: "c" exclude { phase: TRAIN } }
layer { name: "level_1_2" type: "Sigmoid" bottom: "data" top: "d" include { min_level: 1 max_level: 2 } }
layer { name: "stage_ab" type: "Sigmoid" bottom: "data" top: "e" include { stage: "a" stage: "b" } }
layer { name: "not_stage_a" type: "Sigmoid" bottom: "data" top: "f" include { not_stage: "a" } }
layer { name: "either" type: "Sigmoid" bottom: "data" top: "g" include { stage: "x" } include { phase: TRAIN } }
"""


def kept(phase=caffe_pb2.TEST, level=0, stages=()):
    net = parse_text(RULES, caffe_pb2.NetParameter)
    net.state.phase = phase
    net.state.level = level
    net.state.stage.extend(stages)
    return [layer.name for layer in filter_net(net).layer]


def test_phase_include_and_exclude():
    assert kept(caffe_pb2.TEST) == ["data", "test_only", "not_train", "not_stage_a"]
    assert kept(caffe_pb2.TRAIN) == ["data", "train_only", "not_stage_a", "either"]


def test_level_bounds_are_inclusive():
    assert "level_1_2" not in kept(level=0)
    assert "level_1_2" in kept(level=1)
    assert "level_1_2" in kept(level=2)
    assert "level_1_2" not in kept(level=3)


def test_stage_rules_need_all_stages_and_no_not_stage():
    assert "stage_ab" not in kept(stages=["a"])
    assert "stage_ab" in kept(stages=["a", "b"])
    assert "not_stage_a" not in kept(stages=["a"])
    assert "either" in kept(stages=["x"])  # any include rule suffices


def test_rule_without_fields_always_met():
    assert state_meets_rule(caffe_pb2.NetState(), caffe_pb2.NetStateRule())


def test_include_and_exclude_together_is_an_error():
    net = parse_text(
        'layer { name: "bad" type: "Sigmoid" include { phase: TEST } exclude { phase: TRAIN } }',
        caffe_pb2.NetParameter,
    )
    with pytest.raises(CaffeCaeError, match=r"^layer 'bad' \(Sigmoid\): specify either include rules or exclude rules"):
        filter_net(net)


def test_net_arguments_set_the_state():
    net_param = parse_text(RULES, caffe_pb2.NetParameter)
    train = caffe_cae.Net(net_param, caffe_cae.TRAIN)
    assert train.phase == caffe_cae.TRAIN and "train_only" in train.layer_names
    staged = caffe_cae.Net(net_param, phase=caffe_cae.TEST, level=2, stages=["a", "b"])
    assert {"level_1_2", "stage_ab"} <= set(staged.layer_names)
    assert all(layer.param.phase == caffe_cae.TEST for layer in staged.layers)


def test_phase_defaults_to_the_file_state():
    net_param = parse_text(RULES + "state { phase: TRAIN }", caffe_pb2.NetParameter)
    assert caffe_cae.Net(net_param).phase == caffe_cae.TRAIN
    assert caffe_cae.Net(parse_text(RULES, caffe_pb2.NetParameter)).phase == caffe_cae.TEST
