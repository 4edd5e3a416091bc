"""``upgrade_net``: Caffe's ``UpgradeNetAsNeeded`` on a NetParameter message, plus our Reshape fix.

Order (Caffe's): V0 -> V1 (padding layers folded), data transformation fields ->
``transform_param``, V1 -> current syntax, net inputs -> ``Input`` layer, BatchNorm param fix;
then, for nets that came from V0/V1 syntax, the Reshape fix (``reshape_fix.py``).
"""
from __future__ import annotations

import logging

from caffe_cae.migrate import inputs, v0, v1
from caffe_cae.migrate.reshape_fix import insert_reshapes
from caffe_cae.migrate.notes import Note, NoteLog
from caffe_cae.proto import caffe_pb2

logger = logging.getLogger(__name__)


def net_needs_upgrade(net_param: caffe_pb2.NetParameter) -> bool:
    """Caffe's ``NetNeedsUpgrade``: V0 or V1 layers, old data fields, net inputs or old BatchNorm."""
    return (v0.needs_v0_upgrade(net_param) or v1.needs_data_upgrade(net_param)
            or v1.needs_v1_upgrade(net_param) or inputs.needs_input_upgrade(net_param)
            or inputs.needs_batch_norm_upgrade(net_param))


def _problems(log: NoteLog) -> int:
    return sum(note.level == "error" for note in log.notes)


def upgrade_net(net_param: caffe_pb2.NetParameter, source: str | None = None,
                reshape_fix: bool = True) -> tuple[caffe_pb2.NetParameter, list[Note]]:
    """Upgrade a net message to the current syntax as Caffe does; the input is not modified.

    Args:
        net_param: a NetParameter in any syntax (V0, V1 ``layers``, current ``layer``).
        source: the file it came from, used in messages.
        reshape_fix: insert ``Reshape (0,0,1,1)`` after InnerProduct tops that feed spatial
            layers in nets that were written in V0/V1 syntax (see ``reshape_fix.py``).

    Returns:
        ``(upgraded NetParameter, notes)``: the notes are Caffe-style log lines (each a ``str``
        with ``.level``); an ``"error"`` note marks something Caffe also could not carry over.

    Raises:
        CaffeCaeError: for what Caffe refuses (a net mixing ``layer`` and ``layers``, an unknown
        V0 type, a padding layer that feeds neither conv nor pool, ...).
    """
    where = str(source) if source is not None else "<net>"
    log = NoteLog(logger)
    net = caffe_pb2.NetParameter()
    net.CopyFrom(net_param)
    # A V0 net loses its 'layer' entries in UpgradeV0Net (which rebuilds the net), so Caffe
    # only refuses the mix for V1 'layers'.
    if len(net.layer) and len(net.layers) and not v0.needs_v0_upgrade(net):
        raise v1.mixed_syntax_error(net, where)
    legacy = len(net.layers) > 0

    if v0.needs_v0_upgrade(net):
        log.info(f"Attempting to upgrade input file specified using deprecated V0LayerParameter: {where}")
        before = _problems(log)
        net = v0.upgrade_v0_net(net, log)
        if _problems(log) > before:
            log.error("Warning: had one or more problems upgrading V0NetParameter to NetParameter "
                      "(see above); continuing anyway.")
        else:
            log.info("Successfully upgraded file specified using deprecated V0LayerParameter")
        log.warning("Note that future Caffe releases will not support V0NetParameter; use "
                    "'caffe-cae migrate' to upgrade this and any other net protos to the new format.")
    if v1.needs_data_upgrade(net):
        log.info(f"Attempting to upgrade input file specified using deprecated transformation "
                 f"parameters: {where}")
        v1.upgrade_data_transformation(net)
        log.info("Successfully upgraded file specified using deprecated data transformation parameters.")
        log.warning("Note that future Caffe releases will only support transform_param messages "
                    "for transformation fields.")
    if v1.needs_v1_upgrade(net):
        log.info(f"Attempting to upgrade input file specified using deprecated V1LayerParameter: {where}")
        before = _problems(log)
        net = v1.upgrade_v1_net(net, log, where)
        if _problems(log) > before:
            log.error("Warning: had one or more problems upgrading V1LayerParameter (see above); "
                      "continuing anyway.")
        else:
            log.info("Successfully upgraded file specified using deprecated V1LayerParameter")
    if inputs.needs_input_upgrade(net):
        log.info(f"Attempting to upgrade input file specified using deprecated input fields: {where}")
        inputs.upgrade_input(net, log, where)
        log.info("Successfully upgraded file specified using deprecated input fields.")
        log.warning("Note that future Caffe releases will only support input layers and not input fields.")
    if inputs.needs_batch_norm_upgrade(net):
        log.info(f"Attempting to upgrade batch norm layers using deprecated params: {where}")
        inputs.upgrade_batch_norm(net)
        log.info("Successfully upgraded batch norm layers using deprecated params.")
    if reshape_fix and legacy:
        insert_reshapes(net, log)
    return net, log.notes

