"""SegNet's layers (alexgkendall/caffe-segnet): Upsample (upsample_layer.cpp) and DenseImageData
(dense_image_data_layer.cpp, data_transformer.cpp), against values worked out from the fork."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from caffe_cae.errors import CaffeCaeError
from caffe_cae.net import Net
from caffe_cae.proto import caffe_pb2
from caffe_cae.prototxt import parse_text
from tests.helpers.run_layer import LayerRun, layer_text

# -- Upsample --------------------------------------------------------------------------------

X = np.array([[[[1.0, 2.0], [3.0, 4.0]]]])
MASK = np.array([[[[5.0, 2.0], [8.0, 15.0]]]])  # flat indices h * 4 + w of a 4x4 map


def test_upsample_puts_each_value_at_its_mask_index():
    run = LayerRun(layer_text("Upsample", "upsample_param { scale: 2 }", bottoms=2), [X, MASK])
    (y,) = run.forward()
    expected = np.zeros(16)
    expected[[5, 2, 8, 15]] = [1, 2, 3, 4]
    np.testing.assert_array_equal(y, expected.reshape(1, 1, 4, 4))
    dy = np.arange(16.0).reshape(1, 1, 4, 4)
    dx, _ = run.backward([dy], [True, False])
    np.testing.assert_array_equal(dx, [[[[5.0, 2.0], [8.0, 15.0]]]])


@pytest.mark.parametrize("body, size", [
    ("upsample_param { scale: 2 pad_out_h: true }", (3, 4)),
    ("upsample_param { scale_h: 2 scale_w: 3 pad_out_h: true }", (3, 6)),
    ("upsample_param { upsample_h: 5 upsample_w: 4 }", (5, 4)),
    ("", (4, 4)),  # scale defaults to 2
    ("upsample_param { upsample_h: 9 }", (4, 4)),  # alone, the fork ignores it (scale applies)
])
def test_upsample_output_sizes(body, size):
    mask = np.array([[[[0.0, 1.0], [2.0, 3.0]]]])
    run = LayerRun(layer_text("Upsample", body, bottoms=2), [X, mask])
    assert run.top[0].shape == (1, 1) + size


def test_upsample_later_value_wins_a_shared_index():
    run = LayerRun(layer_text("Upsample", "", bottoms=2), [X, np.zeros_like(MASK)])
    assert run.forward()[0][0, 0, 0, 0] == 4.0


def test_upsample_after_max_pooling_restores_the_maxima():
    net = Net(parse_text('''
        layer { name: "in" type: "Input" top: "x" input_param { shape { dim: 2 dim: 3 dim: 6 dim: 8 } } }
        layer { name: "pool" type: "Pooling" bottom: "x" top: "p" top: "m" pooling_param { pool: MAX kernel_size: 2 stride: 2 } }
        layer { name: "up" type: "Upsample" bottom: "p" bottom: "m" top: "u" upsample_param { scale: 2 } }
    ''', caffe_pb2.NetParameter))
    x = np.random.default_rng(0).standard_normal((2, 3, 6, 8)).astype(np.float32)
    u = net.forward(x=x)["u"]
    blocks = x.reshape(2, 3, 3, 2, 4, 2).transpose(0, 1, 2, 4, 3, 5).reshape(2, 3, 3, 4, 4)
    winners = blocks == blocks.max(axis=-1, keepdims=True)
    expected = np.where(winners, blocks, 0).reshape(2, 3, 3, 4, 2, 2).transpose(0, 1, 2, 4, 3, 5).reshape(2, 3, 6, 8)
    np.testing.assert_array_equal(u, expected)


@pytest.mark.parametrize("body, mask, message", [
    ("upsample_param { scale: 3 pad_out_h: true }", MASK, "requires scale_h == 2"),
    ("upsample_param { scale_h: 2 }", MASK, "upsample_h & upsample_w are required"),
    ("upsample_param { scale: 2 }", MASK + 20, "upsample top index 35 out of range"),
])
def test_upsample_refusals(body, mask, message):
    with pytest.raises(CaffeCaeError, match=message):
        LayerRun(layer_text("Upsample", body, bottoms=2), [X, mask]).forward()


# -- DenseImageData --------------------------------------------------------------------------

@pytest.fixture
def image_list(tmp_path):
    rng = np.random.default_rng(4)
    images, labels = [], []
    for i in range(3):
        image = rng.integers(0, 256, (6, 5, 3), dtype=np.uint8)
        label = rng.integers(0, 11, (6, 5), dtype=np.uint8)
        Image.fromarray(image[:, :, ::-1]).save(tmp_path / f"img{i}.png")  # image is BGR
        Image.fromarray(label).save(tmp_path / f"lab{i}.png")
        images.append(image)
        labels.append(label)
    (tmp_path / "list.txt").write_text("".join(f"img{i}.png lab{i}.png\n" for i in range(3)))
    return tmp_path, images, labels


def _data_layer(folder, body="", transform=""):
    return LayerRun(layer_text("DenseImageData", f'dense_image_data_param {{ source: "{folder}/list.txt" '
                                                 f'root_folder: "{folder}/" {body} }} {transform}',
                               bottoms=0, tops=2), [])


def test_dense_image_data_reads_bgr_images_and_label_images_in_order(image_list):
    folder, images, labels = image_list
    run = _data_layer(folder, "batch_size: 2", 'transform_param { mean_value: 10 mean_value: 20 mean_value: 30 '
                                                'scale: 0.5 }')
    assert [t.shape for t in run.top] == [(2, 3, 6, 5), (2, 1, 6, 5)]
    data, label = run.forward()
    mean = np.array([10, 20, 30], dtype=np.float32).reshape(3, 1, 1)
    for k in range(2):  # BGR channels first, (pixel - mean) * scale; labels unchanged
        np.testing.assert_array_equal(data[k], (images[k].transpose(2, 0, 1) - mean) * np.float32(0.5))
        np.testing.assert_array_equal(label[k, 0], labels[k])
    data, label = run.forward()  # wraps around: images 2, 0
    np.testing.assert_array_equal(label[:, 0], [labels[2], labels[0]])


def test_dense_image_data_resizes_labels_with_nearest_neighbours(image_list):
    cv2 = pytest.importorskip("cv2")  # the fork's reading and resizing
    folder, images, labels = image_list
    run = _data_layer(folder, "batch_size: 1 new_height: 12 new_width: 10 is_color: false")
    data, label = run.forward()
    assert data.shape == (1, 1, 12, 10)
    np.testing.assert_array_equal(label[0, 0], cv2.resize(labels[0], (10, 12), interpolation=cv2.INTER_NEAREST))
    gray = cv2.imread(str(folder / "img0.png"), cv2.IMREAD_GRAYSCALE)
    np.testing.assert_array_equal(data[0, 0], cv2.resize(gray, (10, 12)))


@pytest.mark.parametrize("transform, message", [
    ("transform_param { crop_size: 4 }", "stochastic transformation"),
    ("transform_param { mirror: true }", "stochastic transformation"),
])
def test_dense_image_data_refuses_what_the_fork_refuses(image_list, transform, message):
    with pytest.raises(CaffeCaeError, match=message):
        _data_layer(image_list[0], "batch_size: 1", transform)


def test_dense_image_data_names_a_missing_image(image_list):
    folder = image_list[0]
    (folder / "img0.png").unlink()
    with pytest.raises(CaffeCaeError, match=r"\(DenseImageData\): Could not load .*img0.png"):
        _data_layer(folder, "batch_size: 1")
