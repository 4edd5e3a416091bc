"""Small databases, images and data-layer nets for the data-path tests."""
from __future__ import annotations

import pathlib

import numpy as np

from caffe_cae.data.datum import encoded_datum
from caffe_cae.proto import caffe_pb2


def raw_datum(image_chw: np.ndarray, label: int) -> bytes:
    """A raw Datum as ``caffe.io.array_to_datum`` makes it (uint8 -> data, float -> float_data)."""
    datum = caffe_pb2.Datum()
    datum.channels, datum.height, datum.width = image_chw.shape
    if image_chw.dtype == np.uint8:
        datum.data = image_chw.tobytes()
    else:
        datum.float_data.extend(image_chw.astype(np.float32).ravel().tolist())
    datum.label = int(label)
    return datum.SerializeToString()


def png_datum(image_hwc_rgb: np.ndarray, label: int) -> bytes:
    """An encoded Datum holding a PNG of an RGB (or gray H x W) image."""
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(image_hwc_rgb).save(buffer, "PNG")
    return encoded_datum(buffer.getvalue(), label).SerializeToString()


def write_lmdb(path, values: list[bytes], keys: list[bytes] | None = None) -> pathlib.Path:
    """An LMDB with keys ``%08d`` (or ``keys``) and the given values, as the golden cases'."""
    import lmdb

    keys = keys or [b"%08d" % i for i in range(len(values))]
    env = lmdb.open(str(path), map_size=1 << 26)
    with env.begin(write=True) as txn:
        for key, value in zip(keys, values):
            txn.put(key, value)
    env.close()
    return pathlib.Path(path)


def random_images(count: int, shape, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (count, *shape), dtype=np.uint8)


def data_net(source, batch_size: int, transform: str = "", data_param: str = "", tops=("data", "label"),
             layer_type: str = "Data", backend: str = "LMDB") -> caffe_pb2.NetParameter:
    """A net of one data layer reading ``source``."""
    from caffe_cae.prototxt import parse_text

    top_text = " ".join(f'top: "{t}"' for t in tops)
    if layer_type == "Data":
        params = f'data_param {{ source: "{source}" batch_size: {batch_size} backend: {backend} {data_param} }}'
    elif layer_type == "ImageData":
        params = f'image_data_param {{ source: "{source}" batch_size: {batch_size} {data_param} }}'
    else:
        params = f'window_data_param {{ source: "{source}" batch_size: {batch_size} {data_param} }}'
    text = (f'name: "d" layer {{ name: "data" type: "{layer_type}" {top_text} {params} '
            f'transform_param {{ {transform} }} }}')
    return parse_text(text, caffe_pb2.NetParameter)


def write_image_files(folder, images_rgb: np.ndarray, labels, ext: str = "png") -> list[str]:
    """Save each image (N x H x W x 3 RGB or N x H x W gray) as ``img_<i>.<ext>``; returns the list lines."""
    from PIL import Image

    folder = pathlib.Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    lines = []
    for i, (image, label) in enumerate(zip(images_rgb, labels)):
        name = f"img_{i:03d}.{ext}"
        Image.fromarray(image).save(folder / name)
        lines.append(f"{name} {int(label)}")
    return lines
