"""Caffe's ``InsertSplits``: a blob read by several layers (or read once and used as a loss)
gets a Split layer right after its producer, one top per consumer.

Names follow ``insert_splits.cpp``: layer ``<blob>_<producer>_<top index>_split``, tops
``<blob>_<producer>_<top index>_split_<k>``.  The producer is the *last* layer that wrote the
blob, so an in-place layer (``relu1`` on ``conv1``) names the split.  A top with a non-zero
``loss_weight`` counts as one more consumer; the Split then takes that weight on its first top
(``loss_weight: w, 0, 0 ...``) and the producer's ``loss_weight`` list is cleared.
"""
from __future__ import annotations

from collections import defaultdict

from caffe_cae.errors import CaffeCaeError
from caffe_cae.proto import caffe_pb2


def split_layer_name(layer_name: str, blob_name: str, top_index: int) -> str:
    return f"{blob_name}_{layer_name}_{top_index}_split"


def split_blob_name(layer_name: str, blob_name: str, top_index: int, split_index: int) -> str:
    return f"{blob_name}_{layer_name}_{top_index}_split_{split_index}"


def unknown_bottom(layer: caffe_pb2.LayerParameter, bottom_index: int) -> CaffeCaeError:
    return CaffeCaeError(
        f"layer '{layer.name}' ({layer.type}): unknown bottom blob '{layer.bottom[bottom_index]}' "
        f"(bottom index {bottom_index}); no earlier layer produces it"
    )


def insert_splits(net: caffe_pb2.NetParameter) -> caffe_pb2.NetParameter:
    """A copy of ``net`` with Split layers inserted where Caffe inserts them."""
    last_top: dict[str, tuple[int, int]] = {}
    source_of_bottom: dict[tuple[int, int], tuple[int, int]] = {}
    consumers: dict[tuple[int, int], int] = defaultdict(int)
    loss_weight_of_top: dict[tuple[int, int], float] = {}
    for i, layer in enumerate(net.layer):
        for j, blob in enumerate(layer.bottom):
            if blob not in last_top:
                raise unknown_bottom(layer, j)
            source_of_bottom[(i, j)] = last_top[blob]
            consumers[last_top[blob]] += 1
        for j, blob in enumerate(layer.top):
            last_top[blob] = (i, j)
        # Using a top as a loss counts like one more consumer of it.
        for j in range(min(len(layer.loss_weight), len(layer.top))):
            top = last_top[layer.top[j]]
            loss_weight_of_top[top] = layer.loss_weight[j]
            if layer.loss_weight[j]:
                consumers[top] += 1

    out = caffe_pb2.NetParameter()
    out.CopyFrom(net)
    del out.layer[:]
    next_split_top: dict[tuple[int, int], int] = defaultdict(int)
    for i, source in enumerate(net.layer):
        layer = out.layer.add()
        layer.CopyFrom(source)
        for j in range(len(layer.bottom)):
            top = source_of_bottom[(i, j)]
            if consumers[top] > 1:
                producer = net.layer[top[0]].name
                layer.bottom[j] = split_blob_name(producer, layer.bottom[j], top[1], next_split_top[top])
                next_split_top[top] += 1
        for j, blob in enumerate(layer.top):
            count = consumers[(i, j)]
            if count <= 1:
                continue
            loss_weight = loss_weight_of_top.get((i, j), 0.0)
            split = out.layer.add()
            split.name = split_layer_name(layer.name, blob, j)
            split.type = "Split"
            split.bottom.append(blob)
            for k in range(count):
                split.top.append(split_blob_name(layer.name, blob, j, k))
                if loss_weight:
                    split.loss_weight.append(loss_weight if k == 0 else 0.0)
            if loss_weight:
                del layer.loss_weight[:]
                next_split_top[(i, j)] += 1
    return out
