"""The text files Caffe's image tools and layers read: image lists and R-CNN window files."""
from __future__ import annotations

import os
import re
from dataclasses import dataclass

from caffe_cae.errors import CaffeCaeError

_ATOI = re.compile(r"\s*([+-]?\d+)")


def atoi(text: str) -> int:
    """C's ``atoi``: the leading integer of ``text``, 0 when there is none."""
    match = _ATOI.match(text)
    return int(match.group(1)) if match else 0


def read_image_list(path: str, what: str = "image list") -> list[tuple[str, int]]:
    """``(file name, label)`` per line, split at the line's last space as Caffe does (names may
    contain spaces; a line without a space is a name with label 0).  Blank lines are skipped."""
    try:
        with open(path, encoding="utf-8") as handle:
            lines = handle.read().splitlines()
    except FileNotFoundError:
        raise CaffeCaeError(f"{what} '{path}': no such file (relative to the working directory "
                            f"{os.getcwd()})") from None
    except (OSError, UnicodeDecodeError) as err:
        raise CaffeCaeError(f"{what} '{path}': cannot read ({getattr(err, 'strerror', None) or err})") from None
    entries = []
    for line in lines:
        if not line.strip():
            continue
        name, space, label = line.rpartition(" ")
        entries.append((name, atoi(label)) if space else (line, 0))
    return entries


@dataclass
class Window:
    image: int        # index into the file's images
    label: int
    overlap: float
    x1: int
    y1: int
    x2: int           # inclusive
    y2: int


@dataclass
class WindowImage:
    path: str
    channels: int
    height: int
    width: int


def read_window_file(path: str, root_folder: str = "") -> tuple[list[WindowImage], list[Window]]:
    """An R-CNN window file: per image ``# index``, path, channels, height, width, the number of
    windows, then ``label overlap x1 y1 x2 y2`` per window (whitespace-separated tokens, as
    C++'s ``>>`` reads them).  Image paths get ``root_folder`` prepended (plain concatenation)."""
    try:
        with open(path, encoding="utf-8") as handle:
            tokens = handle.read().split()
    except FileNotFoundError:
        raise CaffeCaeError(f"Failed to open window file '{path}' (no such file, relative to the working "
                            f"directory {os.getcwd()})") from None
    except (OSError, UnicodeDecodeError) as err:
        raise CaffeCaeError(f"Failed to open window file '{path}' ({getattr(err, 'strerror', None) or err})") from None
    if not tokens:
        raise CaffeCaeError(f"window file '{path}': Window file is empty")
    images: list[WindowImage] = []
    windows: list[Window] = []
    position = 0

    def take(kind, what):
        nonlocal position
        if position >= len(tokens):
            raise CaffeCaeError(f"window file '{path}': ends where {what} should be (image {len(images)})")
        token = tokens[position]
        position += 1
        try:
            return kind(token)
        except ValueError:
            raise CaffeCaeError(f"window file '{path}': '{token}' is not {what} (image {len(images)})") from None

    while position < len(tokens):
        if tokens[position] != "#":
            raise CaffeCaeError(f"window file '{path}': expected '#' before image {len(images)}, "
                                f"found '{tokens[position]}'")
        position += 1
        index = take(int, "an image index")
        image_path = root_folder + take(str, "an image path")
        channels, height, width = take(int, "channels"), take(int, "a height"), take(int, "a width")
        images.append(WindowImage(image_path, channels, height, width))
        for _ in range(take(int, "a number of windows")):
            label = take(int, "a class label")
            overlap = take(float, "an overlap")
            x1, y1, x2, y2 = (take(int, "a window coordinate") for _ in range(4))
            windows.append(Window(index, label, overlap, x1, y1, x2, y2))
    return images, windows
