"""Data layers (no bottoms): Input, HDF5Data, MemoryData, DummyData."""
from __future__ import annotations

import logging
import os

import numpy as np

from caffe_cae.errors import CaffeCaeError
from caffe_cae.layers.base import Layer
from caffe_cae.layers.common import RandomLayerMixin
from caffe_cae.layers.registry import register
from caffe_cae.proto import caffe_pb2

log = logging.getLogger(__name__)


@register("Input")
class InputLayer(Layer):
    """Tops whose values are fed from outside (``net.forward(data=...)``).

    ``input_param.shape``: none (tops stay 0-axis until fed), one shape for all tops, or one per
    top. Forward and backward do nothing.
    """

    is_data = True

    exact_bottoms = 0
    min_tops = 1

    def setup(self, bottom_shapes):
        shapes = [tuple(int(d) for d in s.dim) for s in self.param.input_param.shape]
        n_top = len(self.param.top)
        if len(shapes) not in (0, 1, n_top):
            raise self.error(f"Must specify 'shape' once, once per top blob, or not at all: "
                             f"{n_top} tops vs. {len(shapes)} shapes.")
        for shape in shapes:
            if any(d < 0 for d in shape):
                raise self.error(f"negative dimension in input shape {list(shape)}")
        self.shapes = shapes
        return []

    def reshape(self, bottom_shapes):
        n_top = len(self.param.top)
        if not self.shapes:
            return [()] * n_top
        return [self.shapes[0 if len(self.shapes) == 1 else i] for i in range(n_top)]

    def forward(self, bottom, top):
        pass

    def backward(self, top, propagate_down, bottom):
        pass


HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"


def read_list_file(layer: Layer, source: str) -> list[str]:
    """HDF5 file names listed in ``source`` (whitespace-separated, like Caffe's ``>>`` loop).

    Caffe resolves ``source`` and the listed files against the current working directory; a
    listed file that does not exist there is also looked for next to the list file.
    """
    if not source:
        raise layer.error("hdf5_data_param.source is not set")
    try:
        with open(source, "rb") as f:
            raw = f.read(1 << 24)
    except OSError as err:
        raise layer.error(f"cannot read HDF5 list file '{source}' (relative to the working directory "
                          f"{os.getcwd()}): {err.strerror}") from None
    if raw.startswith(HDF5_SIGNATURE):
        raise layer.error(f"'{source}' is an HDF5 file; hdf5_data_param.source names a text file that lists "
                          f"HDF5 files, one a line")
    try:
        names = raw.decode("utf-8").split()
    except UnicodeDecodeError as err:
        raise layer.error(f"'{source}' is not a text list of HDF5 files (binary data at byte {err.start})") from None
    if "\0" in "".join(names):
        raise layer.error(f"'{source}' is not a text list of HDF5 files (it holds NUL bytes)")
    if not names:
        raise layer.error(f"Must have at least 1 HDF5 filename listed in '{source}'")
    folder = os.path.dirname(source)
    resolved = []
    for name in names:
        if not os.path.exists(name) and not os.path.isabs(name) and os.path.exists(os.path.join(folder, name)):
            name = os.path.join(folder, name)
        resolved.append(name)
    return resolved


@register("HDF5Data")
class HDF5DataLayer(RandomLayerMixin, Layer):
    """Rows of HDF5 datasets, ``batch_size`` per forward; one top per dataset, named like it.

    Reads rows in order (optionally ``shuffle``-d: file order once per pass, row order per
    file load and per pass, from the net's seeded rng) and wraps around row by row: a batch
    that runs past the end of a file continues with the next file (or the first one again),
    exactly like Caffe's HDF5DataLayer::Next. Values are converted to the blob dtype (float32).
    """

    is_data = True

    exact_bottoms = 0
    min_tops = 1

    def setup(self, bottom_shapes):
        if self.param.HasField("transform_param"):
            raise self.error("HDF5Data does not transform data (remove transform_param)")
        p = self.param.hdf5_data_param
        self.batch_size = int(p.batch_size)
        if self.batch_size <= 0:
            raise self.error("hdf5_data_param.batch_size must be > 0")
        self.shuffle = bool(p.shuffle)
        log.info("Loading list of HDF5 filenames from: %s", p.source)
        self.files = read_list_file(self, p.source)
        log.info("Number of HDF5 files: %d", len(self.files))
        self.file_order = np.arange(len(self.files))
        self.current_file = 0
        self.current_row = 0
        # Shapes come from the first listed file; with shuffle the initial file/row order is
        # drawn at the first forward, so the Net can hand over its seeded rng after setup.
        self._load(self.files[0], shuffle_rows=False)
        self._shuffle_pending = self.shuffle
        return []

    def _load(self, path: str, shuffle_rows: bool = True) -> None:
        import h5py  # imported lazily: only HDF5 nets need it

        from caffe_cae.fileio import probe_hdf5
        from caffe_cae.hdf5io import hdf5_errors, read_dataset

        log.info("Loading HDF5 file: %s", path)
        if os.path.isdir(path):
            raise self.error(f"Failed opening HDF5 file '{path}': is a directory")
        if not os.path.exists(path):
            raise self.error(f"Failed opening HDF5 file '{path}' (listed in '{self.param.hdf5_data_param.source}'): "
                             f"no such file (relative to the working directory {os.getcwd()})")
        try:
            h5 = h5py.File(path, "r")
        except OSError as err:
            raise self.error(f"Failed opening HDF5 file '{path}': {' '.join(str(err).split())}") from None
        try:
            probe_hdf5(path, "HDF5 data file")  # the HDF5 library hangs on some corrupt files
        except CaffeCaeError as err:
            h5.close()
            raise self.error(str(err)) from None
        try:
            with h5, hdf5_errors(path):
                arrays = []
                for name in self.param.top:
                    if name not in h5 or not isinstance(h5[name], h5py.Dataset):
                        raise self.error(f"Failed to find HDF5 dataset '{name}' in '{path}' "
                                         f"(datasets: {', '.join(sorted(h5.keys())) or 'none'})")
                    array = read_dataset(h5[name], path)
                    if array.ndim < 1:
                        raise self.error(f"HDF5 dataset '{name}' in '{path}' is a scalar; need at least 1 axis")
                    arrays.append(array)
        except CaffeCaeError as err:
            message = str(err)
            raise (err if message.startswith("layer '") else self.error(message)) from None
        rows = {a.shape[0] for a in arrays}
        if len(rows) != 1:
            raise self.error(f"All datasets must have same number of rows in '{path}': "
                             + ", ".join(f"{n} {list(a.shape)}" for n, a in zip(self.param.top, arrays)))
        n_rows = rows.pop()
        if n_rows == 0:
            raise self.error(f"HDF5 file '{path}' has no rows")
        if hasattr(self, "arrays"):
            for name, old, new in zip(self.param.top, self.arrays, arrays):
                if old.shape[1:] != new.shape[1:]:
                    raise self.error(f"dataset '{name}' has row shape {list(new.shape[1:])} in '{path}' "
                                     f"but {list(old.shape[1:])} in the first file")
        self.arrays = arrays
        self.row_order = np.arange(n_rows)
        if self.shuffle and shuffle_rows:
            self.random().shuffle(self.row_order)
        log.info("Successfully loaded %d rows", n_rows)

    def reshape(self, bottom_shapes):
        return [(self.batch_size,) + a.shape[1:] for a in self.arrays]

    def source_top_shapes(self):
        """The first listed file's dataset shapes (nothing loaded)."""
        import h5py

        from caffe_cae.fileio import probe_hdf5
        from caffe_cae.hdf5io import hdf5_errors

        p = self.param.hdf5_data_param
        path = read_list_file(self, p.source)[0]
        if os.path.isdir(path) or not os.path.exists(path):
            raise self.error(f"Failed opening HDF5 file '{path}': {'is a directory' if os.path.isdir(path) else 'no such file'}")
        try:
            with h5py.File(path, "r") as h5:
                probe_hdf5(path, "HDF5 data file")
                rows = []
                with hdf5_errors(path, "HDF5 data file"):
                    for name in self.param.top:
                        if name not in h5 or not isinstance(h5[name], h5py.Dataset) or not h5[name].shape:
                            raise self.error(f"Failed to find HDF5 dataset '{name}' (with one row per sample) in "
                                             f"'{path}'")
                        rows.append(tuple(int(d) for d in h5[name].shape[1:]))
        except OSError as err:
            raise self.error(f"Failed opening HDF5 file '{path}': {' '.join(str(err).split())}") from None
        except CaffeCaeError as err:
            raise (err if str(err).startswith("layer '") else self.error(str(err))) from None
        return [(int(p.batch_size), *row) for row in rows]

    def next_rows(self, tops: list[np.ndarray]) -> list[tuple[int, int]]:
        """Copy the next batch into the tops; returns (file index, row index) of each sample.

        Copies whole runs of rows from the loaded file at once; the file/row bookkeeping is
        Caffe's per-row ``Next()``, which can only wrap at the end of a run.
        """
        taken, i = [], 0
        while i < self.batch_size:
            start = self.current_row
            count = min(self.batch_size - i, self.arrays[0].shape[0] - start)
            rows = self.row_order[start:start + count]
            for out, array in zip(tops, self.arrays):
                out[i:i + count] = array[rows]
            file_index = int(self.file_order[self.current_file])
            taken += [(file_index, r) for r in rows.tolist()]
            i += count
            self.current_row = start + count - 1
            self._next()
        return taken

    def _next(self) -> None:
        self.current_row += 1
        if self.current_row < self.arrays[0].shape[0]:
            return
        if len(self.files) > 1:
            self.current_file += 1
            if self.current_file == len(self.files):
                self.current_file = 0
                if self.shuffle:
                    self.random().shuffle(self.file_order)
                log.debug("Looping around to first file.")
            self._load(self.files[self.file_order[self.current_file]])
        self.current_row = 0
        if self.shuffle:
            self.random().shuffle(self.row_order)

    def _initial_shuffle(self) -> None:
        self._shuffle_pending = False
        self.random().shuffle(self.file_order)
        if self.file_order[0] != 0:
            self._load(self.files[self.file_order[0]])
        else:
            self.random().shuffle(self.row_order)

    def forward(self, bottom, top):
        if self._shuffle_pending:
            self._initial_shuffle()
        self.last_rows = self.next_rows([t.data for t in top])

    def backward(self, top, propagate_down, bottom):
        pass


@register("MemoryData")
class MemoryDataLayer(Layer):
    """Batches from arrays handed over with :meth:`set_input_arrays` (pycaffe's
    ``net.set_input_arrays``): tops data (batch, channels, height, width) and label (batch,);
    each forward takes the next ``batch_size`` rows, wrapping around."""

    is_data = True

    exact_bottoms = 0
    exact_tops = 2

    def setup(self, bottom_shapes):
        p = self.param.memory_data_param
        self.batch_size, self.channels, self.height, self.width = (
            int(p.batch_size), int(p.channels), int(p.height), int(p.width))
        if self.batch_size * self.channels * self.height * self.width <= 0:
            raise self.error("batch_size, channels, height, and width must be specified and positive in memory_data_param")
        self.data = self.labels = None
        self.pos = 0
        return []

    def reshape(self, bottom_shapes):
        return [(self.batch_size, self.channels, self.height, self.width), (self.batch_size,)]

    def param_top_shapes(self):
        p = self.param.memory_data_param
        return [(p.batch_size, p.channels, p.height, p.width), (p.batch_size,)]

    def set_input_arrays(self, data, labels) -> None:
        """Use ``data`` (N, channels, height, width) and ``labels`` (N,) or (N, 1, 1, 1);
        N must be a multiple of batch_size. Reading restarts at row 0."""
        data = np.asarray(data)
        labels = np.asarray(labels)
        want = (self.channels, self.height, self.width)
        if data.ndim != 4 or data.shape[1:] != want:
            raise self.error(f"data array must have shape (N, {self.channels}, {self.height}, {self.width}), "
                             f"got {list(data.shape)}")
        if labels.ndim == 4 and labels.shape[1:] == (1, 1, 1):
            labels = labels.reshape(-1)
        if labels.ndim != 1:
            raise self.error(f"labels must have shape (N,) or (N, 1, 1, 1), got {list(labels.shape)}")
        if labels.shape[0] != data.shape[0]:
            raise self.error(f"data and labels must have the same first dimension ({data.shape[0]} vs {labels.shape[0]})")
        if data.shape[0] % self.batch_size:
            raise self.error(f"first dimensions of input arrays ({data.shape[0]}) must be a multiple of batch size "
                             f"{self.batch_size}")
        self.data = np.array(data, dtype=np.float32)
        self.labels = np.array(labels, dtype=np.float32)
        self.pos = 0

    def forward(self, bottom, top):
        if self.data is None:
            raise self.error("MemoryDataLayer needs to be initialized by calling set_input_arrays")
        rows = slice(self.pos, self.pos + self.batch_size)
        top[0].data[...] = self.data[rows]
        top[1].data[...] = self.labels[rows]
        self.pos = (self.pos + self.batch_size) % self.data.shape[0]

    def backward(self, top, propagate_down, bottom):
        pass


@register("DummyData")
class DummyDataLayer(RandomLayerMixin, Layer):
    """Tops filled by ``data_filler`` (none: constant 0; one for all tops, or one per top).

    Shapes from ``shape`` (once or per top) or the legacy num/channels/height/width lists. As
    in Caffe, constant-filled tops are written once; other tops are refilled every forward
    (random fillers draw from the net's seeded rng).
    """

    is_data = True

    exact_bottoms = 0
    min_tops = 1

    def setup(self, bottom_shapes):
        p = self.param.dummy_data_param
        n_top = len(self.param.top)
        if len(p.data_filler) not in (0, 1, n_top):
            raise self.error(f"Number of data fillers must be 0, 1 or equal to the number of tops: {n_top}; "
                             f"you specified {len(p.data_filler)} data fillers.")
        legacy = len(p.num) or len(p.channels) or len(p.height) or len(p.width)
        if legacy:
            if len(p.shape):
                raise self.error("Both shape and legacy fields were specified")
            dims = []
            for field in ("num", "channels", "height", "width"):
                values = list(getattr(p, field))
                if len(values) not in (1, n_top):
                    raise self.error(f"Must specify '{field}' once, or once per top blob ({n_top}); "
                                     f"specified {len(values)}.")
                dims.append(values)
            self.shapes = [tuple(int(d[0 if len(d) == 1 else i]) for d in dims) for i in range(n_top)]
        else:
            if len(p.shape) not in (1, n_top):
                raise self.error(f"Must specify 'shape' once, or once per top blob ({n_top}); specified {len(p.shape)}.")
            self.shapes = [tuple(int(d) for d in p.shape[0 if len(p.shape) == 1 else i].dim) for i in range(n_top)]
        if len(p.data_filler) == 0:
            default = caffe_pb2.FillerParameter(type="constant", value=0)
            self.fillers = [default] * n_top
        else:
            self.fillers = [p.data_filler[0 if len(p.data_filler) == 1 else i] for i in range(n_top)]
        self._filled = [None] * n_top  # the arrays a constant filler has already written
        return []

    def reshape(self, bottom_shapes):
        return list(self.shapes)

    def param_top_shapes(self):
        self.setup([])
        return list(self.shapes)

    def forward(self, bottom, top):
        from caffe_cae.fillers import fill  # the fillers module is optional at import time

        for i, (filler, blob) in enumerate(zip(self.fillers, top)):
            if filler.type == "constant" and self._filled[i] is blob.data:
                continue  # Caffe fills constant tops only once
            blob.data[...] = fill(filler, blob.shape, self.random(), dtype=blob.data.dtype)
            self._filled[i] = blob.data

    def backward(self, top, propagate_down, bottom):
        pass
