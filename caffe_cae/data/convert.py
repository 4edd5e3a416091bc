"""What Caffe's ``convert_imageset`` tool does: image files + labels into a database of Datums.

Keys are ``%08d_<file name as listed>`` (the line's index, so keys sort in list order), values
serialised Datums, exactly as the tool writes them, so real Caffe reads the result:

* raw (default): ``CVMatToDatum`` of the image as ``cv::imread`` gives it (BGR, or gray with
  ``gray``), resized with OpenCV's bilinear resize when both ``resize_height`` and
  ``resize_width`` are set;
* ``encoded``: the file's own bytes when it is already of the wanted type and not resized, else
  the image re-encoded as ``encode_type`` (default: the file's extension).  As in Caffe, whose
  channel check looks at the image already read in the asked colour mode, ``gray`` does not
  make a file of the wanted type re-encoded: it is stored as it is (decode it with
  ``force_gray``).

An image that cannot be read is logged ("Could not open or find file ...") and left out, as
Caffe does; the keys keep the list's line numbers.  ``check_size`` stops at the first image of
another size.  Records are committed every 1000 images.
"""
from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass

import numpy as np

from caffe_cae.data.datum import encoded_datum, image_datum
from caffe_cae.data.db import create_db
from caffe_cae.data.images import ImageError, encode_image, read_image
from caffe_cae.data.lists import read_image_list
from caffe_cae.data.resize import resize_linear
from caffe_cae.errors import CaffeCaeError

log = logging.getLogger(__name__)

COMMIT_EVERY = 1000


@dataclass
class ConvertResult:
    listed: int
    written: int
    unreadable: list[str]


@contextlib.contextmanager
def progress(total: int, desc: str, unit: str):
    """A tqdm bar on a terminal (log lines print above it); a no-op bar elsewhere."""
    from tqdm import tqdm
    from tqdm.contrib.logging import logging_redirect_tqdm

    with tqdm(total=total, desc=desc, unit=unit, disable=None, leave=False, dynamic_ncols=True) as bar:
        if bar.disable:
            yield bar
        else:
            with logging_redirect_tqdm(loggers=[logging.getLogger()]):
                yield bar


def _same_type(file_name: str, encoding: str) -> bool:
    """Caffe's ``matchExt``: the file's extension is the encoding (``jpeg`` counts as ``jpg``)."""
    ext = file_name.rsplit(".", 1)[-1].lower() if "." in file_name else file_name.lower()
    encoding = encoding.lower()
    return ext == encoding or (encoding == "jpg" and ext == "jpeg")


def convert_imageset(root_folder: str, list_file: str, db_path: str, *, gray: bool = False,
                     shuffle: bool = False, backend: str = "lmdb", resize_height: int = 0,
                     resize_width: int = 0, check_size: bool = False, encoded: bool = False,
                     encode_type: str = "", seed: int | None = None) -> ConvertResult:
    """Write the images of ``list_file`` (``<file> <label>`` lines, files under ``root_folder``,
    joined by plain concatenation as Caffe does) into a new database ``db_path``."""
    color = not gray
    lines = read_image_list(list_file, "image list")
    if shuffle:
        log.info("Shuffling data")
        order = np.random.default_rng(seed).permutation(len(lines))
        lines = [lines[i] for i in order]
    log.info("A total of %d images.", len(lines))
    if encode_type and not encoded:
        log.info("encode_type specified, assuming encoded=true.")
    resize_height, resize_width = max(0, resize_height), max(0, resize_width)
    resize = resize_height > 0 and resize_width > 0

    writer = create_db(db_path, backend)
    data_size = None
    count = 0
    unreadable = []
    try:
        with progress(len(lines), "convert_imageset", "img") as bar:
            for line_id, (name, label) in enumerate(lines):
                bar.update(1)
                path = root_folder + name
                try:
                    image = read_image(path, color)
                except ImageError as err:
                    log.error("%s", err)
                    unreadable.append(path)
                    continue
                if resize:
                    image = resize_linear(image, resize_height, resize_width)
                datum = _datum(path, name, image, label, color, resize, encoded, encode_type)
                if check_size:
                    size = len(datum.data)
                    if data_size is None:
                        data_size = size
                    elif size != data_size:
                        raise CaffeCaeError(f"{path} (line {line_id + 1} of {list_file}): Incorrect data field size "
                                            f"{size} (the first image had {data_size}; --check_size)")
                key = f"{line_id:08d}_{name}".encode("utf-8")
                writer.put(key, datum.SerializeToString())
                count += 1
                if count % COMMIT_EVERY == 0:
                    writer.commit()
                    log.info("Processed %d files.", count)
    finally:
        writer.close()
    if count % COMMIT_EVERY != 0:
        log.info("Processed %d files.", count)
    if unreadable:
        log.warning("%d of %d images could not be read and are not in %s (first: %s)",
                    len(unreadable), len(lines), db_path, unreadable[0])
    return ConvertResult(len(lines), count, unreadable)


def _datum(path, name, image, label, color, resize, encoded, encode_type):
    encoding = encode_type
    if encoded and not encoding:  # guess the encoding from the file name
        if "." not in name:
            raise CaffeCaeError(f"{path}: Failed to guess the encoding of '{name}' (give --encode_type)")
        encoding = name.rsplit(".", 1)[1].lower()
    if not encoding:
        return image_datum(image, label)
    if (image.shape[2] == 3) == color and not resize and _same_type(name, encoding):
        with open(path, "rb") as handle:  # ReadFileToDatum: the file as it is
            return encoded_datum(handle.read(), label)
    return encoded_datum(encode_image(image, encoding), label)
