"""Reading legacy prototxt for migration: parse errors that say what *is* supported, and the
user's leading comment block (Caffe's tool loses every comment; we keep the header ones)."""
from __future__ import annotations

import os
import re
from typing import TypeVar

from google.protobuf.message import Message

from caffe_cae import prototxt
from caffe_cae.errors import CaffeCaeError
from caffe_cae.proto import caffe_pb2

M = TypeVar("M", bound=Message)

_NO_FIELD = re.compile(r'Message type "caffe\.([\w.]+)" has no field named "(\w+)"')
_NO_ENUM = re.compile(r'Enum type "caffe\.([\w.]+)" has no value (?:named|with number) (\S+?)\.?$')
_POOL = caffe_pb2.DESCRIPTOR.pool


def explain_parse_error(message: str) -> str:
    """Append the supported field names / enum values to an unknown-field/-value parse error."""
    match = _NO_FIELD.search(message)
    if match:
        try:
            descriptor = _POOL.FindMessageTypeByName(f"caffe.{match.group(1)}")
        except KeyError:
            return message
        names = ", ".join(sorted(descriptor.fields_by_name))
        return (f"{message.rstrip('.')} (another Caffe fork's field? "
                f"{match.group(1)} supports: {names})")
    match = _NO_ENUM.search(message)
    if match:
        try:
            descriptor = _POOL.FindEnumTypeByName(f"caffe.{match.group(1)}")
        except KeyError:
            return message
        names = ", ".join(v.name for v in descriptor.values)
        return f"{message.rstrip('.')} (supported: {names})"
    return message


def leading_comments(text: str) -> str:
    """The comment lines (``#``) at the top of ``text``, blank lines between them kept."""
    lines = text.splitlines(keepends=True)
    header: list[str] = []
    for line in lines:
        stripped = line.strip()
        if stripped.startswith("#") or not stripped:
            header.append(line if line.endswith("\n") else line + "\n")
        else:
            break
    while header and not header[-1].strip():
        header.pop()
    return "".join(header)


def read_legacy_text(path: str | os.PathLike, message_type: type[M]) -> tuple[M, str]:
    """Parse a prototxt of any vintage; returns ``(message, leading comment block)``."""
    text = prototxt.read_file_text(path)
    try:
        message = prototxt.parse_text(text, message_type, source=path)
    except CaffeCaeError as err:
        raise CaffeCaeError(explain_parse_error(str(err))) from None
    return message, leading_comments(text)
