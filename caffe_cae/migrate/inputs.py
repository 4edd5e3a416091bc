"""Net inputs and BatchNorm: Caffe's ``UpgradeNetInput`` and ``UpgradeNetBatchNorm``."""
from __future__ import annotations

from caffe_cae.errors import CaffeCaeError
from caffe_cae.migrate.notes import NoteLog
from caffe_cae.proto import caffe_pb2


def needs_input_upgrade(net: caffe_pb2.NetParameter) -> bool:
    """Caffe's ``NetNeedsInputUpgrade``: the net has deprecated ``input`` fields."""
    return len(net.input) > 0


def upgrade_input(net: caffe_pb2.NetParameter, log: NoteLog, source: str | None = None) -> None:
    """Turn ``input`` + ``input_shape``/``input_dim`` into an ``Input`` layer named ``input``,
    placed first (in place).

    A bare ``input`` with neither shapes nor dims (legacy caffemodels) is simply stripped.
    """
    has_shape = len(net.input_shape) > 0
    has_dim = len(net.input_dim) > 0
    where = source or "<net>"
    if has_shape or has_dim:
        count = len(net.input)
        if has_shape and len(net.input_shape) < count:
            raise CaffeCaeError(f"{where}: {count} net inputs but only {len(net.input_shape)} "
                                f"input_shape entries (one per input needed)")
        if not has_shape and len(net.input_dim) < 4 * count:
            raise CaffeCaeError(f"{where}: {count} net inputs need {4 * count} input_dim values "
                                f"(4 per input), found {len(net.input_dim)}")
        layer = caffe_pb2.LayerParameter(name="input", type="Input")
        for i, name in enumerate(net.input):
            layer.top.append(name)
            shape = layer.input_param.shape.add()
            if has_shape:
                shape.CopyFrom(net.input_shape[i])
            else:
                shape.dim.extend(net.input_dim[4 * i:4 * i + 4])
        existing = list(net.layer)
        net.ClearField("layer")
        net.layer.add().CopyFrom(layer)
        net.layer.extend(existing)
    else:
        log.warning(f"Net inputs {', '.join(net.input)} have no input_dim/input_shape; they are "
                    f"dropped (as Caffe does for legacy caffemodels).")
    net.ClearField("input")
    net.ClearField("input_shape")
    net.ClearField("input_dim")


def needs_batch_norm_upgrade(net: caffe_pb2.NetParameter) -> bool:
    """Caffe's ``NetNeedsBatchNormUpgrade``: a BatchNorm layer declares exactly 3 ``param``."""
    return any(layer.type == "BatchNorm" and len(layer.param) == 3 for layer in net.layer)


def upgrade_batch_norm(net: caffe_pb2.NetParameter) -> None:
    """Set ``lr_mult: 0 decay_mult: 0`` on the three params of such BatchNorm layers (in place):
    their blobs are running statistics, not learned weights."""
    for layer in net.layer:
        if layer.type == "BatchNorm" and len(layer.param) == 3:
            for spec in layer.param:
                spec.lr_mult = 0.0
                spec.decay_mult = 0.0
