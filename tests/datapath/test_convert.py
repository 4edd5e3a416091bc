"""``convert_imageset`` and ``compute_image_mean``: Caffe's keys, Datum bytes and mean files
(the Datums rebuilt here from OpenCV's own reading, as the C++ tool makes them), Caffe's flags."""
import logging

import lmdb
import numpy as np
import pytest

from caffe_cae import cli
from caffe_cae.data.convert import convert_imageset
from caffe_cae.data.mean import compute_image_mean
from caffe_cae.errors import CaffeCaeError
from caffe_cae.proto import caffe_pb2
from caffe_cae.weights import read_binary
from tests.helpers.datasets import random_images, write_image_files

cv2 = pytest.importorskip("cv2")
RGB = random_images(4, (9, 11, 3), seed=5)
LABELS = [2, 0, 7, 1]


@pytest.fixture
def images(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    lines = write_image_files(tmp_path / "imgs", RGB, LABELS)
    (tmp_path / "list.txt").write_text("\n".join(lines) + "\n")
    return tmp_path


def records(path) -> list[tuple[bytes, bytes]]:
    env = lmdb.open(str(path), readonly=True, lock=False)
    with env.begin() as txn:
        items = list(txn.cursor())
    env.close()
    return items


def caffe_datum(image: np.ndarray, label: int) -> bytes:
    """CVMatToDatum + set_label of a cv::Mat (H x W [x C])."""
    image = image.reshape(image.shape[0], image.shape[1], -1)
    datum = caffe_pb2.Datum(channels=image.shape[2], height=image.shape[0], width=image.shape[1],
                            data=image.transpose(2, 0, 1).tobytes(), label=label, encoded=False)
    return datum.SerializeToString()


@pytest.mark.parametrize("options, read", [
    ({}, lambda p: cv2.imread(p, cv2.IMREAD_COLOR)),
    ({"gray": True}, lambda p: cv2.imread(p, cv2.IMREAD_GRAYSCALE)),
    ({"resize_height": 5, "resize_width": 13},
     lambda p: cv2.resize(cv2.imread(p), (13, 5), interpolation=cv2.INTER_LINEAR)),
    ({"resize_height": 5}, lambda p: cv2.imread(p)),  # both sizes or no resize
])
def test_raw_datums_are_caffes_bytes(images, options, read):
    result = convert_imageset("imgs/", "list.txt", "db", **options)
    assert (result.listed, result.written, result.unreadable) == (4, 4, [])
    got = records("db")
    assert [k for k, _ in got] == [f"{i:08d}_img_{i:03d}.png".encode() for i in range(4)]
    for i, (_, value) in enumerate(got):
        assert value == caffe_datum(read(f"imgs/img_{i:03d}.png"), LABELS[i])


def test_encoded_keeps_the_file_or_re_encodes(images):
    convert_imageset("imgs/", "list.txt", "png_db", encoded=True)
    for i, (_, value) in enumerate(records("png_db")):
        datum = caffe_pb2.Datum.FromString(value)
        assert datum.encoded and datum.label == LABELS[i] and not datum.HasField("channels")
        assert datum.data == (images / f"imgs/img_{i:03d}.png").read_bytes()  # ReadFileToDatum
    convert_imageset("imgs/", "list.txt", "jpg_db", encode_type="jpg", resize_height=18, resize_width=22)
    for i, (_, value) in enumerate(records("jpg_db")):
        datum = caffe_pb2.Datum.FromString(value)
        decoded = cv2.imdecode(np.frombuffer(datum.data, np.uint8), cv2.IMREAD_COLOR)
        assert datum.encoded and decoded.shape == (18, 22, 3) and datum.data[:2] == b"\xff\xd8"
        expected = cv2.resize(cv2.imread(f"imgs/img_{i:03d}.png"), (22, 18), interpolation=cv2.INTER_LINEAR)
        # the bytes are Pillow's, the pixels those of OpenCV's own encoder (libjpeg, quality 95, 4:2:0)
        np.testing.assert_array_equal(decoded, cv2.imdecode(cv2.imencode(".jpg", expected)[1], cv2.IMREAD_COLOR))
    # Caffe's quirk: it compares the channels of the image it read *as asked*, so with --gray a file of
    # the wanted type is stored as it is (colour); only a resize makes it re-encode the gray image
    convert_imageset("imgs/", "list.txt", "gray_png_db", encode_type="png", gray=True)
    for i, (_, value) in enumerate(records("gray_png_db")):
        assert caffe_pb2.Datum.FromString(value).data == (images / f"imgs/img_{i:03d}.png").read_bytes()
    convert_imageset("imgs/", "list.txt", "gray_small_db", encode_type="png", gray=True, resize_height=4, resize_width=5)
    for i, (_, value) in enumerate(records("gray_small_db")):
        decoded = cv2.imdecode(np.frombuffer(caffe_pb2.Datum.FromString(value).data, np.uint8), cv2.IMREAD_UNCHANGED)
        gray = cv2.imread(f"imgs/img_{i:03d}.png", cv2.IMREAD_GRAYSCALE)
        np.testing.assert_array_equal(decoded, cv2.resize(gray, (5, 4), interpolation=cv2.INTER_LINEAR))


def test_shuffle_is_a_permutation_with_keys_in_the_new_order(images):
    convert_imageset("imgs/", "list.txt", "db", shuffle=True, seed=3)
    got = records("db")
    names = [k.decode().split("_", 1)[1] for k, _ in got]
    assert sorted(names) == [f"img_{i:03d}.png" for i in range(4)] and names != sorted(names)
    for key, value in got:
        assert caffe_pb2.Datum.FromString(value).label == LABELS[int(key.decode()[-7:-4])]


def test_unreadable_images_are_left_out_with_their_line_numbers_kept(images, caplog):
    (images / "imgs" / "bad.png").write_bytes(b"nonsense")
    (images / "list.txt").write_text("img_000.png 2\nmissing.png 3\nbad.png 4\nimg_001.png 0\n")
    with caplog.at_level(logging.INFO):
        result = convert_imageset("imgs/", "list.txt", "db")
    assert result.written == 2 and result.unreadable == ["imgs/missing.png", "imgs/bad.png"]
    assert [k for k, _ in records("db")] == [b"00000000_img_000.png", b"00000003_img_001.png"]
    assert "Could not open or find file 'imgs/missing.png'" in caplog.text
    assert "2 of 4 images could not be read and are not in db" in caplog.text


def test_check_size_and_existing_databases(images):
    write_image_files(images / "imgs2", random_images(1, (4, 4, 3)), [0])
    (images / "list2.txt").write_text("../imgs/img_000.png 1\nimg_000.png 2\n")
    with pytest.raises(CaffeCaeError, match=r"imgs2/img_000.png \(line 2 of list2.txt\): Incorrect data field size 48"):
        convert_imageset("imgs2/", "list2.txt", "db", check_size=True)
    with pytest.raises(CaffeCaeError, match="LMDB 'db': already exists"):
        convert_imageset("imgs/", "list.txt", "db")
    with pytest.raises(CaffeCaeError, match="Unknown db backend rocksdb"):
        convert_imageset("imgs/", "list.txt", "db2", backend="rocksdb")


def test_leveldb_backend(images):
    plyvel = pytest.importorskip("plyvel")
    convert_imageset("imgs/", "list.txt", "ldb", backend="leveldb")
    db = plyvel.DB("ldb")
    assert [v for _, v in db] == [caffe_datum(cv2.imread(f"imgs/img_{i:03d}.png"), LABELS[i]) for i in range(4)]
    db.close()
    blob, _ = compute_image_mean("ldb", "leveldb")
    assert blob.channels == 3


def test_mean_is_caffes_float32_running_sum(images):
    convert_imageset("imgs/", "list.txt", "db")
    blob, channel_means = compute_image_mean("db")
    assert (blob.num, blob.channels, blob.height, blob.width) == (1, 3, 9, 11) and not blob.HasField("shape")
    bgr = RGB[..., ::-1].transpose(0, 3, 1, 2)
    total = np.zeros((3, 9, 11), np.float32)
    for image in bgr:
        total += image.astype(np.float32)
    mean = total / np.float32(4)
    np.testing.assert_array_equal(np.asarray(blob.data, np.float32).reshape(3, 9, 11), mean)
    np.testing.assert_allclose(channel_means, mean.reshape(3, -1).mean(axis=1), rtol=1e-6)


def test_mean_of_encoded_and_corrupt_databases(images):
    convert_imageset("imgs/", "list.txt", "enc", encoded=True)
    convert_imageset("imgs/", "list.txt", "raw")
    np.testing.assert_array_equal(compute_image_mean("enc")[0].data, compute_image_mean("raw")[0].data)
    env = lmdb.open("raw", map_size=1 << 24)
    with env.begin(write=True) as txn:
        txn.put(b"00000002_img_002.png", b"\x08\x03\x10")  # a Datum cut short
    env.close()
    with pytest.raises(CaffeCaeError, match=r"record 2 \(key '00000002_img_002.png'\) of LMDB 'raw': "):
        compute_image_mean("raw")


def test_command_line_with_caffes_flag_spellings(images, caplog, capsys):
    with caplog.at_level(logging.INFO):
        assert cli.main(["convert_imageset", "--resize_height=7", "-resize_width", "8", "--shuffle=false", "-gray",
                         "--noencoded", "imgs/", "list.txt", "db", "-backend=lmdb"]) == 0
    assert "A total of 4 images." in caplog.text and "Processed 4 files." in caplog.text
    datum = caffe_pb2.Datum.FromString(records(images / "db")[0][1])
    assert (datum.channels, datum.height, datum.width) == (1, 7, 8)
    caplog.clear()
    with caplog.at_level(logging.INFO):
        assert cli.main(["compute_image_mean", "-backend=lmdb", "db", "mean.binaryproto"]) == 0
    assert "Number of channels: 1" in caplog.text and "mean_value channel [0]:" in caplog.text
    mean = read_binary(images / "mean.binaryproto", caffe_pb2.BlobProto, "mean")
    assert (mean.channels, mean.height, mean.width) == (1, 7, 8)
    capsys.readouterr()
    assert cli.main(["compute_image_mean", "nothere"]) == 1
    assert capsys.readouterr().err == (f"caffe-cae compute_image_mean: error: LMDB 'nothere': no such database "
                                       f"(relative to the working directory {images})\n")


def test_a_bad_record_stops_a_command_with_one_line(images, capsys):
    """`caffe-cae time` on a net whose database holds a record that is no Datum."""
    from tests.helpers.datasets import data_net, raw_datum, write_lmdb

    write_lmdb(images / "bad_db", [raw_datum(RGB[0].transpose(2, 0, 1), 0), b"\x0a\xff\xff"])
    (images / "net.prototxt").write_text(str(data_net("bad_db", 2, data_param="prefetch: 0")))
    assert cli.main(["time", "--model", "net.prototxt", "--iterations", "2"]) == 1
    error = capsys.readouterr().err
    assert error.startswith("caffe-cae time: error: layer 'data' (Data): record 1 (key '00000001') of LMDB "
                            "'bad_db': not a Datum (") and error.count("\n") == 1
