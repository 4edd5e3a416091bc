"""The WindowData layer against a transcription of Caffe's window_data_layer.cpp that uses OpenCV
itself (context padding, square crops, mirroring, mean files), plus its sampling and errors."""
import math

import numpy as np
import pytest

import caffe_cae
from caffe_cae.errors import CaffeCaeError
from caffe_cae.proto import caffe_pb2
from caffe_cae.prototxt import parse_text
from caffe_cae.weights import write_binary
from tests.helpers.datasets import data_net, random_images, write_image_files

cv2 = pytest.importorskip("cv2")
F = np.float32
RGB = random_images(2, (20, 24, 3), seed=8)
# (image, label, overlap, x1, y1, x2, y2)
WINDOWS = [(0, 2, 0.9, 3, 2, 14, 11), (0, 0, 0.1, 0, 0, 23, 19), (1, 5, 0.7, 15, 9, 23, 19), (1, 0, 0.2, 1, 1, 6, 8)]


@pytest.fixture
def window_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_image_files(tmp_path / "imgs", RGB, [0, 0])
    text = []
    for index in range(2):
        rows = [w for w in WINDOWS if w[0] == index]
        text += [f"# {index}", f"imgs/img_{index:03d}.png", "3", "20", "24", str(len(rows))]
        text += [f"{label} {overlap} {x1} {y1} {x2} {y2}" for _, label, overlap, x1, y1, x2, y2 in rows]
    (tmp_path / "windows.txt").write_text("\n".join(text) + "\n")
    return tmp_path


def c_round(x):
    return int(math.floor(abs(float(x)) + 0.5)) * (1 if x >= 0 else -1)


def caffe_window(image, window, crop, pad, square, mirror, mean=None, mean_values=None, scale=1.0):
    """window_data_layer.cpp's warp, written out with OpenCV."""
    x1, y1, x2, y2 = window[3:]
    out = np.zeros((3, crop, crop), F)
    size_w = size_h = crop
    pad_w = pad_h = 0
    if pad > 0 or square:
        context_scale = F(crop) / F(crop - 2 * pad)
        half_h, half_w = F((y2 - y1 + 1) / 2.0), F((x2 - x1 + 1) / 2.0)
        cx, cy = F(x1) + half_w, F(y1) + half_h
        if square:
            half_h = half_w = max(half_h, half_w)
        x1, x2 = c_round(cx - half_w * context_scale), c_round(cx + half_w * context_scale)
        y1, y2 = c_round(cy - half_h * context_scale), c_round(cy + half_h * context_scale)
        uh, uw = y2 - y1 + 1, x2 - x1 + 1
        px1, py1 = max(0, -x1), max(0, -y1)
        px2, py2 = max(0, x2 - image.shape[1] + 1), max(0, y2 - image.shape[0] + 1)
        x1, x2, y1, y2 = x1 + px1, x2 - px2, y1 + py1, y2 - py2
        sx, sy = F(crop) / F(uw), F(crop) / F(uh)
        size_w, size_h = c_round(F(x2 - x1 + 1) * sx), c_round(F(y2 - y1 + 1) * sy)
        px1, px2, py1 = c_round(F(px1) * sx), c_round(F(px2) * sx), c_round(F(py1) * sy)
        pad_h, pad_w = py1, (px2 if mirror else px1)
        size_h, size_w = min(size_h, crop - pad_h), min(size_w, crop - pad_w)
    patch = cv2.resize(image[y1:y2 + 1, x1:x2 + 1], (size_w, size_h), interpolation=cv2.INTER_LINEAR)
    if mirror:
        patch = cv2.flip(patch, 1)
    for h in range(patch.shape[0]):
        for w in range(patch.shape[1]):
            for c in range(3):
                pixel = F(patch[h, w, c])
                if mean is not None:
                    off = (mean.shape[2] - crop) // 2
                    pixel = pixel - mean[c, h + off + pad_h, w + off + pad_w]
                elif mean_values is not None:
                    pixel = pixel - F(mean_values[c])
                out[c, h + pad_h, w + pad_w] = F(pixel) * F(scale)
    return out


def window_net(batch, params="", transform="crop_size: 9"):
    return data_net("windows.txt", batch, transform, params, layer_type="WindowData")


def identify(net, items, candidates):
    """Which candidate (key -> expected item) each output item is; every item must be one."""
    found = []
    for item in range(items):
        out = net.blobs["data"].data[item]
        keys = [k for k, expected in candidates.items() if np.array_equal(out, expected)]
        assert keys, f"item {item} matches no window"
        found.append(keys[0])
    return found


@pytest.mark.parametrize("params, transform", [
    ("fg_fraction: 0.5", "crop_size: 9"),
    ("fg_fraction: 0.5 context_pad: 2 scale: 0.5", "crop_size: 9 mirror: true"),
    ('fg_fraction: 0.5 crop_mode: "square" context_pad: 1', "crop_size: 10 mirror: true mean_value: 10 mean_value: 20 "
                                                            "mean_value: 30"),
])
def test_windows_are_warped_as_caffe_does(window_file, params, transform):
    t = parse_text(transform, caffe_pb2.TransformationParameter)
    p = parse_text(params, caffe_pb2.WindowDataParameter)
    bgr = [cv2.imread(f"imgs/img_{i:03d}.png") for i in range(2)]
    candidates = {}
    for w in WINDOWS:
        for mirror in ([False, True] if t.mirror else [False]):
            candidates[(w, mirror)] = caffe_window(bgr[w[0]], w, t.crop_size, p.context_pad, p.crop_mode == "square",
                                                   mirror, mean_values=list(t.mean_value) or None, scale=p.scale)
    net = caffe_cae.Net(window_net(6, params, transform), caffe_cae.TRAIN, seed=2)
    seen = set()
    for _ in range(12):
        net.forward()
        found = identify(net, 6, candidates)
        labels = net.blobs["label"].data
        assert [w[1] > 0 for w, _ in found] == [False] * 3 + [True] * 3  # background first, then foreground
        np.testing.assert_array_equal(labels, [w[1] for w, _ in found])
        seen.update(found)
    assert seen == set(candidates)


def test_mean_file_is_read_around_the_centre(window_file):
    mean = np.random.default_rng(3).uniform(0, 255, (3, 12, 12)).astype(F)
    blob = caffe_pb2.BlobProto(num=1, channels=3, height=12, width=12)
    blob.data.extend(mean.ravel().tolist())
    write_binary("mean.binaryproto", blob)
    net = caffe_cae.Net(window_net(2, "fg_fraction: 1 context_pad: 1", 'crop_size: 8 mean_file: "mean.binaryproto"'),
                        caffe_cae.TEST)
    bgr = [cv2.imread(f"imgs/img_{i:03d}.png") for i in range(2)]
    candidates = {w: caffe_window(bgr[w[0]], w, 8, 1, False, False, mean=mean) for w in WINDOWS if w[2] >= 0.5}
    net.forward()
    assert all(w[1] > 0 for w in identify(net, 2, candidates))


def test_fg_fraction_rounds_down(window_file):
    net = caffe_cae.Net(window_net(7, "fg_fraction: 0.3"), caffe_cae.TEST)
    net.forward()
    assert (net.blobs["label"].data > 0).sum() == 2  # int(7 * 0.3)


def test_errors(window_file):
    with pytest.raises(CaffeCaeError, match="WindowData needs transform_param.crop_size > 0"):
        caffe_cae.Net(window_net(2, transform=""), caffe_cae.TEST)
    with pytest.raises(CaffeCaeError, match=r"Failed to open window file 'nothere.txt'"):
        caffe_cae.Net(data_net("nothere.txt", 1, "crop_size: 4", layer_type="WindowData"), caffe_cae.TEST)
    (window_file / "windows.txt").write_text("# 0\nimgs/img_000.png\n3 20 24\n1\n0 0.9 1 1 5 5\n")
    with pytest.raises(CaffeCaeError, match="foreground window of image 0 has label 0; foreground labels must be > 0"):
        caffe_cae.Net(window_net(1), caffe_cae.TEST)
    (window_file / "windows.txt").write_text("# 0\nimgs/missing.png\n3 20 24\n1\n1 0.9 1 1 5 5\n")
    net = caffe_cae.Net(window_net(1, "fg_fraction: 1"), caffe_cae.TEST)
    with pytest.raises(CaffeCaeError, match=r"Could not load image 0 of window file 'windows.txt': Could not open"):
        net.forward()
    (window_file / "windows.txt").write_text("# 0\nimgs/img_000.png\n3 20 24\n1\n1 0.9 1 1 5 5\n")
    net = caffe_cae.Net(window_net(2, "fg_fraction: 0.5"), caffe_cae.TEST)
    with pytest.raises(CaffeCaeError, match="a batch needs 1 background windows; window file 'windows.txt' has none"):
        net.forward()
    (window_file / "windows.txt").write_text("# 0\nimgs/img_000.png\n3 20 24\n1\n1 0.9 1 1 30 5\n")
    net = caffe_cae.Net(window_net(1, "fg_fraction: 1"), caffe_cae.TEST)
    with pytest.raises(CaffeCaeError, match=r"window \(1, 1, 30, 5\) of image 'imgs/img_000.png' lies outside"):
        net.forward()
