"""Images as Caffe's OpenCV calls see them, decoded with Pillow.

Arrays are ``H x W x C`` uint8 with C = 1 (gray) or 3 in **BGR** order, like a ``cv::Mat``.
``color`` follows OpenCV's read flags: True = ``IMREAD_COLOR`` (always 3 channels), False =
``IMREAD_GRAYSCALE`` (always 1), None = ``IMREAD_ANYCOLOR`` (what Caffe's "native" decoding of
encoded Datums uses: 1 channel for gray files, 3 for anything with colour or alpha).

Where OpenCV's decoders convert on their own, the same conversion is done here, so the pixels
are OpenCV's: a colour PNG read as gray uses libpng's truncating ``(9797 R + 19234 G + 3737 B)
>> 15`` (gray pixels kept), a JPEG read as gray is libjpeg's luma plane, other formats use
OpenCV's ``(4899 R + 9617 G + 1868 B + 8192) >> 14``; 16-bit samples keep their high byte (a
16-bit colour PNG read as gray may differ by one unit: libpng grays the 16-bit samples);
alpha is dropped, not blended; a JPEG's EXIF orientation is applied (OpenCV >= 3.1).
"""
from __future__ import annotations

import io
import os

import numpy as np

from caffe_cae.errors import CaffeCaeError

#: what ``convert_imageset --encode_type`` / ``--encoded`` accept, mapped to Pillow's format names
ENCODINGS = {"png": "PNG", "jpg": "JPEG", "jpeg": "JPEG", "bmp": "BMP", "tif": "TIFF", "tiff": "TIFF",
             "ppm": "PPM", "pgm": "PPM", "pbm": "PPM", "webp": "WEBP"}
#: OpenCV's default JPEG quality (IMWRITE_JPEG_QUALITY)
JPEG_QUALITY = 95


class ImageError(CaffeCaeError):
    """An image file or buffer that cannot be decoded (the message says why)."""


def _pillow():
    from PIL import Image, ImageOps  # lazily: only nets and tools that read images need Pillow

    return Image, ImageOps


def decode_image(data: bytes, color: bool | None) -> np.ndarray:
    """Decode an image file's bytes as ``cv::imdecode(data, flag)`` does (see the module)."""
    Image, ImageOps = _pillow()
    try:
        image = Image.open(io.BytesIO(data))
        kind = image.format
        if kind == "JPEG" and color is False and image.mode in ("RGB", "YCbCr"):
            image.draft("L", image.size)  # libjpeg's own gray output (the luma plane), as OpenCV
        if kind == "JPEG":
            image = ImageOps.exif_transpose(image)
        image.load()
    except Exception as err:  # Pillow raises many types for undecodable data
        raise ImageError(f"not a readable image ({' '.join(str(err).split()) or type(err).__name__})") from None
    return _to_opencv(image, kind, color)


def read_image(path: str | os.PathLike, color: bool | None = True) -> np.ndarray:
    """``cv::imread(path, flag)``; a missing or undecodable file is an :class:`ImageError`."""
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except OSError as err:
        raise ImageError(f"Could not open or find file '{os.fspath(path)}' ({err.strerror})") from None
    try:
        return decode_image(data, color)
    except ImageError as err:
        raise ImageError(f"'{os.fspath(path)}': {err}") from None


def _to_opencv(image, kind: str | None, color: bool | None) -> np.ndarray:
    mode = image.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):  # 16-bit gray: OpenCV keeps the high byte
        gray = (np.asarray(image).astype(np.uint32) >> 8).astype(np.uint8)
        is_gray = True
        rgb = None
    elif mode in ("L", "1"):
        gray = np.asarray(image.convert("L"))
        is_gray = True
        rgb = None
    else:  # RGB, RGBA, LA, P (palettes are colour to OpenCV), CMYK, YCbCr, ...
        if mode == "LA":
            rgb = np.repeat(np.asarray(image.getchannel("L"))[..., None], 3, axis=2)
        else:
            rgb = np.asarray(image.convert("RGB"))
        is_gray = False
        gray = None
    if color is None:
        color = not is_gray
    if color:
        if rgb is None:
            return np.repeat(gray[..., None], 3, axis=2)
        return np.ascontiguousarray(rgb[..., ::-1])
    if gray is None:
        gray = _to_gray(rgb, kind)
    return gray[..., None]


def _to_gray(rgb: np.ndarray, kind: str | None) -> np.ndarray:
    r, g, b = (rgb[..., i].astype(np.uint32) for i in range(3))
    if kind == "PNG":  # libpng's png_set_rgb_to_gray(0.299, 0.587): truncated, gray pixels kept
        gray = (9797 * r + 19234 * g + 3737 * b) >> 15
        gray = np.where((r == g) & (r == b), r, gray)
    else:  # OpenCV's own BGR -> gray of its decoders
        gray = (4899 * r + 9617 * g + 1868 * b + 8192) >> 14
    return gray.astype(np.uint8)


def encode_image(image: np.ndarray, encoding: str) -> bytes:
    """``cv::imencode('.' + encoding, image)`` of a BGR/gray ``H x W x C`` image (the bytes are
    Pillow's, the decoded pixels the same for lossless formats)."""
    Image, _ = _pillow()
    kind = ENCODINGS.get(encoding.lower())
    if kind is None:
        raise CaffeCaeError(f"cannot encode images as '.{encoding}' (known: {', '.join(sorted(ENCODINGS))})")
    pixels = image[..., 0] if image.shape[2] == 1 else image[..., ::-1]
    buffer = io.BytesIO()
    options = {"quality": JPEG_QUALITY} if kind == "JPEG" else {}
    Image.fromarray(np.ascontiguousarray(pixels)).save(buffer, kind, **options)
    return buffer.getvalue()
