"""pycaffe's constructor forms: ``Net(file, phase, level, stages, weights)`` and the legacy
``Net(file, weights, phase)``."""
from __future__ import annotations

import os


def positional_forms(args, phase, level, stages, weights):
    """pycaffe's positional arguments after the prototxt: ``(phase, level, stages, weights)``,
    or the legacy ``(weights, phase)`` when the first one is a path."""
    if not args:
        return phase, level, stages, weights
    legacy = isinstance(args[0], (str, os.PathLike)) or (args[0] is None and len(args) == 2)
    names = ("weights", "phase") if legacy else ("phase", "level", "stages", "weights")
    if len(args) > len(names):
        raise TypeError(f"Net(net, {', '.join(names)}): too many positional arguments")
    given = {"phase": phase, "level": level, "stages": stages, "weights": weights}
    for name, value in zip(names, args):
        if given[name] is not None:
            raise TypeError(f"Net(): {name} given twice")
        given[name] = value
    return given["phase"], given["level"], given["stages"], given["weights"]
