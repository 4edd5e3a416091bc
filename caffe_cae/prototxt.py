"""Caffe prototxt text <-> protobuf messages.

Parsing uses protobuf's text format (so ``field: { }``, single quotes, ``#`` comments and
interleaved repeated fields all work, and unknown fields are errors) and turns every failure into
one ``FILE:LINE:COL: message`` line.  Printing mimics C++ ``TextFormat::Print`` as Caffe's tools
use it: set fields only, in field-number order, two-space indent, floats with ``%.6g`` unless that
does not round-trip to the same float32 (then ``%.9g``), doubles ``%.15g``/``%.17g``.
"""
from __future__ import annotations

import difflib
import math
import os
import pathlib
import re
from typing import TypeVar

import numpy as np
from google.protobuf import descriptor, text_format
from google.protobuf.message import Message

from caffe_cae.errors import CaffeCaeError
from caffe_cae.fileio import atomic_write_bytes
from caffe_cae.proto import caffe_pb2

M = TypeVar("M", bound=Message)
FD = descriptor.FieldDescriptor

_LOCATION = re.compile(r"^(\d+):(\d+) : (?:'[^\n]*?': )?")


def parse_text(text: str, message_type: type[M], source: str | os.PathLike | None = None) -> M:
    """Parse prototxt ``text`` into a new ``message_type``; errors name ``source:line:col``."""
    message = message_type()
    try:
        text_format.Parse(text, message)
    except text_format.ParseError as err:
        raw = str(err)
        match = _LOCATION.match(raw)
        if match:
            line, col, detail = match.group(1), match.group(2), raw[match.end():]
            if _error_is_at_end(text, message_type):
                line, col = _end_position(text)
            where = f"{source or '<text>'}:{line}:{col}"
        else:
            where, detail = f"{source or '<text>'}", raw
        detail = detail.strip()
        hint = _suggestion(detail)
        raise CaffeCaeError(f"{where}: {detail.rstrip('.') + hint if hint else detail}") from None
    return message


_UNKNOWN_NAME = re.compile(
    r'^(Message|Enum) type "caffe\.([\w.]+)" has no (?:field|value) named "?(\w+)"?')


def _suggestion(detail: str) -> str:
    """``; did you mean "norm_param"?`` for a misspelt field or enum value: the closest name
    the schema has there (a field of another Caffe fork, or a typo), else nothing."""
    match = _UNKNOWN_NAME.match(detail.strip())
    if not match:
        return ""
    kind, type_name, name = match.groups()
    try:
        found = caffe_pb2.DESCRIPTOR.pool.FindMessageTypeByName(f"caffe.{type_name}") if kind == "Message" \
            else caffe_pb2.DESCRIPTOR.pool.FindEnumTypeByName(f"caffe.{type_name}")
    except KeyError:
        return ""
    names = [f.name for f in found.fields] if kind == "Message" else [v.name for v in found.values]
    close = difflib.get_close_matches(name, names, n=1, cutoff=0.8)
    return f'; did you mean "{close[0]}"?' if close else ""


def _error_is_at_end(text: str, message_type) -> bool:
    """Did the parse fail because the text ended (e.g. a missing "}")?  Python's parser then
    names the last token; appending a bad token shows it: the error moves to that token."""
    try:
        text_format.Parse(text + "\n@", message_type())
    except text_format.ParseError as err:
        match = _LOCATION.match(str(err))
        return bool(match) and int(match.group(1)) == text.count("\n") + 2
    return False


def _end_position(text: str) -> tuple[int, int]:
    """1-based line:column just past the text, where C++ TextFormat (Caffe) reports an early end."""
    last = text.rsplit("\n", 1)[-1]
    return text.count("\n") + 1, len(last) + 1


def read_text_file(path: str | os.PathLike, message_type: type[M]) -> M:
    """Read and parse a prototxt file; a missing or unreadable file is a one-line error."""
    return parse_text(read_file_text(path), message_type, source=path)


def read_file_text(path: str | os.PathLike) -> str:
    """The file's text, or a CaffeCaeError that names the path."""
    p = pathlib.Path(path)
    try:
        return p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise CaffeCaeError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise CaffeCaeError(f"{path}: is a directory, expected a file") from None
    except UnicodeDecodeError as err:
        raise CaffeCaeError(f"{path}: not a text file ({err.reason} at byte {err.start})") from None
    except OSError as err:
        raise CaffeCaeError(f"{path}: cannot read ({err.strerror})") from None


def read_net_text(path: str | os.PathLike) -> caffe_pb2.NetParameter:
    """Parse a net prototxt as it is written (no upgrade)."""
    return read_text_file(path, caffe_pb2.NetParameter)


def read_solver_text(path: str | os.PathLike) -> caffe_pb2.SolverParameter:
    """Parse a solver prototxt as it is written (no upgrade)."""
    return read_text_file(path, caffe_pb2.SolverParameter)


# ------------------------------------------------------------------------------------------
# Printing like C++ TextFormat


def format_float(value: float) -> str:
    """C++ protobuf ``SimpleFtoa``: ``%.6g`` if it round-trips to the same float32, else ``%.9g``."""
    if math.isnan(value):
        return "nan"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    f32 = np.float32(value)
    short = f"{float(f32):.6g}"
    if np.float32(float(short)) == f32:
        return short
    return f"{float(f32):.9g}"


def format_double(value: float) -> str:
    """C++ protobuf ``SimpleDtoa``: ``%.15g`` if it round-trips, else ``%.17g``."""
    if math.isnan(value):
        return "nan"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    short = f"{value:.15g}"
    return short if float(short) == value else f"{value:.17g}"


def _escape(data: bytes) -> str:
    """C-style escaping as protobuf's CEscape does (octal for non-printable bytes)."""
    out = []
    for byte in data:
        char = chr(byte)
        if char == "\n":
            out.append("\\n")
        elif char == "\r":
            out.append("\\r")
        elif char == "\t":
            out.append("\\t")
        elif char in "\"'\\":
            out.append("\\" + char)
        elif 0x20 <= byte < 0x7F:
            out.append(char)
        else:
            out.append(f"\\{byte:03o}")
    return "".join(out)


def _scalar(field: FD, value) -> str:
    if field.type == FD.TYPE_FLOAT:
        return format_float(value)
    if field.type == FD.TYPE_DOUBLE:
        return format_double(value)
    if field.type == FD.TYPE_BOOL:
        return "true" if value else "false"
    if field.type == FD.TYPE_ENUM:
        enum_value = field.enum_type.values_by_number.get(value)
        return enum_value.name if enum_value is not None else str(value)
    if field.type == FD.TYPE_STRING:
        return '"' + _escape(value.encode("utf-8")) + '"'
    if field.type == FD.TYPE_BYTES:
        return '"' + _escape(value) + '"'
    return str(value)


def _print_message(message: Message, indent: int, out: list[str]) -> None:
    pad = " " * indent
    for field, value in message.ListFields():  # ListFields is sorted by field number
        values = value if field.is_repeated else [value]
        for item in values:
            if field.type in (FD.TYPE_MESSAGE, FD.TYPE_GROUP):
                out.append(f"{pad}{field.name} {{\n")
                _print_message(item, indent + 2, out)
                out.append(f"{pad}}}\n")
            else:
                out.append(f"{pad}{field.name}: {_scalar(field, item)}\n")


def to_text(message: Message) -> str:
    """Print ``message`` as Caffe's tools do (C++ ``TextFormat::Print``)."""
    out: list[str] = []
    _print_message(message, 0, out)
    return "".join(out)


def write_text_file(path: str | os.PathLike, message: Message, header: str = "") -> None:
    """Write ``header`` (e.g. preserved comments) and the printed message, atomically."""
    atomic_write_bytes(path, (header + to_text(message)).encode("utf-8"))
