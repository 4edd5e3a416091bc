"""Caffe's tools take gflags-style flags; these argparse helpers accept the same spellings, so
commands copied from Caffe's scripts run unchanged (not a command itself).

``--name=value``, ``--name value``, ``-name=value`` and ``-name value``; boolean flags also as
``--name`` / ``-name``, ``--name=true|false|1|0|yes|no`` and ``--noname``.  Flags may come
before, between or after the positional arguments.
"""
from __future__ import annotations

import argparse

TRUE_WORDS = ("true", "1", "yes", "t", "y")
FALSE_WORDS = ("false", "0", "no", "f", "n")


def add_flag(parser: argparse.ArgumentParser, name: str, kind, default, help: str) -> None:
    """A gflags flag ``name`` of type ``kind`` (bool, int or str)."""
    if kind is bool:
        parser.add_argument(f"--{name}", f"-{name}", dest=name, action="store_true", default=default, help=help)
        # the explicit spellings, as whole option strings (argparse will not give a store_true a value)
        for words, value in ((TRUE_WORDS, True), (FALSE_WORDS, False)):
            spellings = [f"{dash}{name}={word}" for dash in ("--", "-") for word in words]
            parser.add_argument(*spellings, dest=name, action="store_const", const=value, help=argparse.SUPPRESS)
        parser.add_argument(f"--no{name}", f"-no{name}", dest=name, action="store_false", help=argparse.SUPPRESS)
        return
    parser.add_argument(f"--{name}", f"-{name}", dest=name, type=kind, default=default,
                        metavar=name.upper(), help=f"{help} (default: {default!r})")
