"""What an upgrade did, as Caffe logs it: each note is a ``str`` with a ``level``.

Levels follow glog: ``"info"``, ``"warning"`` and ``"error"``.  An ``"error"`` note is what Caffe
calls a problem ("had one or more problems upgrading ... continuing anyway"): the upgrade still
produced a net but something could not be carried over, and ``upgrade_net_proto_text`` exits 1.
"""
from __future__ import annotations

import logging

_LOG_LEVELS = {"info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}


class Note(str):
    """One line of the upgrade's report; ``note.level`` is ``info``, ``warning`` or ``error``."""

    level: str

    def __new__(cls, text: str, level: str = "info") -> "Note":
        if level not in _LOG_LEVELS:
            raise ValueError(f"unknown note level {level!r}")
        note = super().__new__(cls, text)
        note.level = level
        return note


class NoteLog:
    """Collects notes and logs each one on ``logger`` as it is added (Caffe logs as it goes)."""

    def __init__(self, logger: logging.Logger):
        self.logger = logger
        self.notes: list[Note] = []

    def add(self, text: str, level: str = "info") -> None:
        note = Note(text, level)
        self.notes.append(note)
        self.logger.log(_LOG_LEVELS[level], "%s", text)

    def info(self, text: str) -> None:
        self.add(text, "info")

    def warning(self, text: str) -> None:
        self.add(text, "warning")

    def error(self, text: str) -> None:
        self.add(text, "error")

    def extend(self, notes: list[Note]) -> None:
        """Adopt notes that were already logged elsewhere."""
        self.notes.extend(notes)


def has_problems(notes: list[str]) -> bool:
    """True when some note is a problem (level ``error``): Caffe's tools then exit 1."""
    return any(getattr(note, "level", "info") == "error" for note in notes)
