"""The DataTransformer, option by option (Caffe's data_transformer.cpp semantics)."""
import numpy as np
import pytest

from caffe_cae.data.transformer import DataTransformer, params_shape, read_mean_file
from caffe_cae.errors import CaffeCaeError
from caffe_cae.proto import caffe_pb2
from caffe_cae.prototxt import parse_text
from caffe_cae.weights import write_binary

TRAIN, TEST = caffe_pb2.TRAIN, caffe_pb2.TEST
IMAGE = np.random.default_rng(0).integers(0, 256, (3, 7, 9), dtype=np.uint8)


def transformer(text: str, phase=TEST, seed=0) -> DataTransformer:
    rng = np.random.default_rng(seed)
    param = parse_text(text, caffe_pb2.TransformationParameter)
    return DataTransformer(param, phase, lambda message: CaffeCaeError(message), lambda: rng)


def run(t: DataTransformer, image=IMAGE) -> tuple[np.ndarray, bool]:
    out = np.full(t.output_shape(image.shape, "test image"), np.nan, np.float32)
    mirrored = t.transform(image, out, "test image")
    return out, mirrored


def test_no_options_is_the_image_as_float():
    out, mirrored = run(transformer(""))
    np.testing.assert_array_equal(out, IMAGE.astype(np.float32))
    assert not mirrored


def test_scale_rounds_like_caffe_in_float32():
    out, _ = run(transformer("scale: 0.00390625"))
    np.testing.assert_array_equal(out, IMAGE.astype(np.float32) * np.float32(0.00390625))
    out, _ = run(transformer("scale: 0.017"))
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, IMAGE.astype(np.float32) * np.float32(0.017))


def test_mean_values_one_per_channel_or_one_for_all():
    out, _ = run(transformer("mean_value: 104 mean_value: 117 mean_value: 123 scale: 0.5"))
    expected = (IMAGE.astype(np.float32) - np.float32([104, 117, 123]).reshape(3, 1, 1)) * np.float32(0.5)
    np.testing.assert_array_equal(out, expected)
    out, _ = run(transformer("mean_value: 100"))
    np.testing.assert_array_equal(out, IMAGE.astype(np.float32) - 100)
    with pytest.raises(CaffeCaeError, match="Specify either 1 mean_value or as many as channels: 3"):
        run(transformer("mean_value: 1 mean_value: 2"))


def mean_file(tmp_path, mean: np.ndarray) -> str:
    blob = caffe_pb2.BlobProto(num=1, channels=mean.shape[0], height=mean.shape[1], width=mean.shape[2])
    blob.data.extend(mean.ravel().tolist())
    write_binary(tmp_path / "mean.binaryproto", blob)
    return str(tmp_path / "mean.binaryproto")


def test_mean_file_is_taken_at_the_centre_crop_in_test(tmp_path):
    mean = np.random.default_rng(1).uniform(0, 255, (3, 7, 9)).astype(np.float32)
    path = mean_file(tmp_path, mean)
    np.testing.assert_array_equal(read_mean_file(path), mean)
    out, _ = run(transformer(f'mean_file: "{path}" crop_size: 4 scale: 0.5'))
    top, left = (7 - 4) // 2, (9 - 4) // 2  # (1, 2): integer division
    expected = (IMAGE[:, top:top + 4, left:left + 4].astype(np.float32) - mean[:, top:top + 4, left:left + 4]) * np.float32(0.5)
    np.testing.assert_array_equal(out, expected)


def test_mean_file_errors(tmp_path):
    path = mean_file(tmp_path, np.zeros((3, 5, 5), np.float32))
    with pytest.raises(CaffeCaeError, match=r"mean_file .* is 3 x 5 x 5 \(the mean must have the image's uncropped size\)"):
        run(transformer(f'mean_file: "{path}"'))
    with pytest.raises(CaffeCaeError, match="Cannot specify mean_file and mean_value at the same time"):
        transformer(f'mean_file: "{path}" mean_value: 3')
    with pytest.raises(CaffeCaeError, match=r"mean_file: .*nothere.binaryproto: no such file"):
        transformer(f'mean_file: "{tmp_path}/nothere.binaryproto"')
    (tmp_path / "junk").write_bytes(b"\xff\xff\xff")
    with pytest.raises(CaffeCaeError, match="not a binary BlobProto"):
        transformer(f'mean_file: "{tmp_path}/junk"')


def test_random_crop_in_train_covers_every_offset():
    t = transformer("crop_size: 4", TRAIN, seed=3)
    seen = set()
    for _ in range(400):
        out, _ = run(t)
        matches = [(r, c) for r in range(4) for c in range(6)
                   if np.array_equal(out, IMAGE[:, r:r + 4, c:c + 4].astype(np.float32))]
        assert len(matches) == 1
        seen.add(matches[0])
    assert seen == {(r, c) for r in range(4) for c in range(6)}  # (7-4+1) x (9-4+1) offsets


@pytest.mark.parametrize("phase", [TRAIN, TEST], ids=["TRAIN", "TEST"])
def test_mirror_flips_half_the_images_in_both_phases(phase):
    t = transformer("mirror: true mean_value: 10 scale: 2", phase, seed=5)
    plain = (IMAGE.astype(np.float32) - 10) * 2
    flips = 0
    for _ in range(400):
        out, mirrored = run(t)
        np.testing.assert_array_equal(out, plain[:, :, ::-1] if mirrored else plain)
        flips += mirrored
    assert 150 < flips < 250  # 400 draws of p = 1/2: 5 standard deviations


def test_mirror_with_crop_uses_the_unflipped_mean_position(tmp_path):
    mean = np.random.default_rng(2).uniform(0, 255, (3, 7, 9)).astype(np.float32)
    t = transformer(f'mirror: true crop_size: 5 mean_file: "{mean_file(tmp_path, mean)}"', TEST, seed=1)
    window = (slice(None), slice(1, 6), slice(2, 7))
    expected = IMAGE[window].astype(np.float32) - mean[window]
    seen = set()
    for _ in range(20):
        out, mirrored = run(t)
        np.testing.assert_array_equal(out, expected[:, :, ::-1] if mirrored else expected)
        seen.add(mirrored)
    assert seen == {True, False}


def test_float_images_go_through_the_same_transform():
    image = np.random.default_rng(4).normal(size=(2, 5, 5)).astype(np.float32)
    out, _ = run(transformer("mean_value: 0.5 scale: 3 crop_size: 3"), image)
    np.testing.assert_array_equal(out, (image[:, 1:4, 1:4] - np.float32(0.5)) * np.float32(3))


def test_shape_checks():
    t = transformer("crop_size: 8")
    with pytest.raises(CaffeCaeError, match="image of 7 x 9 is smaller than crop_size 8"):
        t.output_shape(IMAGE.shape, "rec")
    t = transformer("")
    out = np.zeros((3, 7, 8), np.float32)
    with pytest.raises(CaffeCaeError, match="does not fit the batch of 3 x 7 x 8 items"):
        t.transform(IMAGE, out, "rec")
    with pytest.raises(CaffeCaeError, match="cannot set both force_color and force_gray"):
        transformer("force_color: true force_gray: true").color()


def test_shape_from_parameters_alone(tmp_path):
    def shape(text, **kw):
        return params_shape(parse_text(text, caffe_pb2.TransformationParameter), **kw)

    assert shape("crop_size: 227 mean_value: 104 mean_value: 117 mean_value: 123") == (3, 227, 227)
    assert shape("crop_size: 227") is None  # channels unknown
    assert shape("crop_size: 227 mean_value: 104") is None  # one value: any channel count
    assert shape("crop_size: 5 force_gray: true") == (1, 5, 5)
    assert shape("scale: 0.1", channels=3, size=(10, 12)) == (3, 10, 12)
    path = mean_file(tmp_path, np.zeros((3, 32, 32), np.float32))
    assert shape(f'mean_file: "{path}"') == (3, 32, 32)
    assert shape(f'mean_file: "{path}" crop_size: 28') == (3, 28, 28)
    assert shape('mean_file: "absent.binaryproto" crop_size: 28') is None
