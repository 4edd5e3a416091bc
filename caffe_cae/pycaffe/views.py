"""pycaffe's read-only views of a Net: blobs, params, layer and blob names, the underscored
views of the C++ Net; mixed into :class:`caffe_cae.net.Net`."""
from __future__ import annotations

from collections import OrderedDict

from caffe_cae.blob import Blob


class _ByIndexOrName(list):
    """A per-layer list that also accepts a layer name (the first layer with that name)."""

    def __init__(self, items, names):
        super().__init__(items)
        self._names = list(names)

    def __getitem__(self, key):
        if isinstance(key, str):
            try:
                return super().__getitem__(self._names.index(key))
            except ValueError:
                raise KeyError(key) from None
        return super().__getitem__(key)

    # pycaffe's top_names/bottom_names are OrderedDicts keyed by layer name: the dict methods
    # work here too (iteration, though, yields the per-layer lists, in layer order).
    def __contains__(self, key) -> bool:
        return key in self._names if isinstance(key, str) else super().__contains__(key)

    def keys(self) -> list[str]:
        return list(dict.fromkeys(self._names))

    def values(self) -> list:
        return [self[name] for name in self.keys()]

    def items(self) -> list:
        return [(name, self[name]) for name in self.keys()]

    def get(self, name: str, default=None):
        return self[name] if name in self._names else default


class NetViews:
    """Properties over ``self.graph`` (the NetGraph) and ``self._blob_list``."""

    @property
    def phase(self) -> int:
        return self.graph.phase

    @property
    def blobs(self) -> "OrderedDict[str, Blob]":
        """Every blob by name, in creation order (Split tops included), like pycaffe."""
        if self._blobs_by_name is None:
            self._blobs_by_name = OrderedDict((b.name, b) for b in self._blob_list)
        return self._blobs_by_name

    @property
    def layers(self) -> list:
        return [node.layer for node in self.graph.layers]

    @property
    def layer_names(self) -> list[str]:
        return [node.name for node in self.graph.layers]

    @property
    def layer_dict(self) -> "OrderedDict[str, object]":
        """Layers by name, like pycaffe (a repeated name: the last such layer)."""
        return OrderedDict((node.name, node.layer) for node in self.graph.layers)

    @property
    def params(self) -> "OrderedDict[str, list[Blob]]":
        """Parameter blobs by layer name, layers with parameters only, like pycaffe (a
        repeated name: the last such layer's blobs)."""
        if self._params_by_name is None:
            self._params_by_name = OrderedDict(
                (node.name, node.layer.blobs) for node in self.graph.layers if node.layer.blobs
            )
        return self._params_by_name

    @property
    def bottom_names(self) -> _ByIndexOrName:
        names = self.graph.blob_names
        return _ByIndexOrName(
            [[names[b] for b in node.bottom_ids] for node in self.graph.layers], self.layer_names
        )

    @property
    def top_names(self) -> _ByIndexOrName:
        names = self.graph.blob_names
        return _ByIndexOrName(
            [[names[t] for t in node.top_ids] for node in self.graph.layers], self.layer_names
        )

    @property
    def inputs(self) -> list[str]:
        return [self.graph.blob_names[i] for i in self.graph.input_ids]

    @property
    def outputs(self) -> list[str]:
        return [self.graph.blob_names[i] for i in self.graph.output_ids]

    @property
    def blob_loss_weights(self) -> "OrderedDict[str, float]":
        """Loss weight of every blob (0 for non-loss blobs), like pycaffe."""
        weights = [0.0] * len(self._blob_list)
        for node in self.graph.layers:
            for blob_id, weight in zip(node.top_ids, node.loss_weights):
                weights[blob_id] = weight
        return OrderedDict((b.name, w) for b, w in zip(self._blob_list, weights))

    @property
    def layer_need_backward(self) -> list[bool]:
        return [node.need_backward for node in self.graph.layers]

    @property
    def bottom_need_backward(self) -> list[list[bool]]:
        return [list(node.bottom_need_backward) for node in self.graph.layers]

    @property
    def learnable_params(self) -> list[Blob]:
        """The unique (owner) parameter blobs, in Caffe's order: what the solver updates."""
        graph = self.graph
        return [
            graph.layers[graph.params[i].layer_index].layer.blobs[graph.params[i].param_index]
            for i in graph.learnable
        ]

    @property
    def params_lr(self) -> list[float]:
        return list(self.graph.params_lr)

    @property
    def params_weight_decay(self) -> list[float]:
        return list(self.graph.params_weight_decay)

    @property
    def param_owners(self) -> list[int]:
        """For every (layer, param) entry: -1, or the index of the entry that owns its memory."""
        return [entry.owner for entry in self.graph.params]

    @property
    def param_display_names(self) -> list[str]:
        return [entry.display_name for entry in self.graph.params]

    # -- pycaffe's underscored views of the C++ Net (used by code written against pycaffe) --------
    @property
    def _layer_names(self) -> list[str]:
        return self.layer_names

    @property
    def _blob_names(self) -> list[str]:
        return list(self.blobs)

    @property
    def _blobs(self) -> list[Blob]:
        return list(self._blob_list)

    @property
    def _inputs(self) -> list[int]:
        """Indices (into ``_blobs``) of the input blobs."""
        return list(self.graph.input_ids)

    @property
    def _outputs(self) -> list[int]:
        return list(self.graph.output_ids)

    @property
    def _blob_loss_weights(self) -> list[float]:
        return list(self.blob_loss_weights.values())

    def _top_ids(self, i: int) -> list[int]:
        return list(self.graph.layers[i].top_ids)

    def _bottom_ids(self, i: int) -> list[int]:
        return list(self.graph.layers[i].bottom_ids)

    def _forward(self, start: int, end: int) -> float:
        """Net::ForwardFromTo(start, end) on layer indices (inclusive); returns the loss."""
        return self.forward_from_to(start, end)

    def _backward(self, start: int, end: int) -> None:
        """Net::BackwardFromTo(start, end) on layer indices (start >= end, inclusive)."""
        self.backward_from_to(start, end)
