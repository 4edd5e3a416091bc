"""The Data layer over LMDB/LevelDB: record order, wrapping, prefetching, Datum kinds, rand_skip,
Caffe's random mirroring (the golden case Caffe's RNG decides) and bad data."""
import json
import logging
import shutil

import numpy as np
import pytest

import caffe_cae
from caffe_cae.errors import CaffeCaeError
from caffe_cae.proto import caffe_pb2
from tests.helpers.datasets import data_net, png_datum, random_images, raw_datum, write_lmdb
from tests.helpers.paths import GOLDEN_BVLC

IMAGES = random_images(7, (3, 4, 5), seed=1)
LABELS = np.arange(7) * 3 % 5


@pytest.fixture
def db(tmp_path):
    return str(write_lmdb(tmp_path / "db", [raw_datum(i, l) for i, l in zip(IMAGES, LABELS)]))


def batches(net, count):
    out = []
    for _ in range(count):
        net.forward()
        out.append((net.blobs["data"].data.copy(), net.blobs["label"].data.copy()))
    return out


def test_records_in_key_order_wrapping_at_the_end(db, caplog):
    with caplog.at_level(logging.INFO):
        net = caffe_cae.Net(data_net(db, 3), caffe_cae.TEST)
        assert f"Opened lmdb {db}" in caplog.text and "output data size: 3,3,4,5" in caplog.text
        assert net.blobs["data"].shape == (3, 3, 4, 5) and net.blobs["label"].shape == (3,)
        got = batches(net, 5)
    order = [0, 1, 2, 3, 4, 5, 6, 0, 1, 2, 3, 4, 5, 6, 0]
    for b, (data, label) in enumerate(got):
        rows = order[3 * b:3 * b + 3]
        np.testing.assert_array_equal(data, IMAGES[rows].astype(np.float32))
        np.testing.assert_array_equal(label, LABELS[rows])
    assert "Restarting data prefetching from start." in caplog.text


def test_keys_sort_as_bytes_not_as_written(tmp_path):
    keys = [b"00000002_c", b"00000000_a", b"00000010_z", b"00000001_b"]
    path = write_lmdb(tmp_path / "db", [raw_datum(IMAGES[i], i) for i in range(4)], keys)
    net = caffe_cae.Net(data_net(str(path), 4), caffe_cae.TEST)
    net.forward()
    np.testing.assert_array_equal(net.blobs["label"].data, [1, 3, 0, 2])  # 0..0_a, 0..1_b, 0..2_c, 0..10_z


def test_a_batch_larger_than_the_database_wraps_inside_the_batch(db):
    net = caffe_cae.Net(data_net(db, 10), caffe_cae.TEST)
    net.forward()
    np.testing.assert_array_equal(net.blobs["label"].data, LABELS[[0, 1, 2, 3, 4, 5, 6, 0, 1, 2]])


@pytest.mark.parametrize("depth", [0, 1, 4, 9, "reference engine"])
def test_prefetching_never_reorders_records_nor_random_draws(db, depth):
    """The same seed gives the same batches whatever the prefetch depth (random crop + mirror);
    the reference engine reads synchronously, on no worker thread."""
    from caffe_cae import engine

    def run(prefetch):
        net = caffe_cae.Net(data_net(db, 3, "crop_size: 3 mirror: true", f"prefetch: {prefetch}"), caffe_cae.TRAIN,
                            seed=11)
        return batches(net, 6), net

    reference, _ = run(0)
    if depth == "reference engine":
        with engine.using(engine.REFERENCE):
            got, net = run(4)
        assert net.layers[0].prefetcher._pool is None
    else:
        got, _ = run(depth)
    for (d0, l0), (d1, l1) in zip(reference, got):
        np.testing.assert_array_equal(d1, d0)
        np.testing.assert_array_equal(l1, l0)
    np.testing.assert_array_equal(np.concatenate([l for _, l in got]), LABELS[np.arange(18) % 7])


def test_one_top_means_no_label(db):
    net = caffe_cae.Net(data_net(db, 2, tops=("data",)), caffe_cae.TEST)
    net.forward()
    assert list(net.blobs) == ["data"]
    np.testing.assert_array_equal(net.blobs["data"].data, IMAGES[:2])


def test_float_datums(tmp_path):
    floats = np.random.default_rng(3).normal(size=(3, 2, 3, 3)).astype(np.float32)
    path = write_lmdb(tmp_path / "db", [raw_datum(f, 1) for f in floats])
    net = caffe_cae.Net(data_net(str(path), 3, "scale: 2 mean_value: 0.25"), caffe_cae.TEST)
    net.forward()
    np.testing.assert_array_equal(net.blobs["data"].data, (floats - np.float32(0.25)) * np.float32(2))


def test_encoded_datums_decode_to_bgr_and_force_gray(tmp_path):
    rgb = random_images(2, (5, 6, 3), seed=4)
    path = write_lmdb(tmp_path / "db", [png_datum(image, 0) for image in rgb])
    net = caffe_cae.Net(data_net(str(path), 2), caffe_cae.TEST)
    net.forward()
    np.testing.assert_array_equal(net.blobs["data"].data, rgb[..., ::-1].transpose(0, 3, 1, 2))
    net = caffe_cae.Net(data_net(str(path), 2, "force_gray: true"), caffe_cae.TEST)
    net.forward()
    r, g, b = (rgb[..., i].astype(np.uint32) for i in range(3))
    gray = np.where((r == g) & (g == b), r, (9797 * r + 19234 * g + 3737 * b) >> 15)  # libpng's, as OpenCV
    np.testing.assert_array_equal(net.blobs["data"].data, gray[:, None].astype(np.float32))


def test_rand_skip_starts_at_a_random_record_then_keeps_order(db):
    firsts = set()
    for seed in range(30):
        net = caffe_cae.Net(data_net(db, 7, data_param="rand_skip: 5"), caffe_cae.TEST, seed=seed)
        net.forward()
        labels = net.blobs["label"].data
        start = int(np.flatnonzero(LABELS == labels[0])[0])
        np.testing.assert_array_equal(labels, LABELS[(start + np.arange(7)) % 7])
        firsts.add(start)
    assert firsts == {0, 1, 2, 3, 4}


def test_each_batch_takes_the_size_of_its_first_record(tmp_path):
    """Caffe reshapes the data top per batch (inputs of varying size with batch 1)."""
    small, large = random_images(1, (1, 2, 3), 5)[0], random_images(1, (1, 4, 4), 6)[0]
    path = write_lmdb(tmp_path / "db", [raw_datum(small, 0), raw_datum(large, 1)])
    net = caffe_cae.Net(data_net(str(path), 1), caffe_cae.TEST)
    net.forward()
    assert net.blobs["data"].shape == (1, 1, 2, 3)
    net.forward()
    assert net.blobs["data"].shape == (1, 1, 4, 4)
    np.testing.assert_array_equal(net.blobs["data"].data[0], large)


def test_mirror_in_test_phase_golden(tmp_path, monkeypatch):
    """Caffe's RNG decides which items are mirrored (info.json says which for Caffe's run); what is
    determined: every item is its record as stored or flipped left-right, about half are flipped."""
    case = tmp_path / "case"
    shutil.copytree(GOLDEN_BVLC / "data_lmdb_mirror_test", case)
    info = json.loads((case / "info.json").read_text())
    golden = np.load(case / "data.npz")
    stored = golden["prepared/db/data"].astype(np.float32)
    for item, how in enumerate(info["mirrored"]):  # what Caffe did: the two candidates are right
        expected = stored[item][:, :, ::-1] if how == "mirrored" else stored[item]
        np.testing.assert_array_equal(golden["out/data"][item], expected)
    monkeypatch.chdir(case)
    net = caffe_cae.Net("net.prototxt", caffe_cae.TEST, weights="init.caffemodel")
    flips = 0
    for _ in range(100):
        net.forward()
        np.testing.assert_array_equal(net.blobs["label"].data, golden["out/label"])
        for item in range(4):
            out = net.blobs["data"].data[item]
            flipped = np.array_equal(out, stored[item][:, :, ::-1])
            assert flipped or np.array_equal(out, stored[item]), f"item {item} is neither its record nor its flip"
            flips += flipped
    assert 140 < flips < 260  # 400 fair draws: 6 standard deviations


def test_leveldb_reads_the_same_records(tmp_path):
    plyvel = pytest.importorskip("plyvel")
    db = plyvel.DB(str(tmp_path / "ldb"), create_if_missing=True)
    for i in (2, 0, 1):
        db.put(b"%08d" % i, raw_datum(IMAGES[i], int(LABELS[i])))
    db.close()
    net = caffe_cae.Net(data_net(str(tmp_path / "ldb"), 4, backend="LEVELDB"), caffe_cae.TEST)
    net.forward()
    np.testing.assert_array_equal(net.blobs["label"].data, LABELS[[0, 1, 2, 0]])
    other = caffe_cae.Net(data_net(str(tmp_path / "ldb"), 2, backend="LEVELDB"), caffe_cae.TEST)  # LevelDB locks
    other.forward()
    np.testing.assert_array_equal(other.blobs["label"].data, LABELS[[0, 1]])


def test_leveldb_without_plyvel_says_how_to_convert(tmp_path, monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_plyvel(name, *args, **kwargs):
        if name == "plyvel":
            raise ImportError("no plyvel")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_plyvel)
    (tmp_path / "ldb").mkdir()
    with pytest.raises(CaffeCaeError, match=r"LevelDB needs the plyvel package \(pip install plyvel\); or convert "
                                            r"the images to LMDB with caffe-cae convert_imageset --backend lmdb"):
        caffe_cae.Net(data_net(str(tmp_path / "ldb"), 1, backend="LEVELDB"), caffe_cae.TEST)


# -- bad data: one line naming the database and the record -----------------------------------------


def forward_error(tmp_path, values, batch=2, transform="", keys=None) -> str:
    path = write_lmdb(tmp_path / "db", values, keys)
    with pytest.raises(CaffeCaeError) as err:
        net = caffe_cae.Net(data_net(str(path), batch, transform), caffe_cae.TEST)
        net.forward()
        net.forward()
    message = str(err.value)
    assert "\n" not in message
    return message


def test_a_value_that_is_no_datum(tmp_path):
    message = forward_error(tmp_path, [raw_datum(IMAGES[0], 0), b"\xff\xff\xff\xff"])
    assert message.startswith("layer 'data' (Data): record 1 (key '00000001') of LMDB ")
    assert "not a Datum" in message


def test_a_datum_of_the_wrong_size(tmp_path):
    bad = caffe_pb2.Datum(channels=3, height=4, width=5, data=b"\x00" * 59, label=1).SerializeToString()
    message = forward_error(tmp_path, [raw_datum(IMAGES[0], 0), raw_datum(IMAGES[1], 0), bad], keys=None)
    assert "record 2 (key '00000002')" in message
    assert "Datum data has 59 bytes, channels x height x width = 3 x 4 x 5 = 60" in message


def test_an_undecodable_encoded_image(tmp_path):
    bad = caffe_pb2.Datum(data=b"not an image", encoded=True, label=2).SerializeToString()
    message = forward_error(tmp_path, [bad], batch=1)
    assert "record 0 (key '00000000')" in message and "encoded image not a readable image" in message


def test_a_record_of_another_size_without_crop(tmp_path):
    message = forward_error(tmp_path, [raw_datum(IMAGES[0], 0), raw_datum(IMAGES[1, :, :3], 0)])
    assert "record 1 (key '00000001')" in message and "does not fit the batch of 3 x 4 x 5 items" in message


def test_a_corrupt_database_file(tmp_path):
    path = write_lmdb(tmp_path / "db", [raw_datum(IMAGES[i % 7], 0) for i in range(40)])
    data = bytearray((path / "data.mdb").read_bytes())
    data[2 * 4096:3 * 4096] = bytes(4096)  # a page of zeros where records were
    (path / "data.mdb").write_bytes(bytes(data))
    with pytest.raises(CaffeCaeError, match=r"layer 'data' \(Data\): .*LMDB '.*db'.*(corrupt|not a Datum)") as err:
        net = caffe_cae.Net(data_net(str(path), 40), caffe_cae.TEST)
        net.forward()
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("make, expected", [
    (lambda p: None, r"LMDB '.*nothere': no such database \(relative to the working directory"),
    (lambda p: p.mkdir(), r"LMDB '.*nothere': cannot open \(No such file or directory\)"),
    (lambda p: p.write_bytes(b"x" * 9000), r"LMDB '.*nothere': cannot open \(MDB_INVALID: File is not an LMDB file\)"),
    (lambda p: write_lmdb(p, []), r"LMDB '.*nothere': the database has no records"),
])
def test_databases_that_cannot_be_read(tmp_path, make, expected):
    make(tmp_path / "nothere")
    with pytest.raises(CaffeCaeError, match=r"layer 'data' \(Data\): " + expected):
        caffe_cae.Net(data_net(str(tmp_path / "nothere"), 1), caffe_cae.TEST)


def test_parameter_errors(db):
    with pytest.raises(CaffeCaeError, match="data_param.batch_size must be positive"):
        caffe_cae.Net(data_net(db, 0), caffe_cae.TEST)
    with pytest.raises(CaffeCaeError, match="image of 4 x 5 is smaller than crop_size 6"):
        caffe_cae.Net(data_net(db, 1, "crop_size: 6"), caffe_cae.TEST)
    with pytest.raises(CaffeCaeError, match="takes at most 2 top blob"):
        caffe_cae.Net(data_net(db, 1, tops=("a", "b", "c")), caffe_cae.TEST)


def test_deprecated_data_param_fields_are_reported(db, caplog):
    with caplog.at_level(logging.WARNING):
        caffe_cae.Net(data_net(db, 1, data_param="crop_size: 2"), caffe_cae.TEST)
    assert "data_param.crop_size is ignored (Caffe reads it from transform_param only)" in caplog.text
