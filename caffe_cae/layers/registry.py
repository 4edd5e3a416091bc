"""Layer registry keyed by the exact Caffe type string; unknown types are errors that list the
known ones (never skipped)."""
from __future__ import annotations

from typing import Callable

from caffe_cae.errors import CaffeCaeError
from caffe_cae.layers.base import Layer
from caffe_cae.proto import caffe_pb2

LAYERS: dict[str, type[Layer]] = {}


def register(type_name: str) -> Callable[[type[Layer]], type[Layer]]:
    """Class decorator: ``@register("Convolution")``."""

    def add(cls: type[Layer]) -> type[Layer]:
        if type_name in LAYERS:
            raise RuntimeError(f"layer type {type_name!r} registered twice")
        cls.type = type_name
        LAYERS[type_name] = cls
        return cls

    return add


def layer_class(type_name: str, layer_name: str = "?") -> type[Layer]:
    try:
        return LAYERS[type_name]
    except KeyError:
        known = ", ".join(sorted(LAYERS))
        raise CaffeCaeError(
            f"layer '{layer_name}': unknown layer type {type_name!r}; known types: {known}"
        ) from None


def create_layer(param: caffe_pb2.LayerParameter, phase: int = caffe_pb2.TEST) -> Layer:
    return layer_class(param.type, param.name)(param, phase)
