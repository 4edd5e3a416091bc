"""Log line formats of the command line: plain messages, or glog's, as Caffe writes them.

glog's prefix is ``I1207 13:45:12.123456 12345 solver.py:207] `` (severity letter, month and day,
time with microseconds, process id, file:line), which Caffe's ``tools/extra/parse_log.py`` and
``extract_seconds.py`` (and the plot scripts built on them) parse from every line after the first
``Iteration`` line, so under glog every line of the log carries it (warnings included).
"""
from __future__ import annotations

import logging
import sys
import time

FORMATS = ("plain", "glog")
_LETTERS = {logging.DEBUG: "I", logging.INFO: "I", logging.WARNING: "W", logging.ERROR: "E", logging.CRITICAL: "F"}


def glog_prefix(created: float, level: int, process: int, filename: str, lineno: int) -> str:
    local = time.localtime(created)
    micros = int(round((created - int(created)) * 1e6))
    if micros == 1000000:
        micros = 999999
    letter = _LETTERS.get(level, "I" if level < logging.WARNING else "E")
    return (f"{letter}{local.tm_mon:02d}{local.tm_mday:02d} {local.tm_hour:02d}:{local.tm_min:02d}:"
            f"{local.tm_sec:02d}.{micros:06d} {process} {filename}:{lineno}] ")


class GlogFormatter(logging.Formatter):
    """Every line of a record gets glog's prefix (a multi-line message stays parseable)."""

    def format(self, record: logging.LogRecord) -> str:
        prefix = glog_prefix(record.created, record.levelno, record.process or 0, record.filename, record.lineno)
        text = super().format(record)
        return "\n".join(prefix + line for line in text.splitlines() or [""])


def configure(fmt: str = "plain", quiet: bool = False, stream=None) -> None:
    """Send the root logger's records to ``stream`` (stderr) in ``fmt``.

    As ``logging.basicConfig``: a root logger with handlers of someone else's (an embedding
    program, pytest's log capture) is left alone; an earlier handler of ours is replaced."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, "caffe_cae", False):
            root.removeHandler(handler)
    if root.handlers:
        return
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.caffe_cae = True
    handler.setFormatter(GlogFormatter("%(message)s") if fmt == "glog" else logging.Formatter("%(message)s"))
    root.addHandler(handler)
    root.setLevel(logging.WARNING if quiet else logging.INFO)
    logging.captureWarnings(fmt == "glog")  # a bare "file:line: UserWarning" line would break the parsers


def error_line(text: str, fmt: str = "plain") -> str:
    """The one error line of a failed command, in the log's format."""
    if fmt != "glog":
        return text
    frame = sys._getframe(1)
    return glog_prefix(time.time(), logging.ERROR, _pid(), frame.f_code.co_filename.rsplit("/", 1)[-1],
                       frame.f_lineno) + text


def _pid() -> int:
    import os

    return os.getpid()
