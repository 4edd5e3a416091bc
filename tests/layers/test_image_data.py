"""The ImageData layer: list parsing as Caffe's, resizing as OpenCV's, shuffling, skipping, errors."""
import numpy as np
import pytest

import caffe_cae
from caffe_cae.data.lists import read_image_list
from caffe_cae.errors import CaffeCaeError
from tests.helpers.datasets import data_net, random_images, write_image_files

RGB = random_images(5, (6, 7, 3), seed=2)
LABELS = [3, 1, 4, 1, 5]


@pytest.fixture
def images(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    lines = write_image_files(tmp_path / "imgs", RGB, LABELS)
    (tmp_path / "list.txt").write_text("\n".join(lines) + "\n")
    return tmp_path


def image_net(batch, params="", transform=""):
    return data_net("list.txt", batch, transform, f'root_folder: "imgs/" {params}', layer_type="ImageData")


def test_images_in_list_order_as_bgr(images):
    net = caffe_cae.Net(image_net(4), caffe_cae.TEST)
    for rows in ([0, 1, 2, 3], [4, 0, 1, 2]):
        net.forward()
        np.testing.assert_array_equal(net.blobs["data"].data, RGB[rows][..., ::-1].transpose(0, 3, 1, 2))
        np.testing.assert_array_equal(net.blobs["label"].data, np.take(LABELS, rows))


def test_gray_images(images):
    net = caffe_cae.Net(image_net(2, "is_color: false"), caffe_cae.TEST)
    net.forward()
    r, g, b = (RGB[:2, ..., i].astype(np.uint32) for i in range(3))
    gray = np.where((r == g) & (g == b), r, (9797 * r + 19234 * g + 3737 * b) >> 15)  # libpng's, as cv::imread
    np.testing.assert_array_equal(net.blobs["data"].data, gray[:, None])


def test_resize_is_opencvs(images):
    cv2 = pytest.importorskip("cv2")
    net = caffe_cae.Net(image_net(5, "new_height: 11 new_width: 4"), caffe_cae.TEST)
    net.forward()
    expected = [cv2.resize(cv2.imread(f"imgs/img_{i:03d}.png"), (4, 11), interpolation=cv2.INTER_LINEAR)
                for i in range(5)]
    np.testing.assert_array_equal(net.blobs["data"].data, np.stack(expected).transpose(0, 3, 1, 2))


def test_shuffle_gives_each_image_once_per_pass_in_a_new_order(images):
    net = caffe_cae.Net(image_net(5, "shuffle: true"), caffe_cae.TRAIN, seed=4)
    orders = []
    for _ in range(4):
        net.forward()
        rows = [next(i for i in range(5) if np.array_equal(item, RGB[i][..., ::-1].transpose(2, 0, 1)))
                for item in net.blobs["data"].data]
        assert sorted(rows) == list(range(5))
        np.testing.assert_array_equal(net.blobs["label"].data, np.take(LABELS, rows))  # labels follow their files
        orders.append(rows)
    assert len({tuple(o) for o in orders}) > 1  # reshuffled at every pass
    again = caffe_cae.Net(image_net(5, "shuffle: true"), caffe_cae.TRAIN, seed=4)
    again.forward()
    np.testing.assert_array_equal(again.blobs["data"].data[0], RGB[orders[0][0]][..., ::-1].transpose(2, 0, 1))


def test_rand_skip(images):
    starts = set()
    for seed in range(25):
        net = caffe_cae.Net(image_net(1, "rand_skip: 3"), caffe_cae.TEST, seed=seed)
        net.forward()
        starts.add(next(i for i in range(5) if np.array_equal(net.blobs["data"].data[0], RGB[i][..., ::-1].transpose(2, 0, 1))))
    assert starts == {0, 1, 2}


def test_list_lines_split_at_the_last_space(tmp_path):
    (tmp_path / "l.txt").write_text("a b.png 7\nnolabel.png\nc.png 3x\n\nd.png -2\n")
    assert read_image_list(str(tmp_path / "l.txt")) == [("a b.png", 7), ("nolabel.png", 0), ("c.png", 3), ("d.png", -2)]


def test_errors(images):
    (images / "list.txt").write_text("img_000.png 1\nmissing.png 2\n")
    net = caffe_cae.Net(image_net(2), caffe_cae.TEST)
    with pytest.raises(CaffeCaeError, match=r"layer 'data' \(ImageData\): Could not load 'imgs/missing.png' "
                                            r"\(line 2 of 'list.txt'\): Could not open or find file"):
        net.forward()
    (images / "imgs" / "bad.png").write_bytes(b"garbage")
    (images / "list.txt").write_text("bad.png 1\n")
    with pytest.raises(CaffeCaeError, match=r"Could not load 'imgs/bad.png' \(line 1 of 'list.txt'\): .*not a readable image"):
        caffe_cae.Net(image_net(1), caffe_cae.TEST)
    with pytest.raises(CaffeCaeError, match="requires new_height and new_width to be set at the same time"):
        caffe_cae.Net(image_net(1, "new_height: 3"), caffe_cae.TEST)
    with pytest.raises(CaffeCaeError, match=r"image list 'nolist.txt': no such file"):
        caffe_cae.Net(data_net("nolist.txt", 1, layer_type="ImageData"), caffe_cae.TEST)
    (images / "empty.txt").write_text("\n")
    with pytest.raises(CaffeCaeError, match="image list 'empty.txt' names no images"):
        caffe_cae.Net(data_net("empty.txt", 1, layer_type="ImageData"), caffe_cae.TEST)
    with pytest.raises(CaffeCaeError, match="image_data_param.label_type is a field of a Caffe fork"):
        caffe_cae.Net(image_net(1, "label_type: PIXEL"), caffe_cae.TEST)
