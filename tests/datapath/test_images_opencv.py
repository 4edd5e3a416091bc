"""Image decoding and resizing give OpenCV's pixels (OpenCV is a test dependency only)."""
import io

import numpy as np
import pytest
from PIL import Image

from caffe_cae.data.images import ImageError, decode_image, encode_image, read_image
from caffe_cae.data.resize import resize_linear, resize_nearest

cv2 = pytest.importorskip("cv2")

FLAGS = {True: cv2.IMREAD_COLOR, False: cv2.IMREAD_GRAYSCALE, None: cv2.IMREAD_ANYCOLOR}


def opencv(data: bytes, color) -> np.ndarray:
    image = cv2.imdecode(np.frombuffer(data, np.uint8), FLAGS[color])
    return image[..., None] if image.ndim == 2 else image


def saved(array, kind, mode=None, **options) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array, mode).save(buffer, kind, **options)
    return buffer.getvalue()


RNG = np.random.default_rng(7)
SOURCES = {
    "rgb png": saved(RNG.integers(0, 256, (9, 11, 3), dtype=np.uint8), "PNG"),
    "gray png": saved(RNG.integers(0, 256, (9, 11), dtype=np.uint8), "PNG"),
    "rgba png": saved(RNG.integers(0, 256, (9, 11, 4), dtype=np.uint8), "PNG"),
    "gray+alpha png": saved(RNG.integers(0, 256, (9, 11, 2), dtype=np.uint8), "PNG", "LA"),
    "16-bit gray png": cv2.imencode(".png", RNG.integers(0, 65536, (9, 11), dtype=np.uint16))[1].tobytes(),
    "16-bit rgb png": cv2.imencode(".png", RNG.integers(0, 65536, (9, 11, 3), dtype=np.uint16))[1].tobytes(),
    "rgb jpeg": saved(RNG.integers(0, 256, (16, 24, 3), dtype=np.uint8), "JPEG", quality=90),
    "gray jpeg": saved(RNG.integers(0, 256, (16, 24), dtype=np.uint8), "JPEG", quality=90),
    "rgb bmp": saved(RNG.integers(0, 256, (9, 11, 3), dtype=np.uint8), "BMP"),
}


def _palette_png() -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(RNG.integers(0, 256, (9, 11, 3), dtype=np.uint8)).convert("P").save(buffer, "PNG")
    return buffer.getvalue()


SOURCES["palette png"] = _palette_png()


@pytest.mark.parametrize("color", [True, False, None], ids=["color", "gray", "native"])
@pytest.mark.parametrize("kind", list(SOURCES))
def test_decoding_matches_opencv(kind, color):
    mine, theirs = decode_image(SOURCES[kind], color), opencv(SOURCES[kind], color)
    if kind == "16-bit rgb png" and color is False:  # libpng grays the 16-bit samples Pillow does not give
        assert mine.shape == theirs.shape and np.abs(mine.astype(int) - theirs).max() <= 1
        return
    np.testing.assert_array_equal(mine, theirs)


def test_jpeg_exif_orientation_is_applied_as_opencv_does():
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise
    image = RNG.integers(0, 256, (8, 16, 3), dtype=np.uint8)
    data = saved(image, "JPEG", exif=exif.tobytes(), quality=95)
    mine = decode_image(data, True)
    assert mine.shape == (16, 8, 3)
    np.testing.assert_array_equal(mine, opencv(data, True))


def test_undecodable_and_missing_files(tmp_path):
    with pytest.raises(ImageError, match="not a readable image"):
        decode_image(b"\x89PNG but not really", True)
    (tmp_path / "bad.jpg").write_bytes(b"\xff\xd8\xff garbage")
    with pytest.raises(ImageError, match=r"bad.jpg': not a readable image"):
        read_image(tmp_path / "bad.jpg")
    with pytest.raises(ImageError, match=r"Could not open or find file '.*nothere.png' \(No such file"):
        read_image(tmp_path / "nothere.png")


@pytest.mark.parametrize("encoding", ["png", "bmp"])
def test_lossless_encoding_round_trips(encoding):
    image = RNG.integers(0, 256, (5, 7, 3), dtype=np.uint8)
    data = encode_image(image, encoding)
    np.testing.assert_array_equal(opencv(data, True), image)  # OpenCV reads back the BGR pixels


def test_resize_is_opencvs_bit_for_bit():
    rng = np.random.default_rng(3)
    sizes = [(int(a), int(b)) for a, b in rng.integers(1, 48, (60, 2))]
    for (h, w), (new_h, new_w) in zip(sizes, sizes[::-1]):
        for channels in (1, 3):
            image = rng.integers(0, 256, (h, w, channels), dtype=np.uint8)
            expected = cv2.resize(image, (new_w, new_h), interpolation=cv2.INTER_LINEAR).reshape(new_h, new_w, channels)
            np.testing.assert_array_equal(resize_linear(image, new_h, new_w), expected, err_msg=f"{(h, w)} -> {(new_h, new_w)}")


@pytest.mark.parametrize("shape, size", [((10, 12), (5, 6)), ((256, 200), (227, 227)), ((7, 9), (14, 27)),
                                          ((1, 1), (3, 2)), ((5, 5), (5, 5))])
def test_resize_special_sizes(shape, size):
    image = np.random.default_rng(1).integers(0, 256, (*shape, 3), dtype=np.uint8)
    expected = cv2.resize(image, size[::-1], interpolation=cv2.INTER_LINEAR)
    np.testing.assert_array_equal(resize_linear(image, *size), expected)


def test_nearest_resize_is_opencvs():
    rng = np.random.default_rng(5)
    sizes = [(int(a), int(b)) for a, b in rng.integers(1, 200, (80, 2))]
    pairs = [*zip(sizes, sizes[::-1]), ((6, 14), (34, 18))]  # 6 -> 34, 14 -> 18: not i * src // dst
    for (h, w), (new_h, new_w) in pairs:
        for shape in ((h, w), (h, w, 3)):
            image = rng.integers(0, 256, shape, dtype=np.uint8)
            expected = cv2.resize(image, (new_w, new_h), interpolation=cv2.INTER_NEAREST)
            np.testing.assert_array_equal(resize_nearest(image, new_h, new_w), expected, err_msg=f"{(h, w)} -> {(new_h, new_w)}")
