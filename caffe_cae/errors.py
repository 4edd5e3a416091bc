"""The one exception type for user errors (bad file, bad net, bad argument).

The CLI prints such an error as one line on stderr and exits non-zero; anything else is a
programming error and keeps its traceback.
"""
from __future__ import annotations


class CaffeCaeError(Exception):
    """A user-facing error; ``str(err)`` is the one line shown to the user.

    Messages start with where the problem is: ``FILE:LINE:COL: ...``, ``layer 'conv1': ...``
    or ``blob 'data': ...``.
    """


def where(path: str | None, line: int | None = None, col: int | None = None) -> str:
    """Format a ``FILE:LINE:COL`` location prefix (parts that are unknown are left out)."""
    parts = [str(path) if path else "<text>"]
    if line is not None:
        parts.append(str(line))
        if col is not None:
            parts.append(str(col))
    return ":".join(parts)
