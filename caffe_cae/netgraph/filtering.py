"""Caffe's ``Net::FilterNet``: keep the layers whose include/exclude rules match the NetState."""
from __future__ import annotations

from caffe_cae.errors import CaffeCaeError
from caffe_cae.proto import caffe_pb2


def state_meets_rule(state: caffe_pb2.NetState, rule: caffe_pb2.NetStateRule) -> bool:
    """``Net::StateMeetsRule``: phase (if set) equal, level inside [min_level, max_level] (each
    if set), every ``stage`` of the rule present and no ``not_stage`` present."""
    if rule.HasField("phase") and rule.phase != state.phase:
        return False
    if rule.HasField("min_level") and state.level < rule.min_level:
        return False
    if rule.HasField("max_level") and state.level > rule.max_level:
        return False
    stages = set(state.stage)
    if any(stage not in stages for stage in rule.stage):
        return False
    if any(stage in stages for stage in rule.not_stage):
        return False
    return True


def layer_included(state: caffe_pb2.NetState, layer: caffe_pb2.LayerParameter) -> bool:
    """No include rules: kept unless an exclude rule is met; else kept iff an include rule is met."""
    if layer.include and layer.exclude:
        raise CaffeCaeError(
            f"layer '{layer.name}' ({layer.type}): specify either include rules or exclude "
            "rules; not both"
        )
    if layer.include:
        return any(state_meets_rule(state, rule) for rule in layer.include)
    return not any(state_meets_rule(state, rule) for rule in layer.exclude)


def filter_net(net: caffe_pb2.NetParameter) -> caffe_pb2.NetParameter:
    """A copy of ``net`` holding only the layers included in ``net.state`` (Caffe's FilterNet)."""
    filtered = caffe_pb2.NetParameter()
    filtered.CopyFrom(net)
    del filtered.layer[:]
    for layer in net.layer:
        if layer_included(net.state, layer):
            filtered.layer.add().CopyFrom(layer)
    return filtered
