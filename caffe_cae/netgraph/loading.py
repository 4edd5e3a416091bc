"""Reading a net definition the way ``Net`` does: any syntax (legacy files are upgraded in
memory), then the NetState (phase, level, stages) pycaffe's constructor sets."""
from __future__ import annotations

import logging
import os

from caffe_cae.errors import CaffeCaeError
from caffe_cae.netgraph.logs import quiet_loggers
from caffe_cae.proto import caffe_pb2

log = logging.getLogger("caffe_cae.net")  # the notices belong to the Net being built

TRAIN = caffe_pb2.TRAIN
TEST = caffe_pb2.TEST


def load_net_param(net, source: str | None = None) -> tuple[caffe_pb2.NetParameter, str]:
    """``(NetParameter in the current syntax, where)`` from a path or a message.

    Legacy nets (V0/V1 ``layers``, ``input:`` fields, Noh's fork) are upgraded in memory by
    :func:`caffe_cae.migrate.upgrade_net` (Reshape fix included), with one notice in the log.
    """
    if isinstance(net, caffe_pb2.NetParameter):
        where = source or (f"net '{net.name}'" if net.name else "<net>")
        param = net
    elif isinstance(net, (str, os.PathLike)):
        from caffe_cae.prototxt import read_net_text

        where = str(net)
        param = read_net_text(net)
    else:
        raise TypeError(f"Net() takes a prototxt path or a NetParameter, not {type(net).__name__}")
    from caffe_cae.migrate import net_needs_upgrade, upgrade_net

    if net_needs_upgrade(param):
        with quiet_loggers("caffe_cae.migrate"):
            param, notes = upgrade_net(param, source=where)
        for note in notes:
            log.debug("upgrade: %s", note)
        problems = [str(n) for n in notes if n.level == "error"]
        log.warning(
            "%s: legacy net definition upgraded in memory%s; `caffe-cae migrate` rewrites the file",
            where, f" ({len(problems)} problem(s): {'; '.join(problems)})" if problems else "",
        )
    else:
        copy = caffe_pb2.NetParameter()
        copy.CopyFrom(param)
        param = copy
    return param, where


def set_net_state(param: caffe_pb2.NetParameter, phase=None, level=None, stages=()) -> None:
    """Like pycaffe's ``Net(file, phase, level, stages)``: phase and level replace the file's
    ``state`` (when given), stages are added to it."""
    if phase is not None:
        if phase not in (TRAIN, TEST):
            raise CaffeCaeError(f"phase must be caffe_cae.TRAIN (0) or caffe_cae.TEST (1), not {phase!r}")
        param.state.phase = phase
    if level is not None:
        param.state.level = int(level)
    if isinstance(stages, str):
        stages = (stages,)
    param.state.stage.extend(stages or ())

