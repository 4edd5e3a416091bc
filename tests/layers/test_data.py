"""Data layers: Input, HDF5Data (Caffe's row order incl. the golden solver cases), MemoryData, DummyData."""
import os

import h5py
import numpy as np
import pytest

from caffe_cae.errors import CaffeCaeError
from caffe_cae.prototxt import parse_text
from caffe_cae.proto import caffe_pb2
from tests.helpers.layer_golden import GOLDEN, Case, build


def layer(text):
    return parse_text(text, caffe_pb2.LayerParameter, "<test>")


def make_h5(path, **datasets):
    with h5py.File(path, "w") as f:
        for name, array in datasets.items():
            f[name] = array
    return path


# -- Input -------------------------------------------------------------------------------------


def test_input_shapes():
    one = 'name: "in" type: "Input" top: "a" top: "b" input_param { shape { dim: 2 dim: 3 } }'
    assert build(layer(one), [])[0].reshape([]) == [(2, 3), (2, 3)]
    per_top = ('name: "in" type: "Input" top: "a" top: "b" '
               'input_param { shape { dim: 2 dim: 3 } shape { dim: 4 } }')
    assert build(layer(per_top), [])[0].reshape([]) == [(2, 3), (4,)]
    bare = 'name: "in" type: "Input" top: "a"'
    assert build(layer(bare), [])[0].reshape([]) == [()]  # 0-axis until fed, as Caffe's empty Blob
    three = ('name: "in" type: "Input" top: "a" top: "b" '
             'input_param { shape { dim: 1 } shape { dim: 2 } shape { dim: 3 } }')
    with pytest.raises(CaffeCaeError, match=r"layer 'in' \(Input\): Must specify 'shape' once, once per top blob"):
        build(layer(three), [])


# -- HDF5Data ----------------------------------------------------------------------------------


@pytest.mark.parametrize("case", ["sgd_step", "sgd_iter_size2", "paper_sgd"])
def test_hdf5_row_order_matches_caffe(case, monkeypatch):
    """Run from the case folder like Caffe; every forward's rows equal the recorded batch_rows."""
    folder = GOLDEN / case
    monkeypatch.chdir(folder)
    golden = Case(case)
    param = golden.layer_param("data")
    lay, _, top = build(param, [], phase=caffe_pb2.TRAIN)
    with h5py.File(folder / "data.h5", "r") as f:
        dataset = f["data"][()]
    batch_rows = golden.npz["batch_rows"]
    for rows in batch_rows:
        lay.forward([], top)
        assert [r for _, r in lay.last_rows] == list(rows)
        np.testing.assert_array_equal(top[0].data, dataset[rows])
    assert top[0].data.dtype == np.float32


def test_hdf5_list_entries_resolved_next_to_list_file(tmp_path, monkeypatch):
    """Caffe resolves the listed files against the working directory; we also try the list's folder."""
    make_h5(tmp_path / "d.h5", data=np.arange(8, dtype=np.float64).reshape(4, 2))
    (tmp_path / "list.txt").write_text("d.h5\n")
    monkeypatch.chdir(tmp_path.parent)
    source = os.path.join(tmp_path.name, "list.txt")
    lay, _, top = build(layer(f'name: "d" type: "HDF5Data" top: "data" hdf5_data_param {{ source: "{source}" batch_size: 3 }}'), [])
    lay.forward([], top)
    np.testing.assert_array_equal(top[0].data, [[0, 1], [2, 3], [4, 5]])
    assert top[0].data.dtype == np.float32


def test_hdf5_several_datasets_and_wrap_across_files(tmp_path):
    a = make_h5(tmp_path / "a.h5", data=np.arange(5 * 3).reshape(5, 3), label=np.arange(5) * 10)
    b = make_h5(tmp_path / "b.h5", data=100 + np.arange(3 * 3).reshape(3, 3), label=100 + np.arange(3) * 10)
    (tmp_path / "list.txt").write_text(f"{a}\n  {b}\n\n")
    text = (f'name: "d" type: "HDF5Data" top: "data" top: "label" '
            f'hdf5_data_param {{ source: "{tmp_path / "list.txt"}" batch_size: 4 }}')
    lay, _, top = build(layer(text), [])
    assert [t.shape for t in top] == [(4, 3), (4,)]
    want = [[(0, 0), (0, 1), (0, 2), (0, 3)], [(0, 4), (1, 0), (1, 1), (1, 2)],
            [(0, 0), (0, 1), (0, 2), (0, 3)], [(0, 4), (1, 0), (1, 1), (1, 2)]]
    for rows in want:
        lay.forward([], top)
        assert lay.last_rows == rows
        labels = [(100 if f else 0) + 10 * r for f, r in rows]
        np.testing.assert_array_equal(top[1].data, labels)
        np.testing.assert_array_equal(top[0].data[:, 0], [(100 if f else 0) + 3 * r for f, r in rows])


def test_hdf5_single_file_wraps_per_row(tmp_path):
    make_h5(tmp_path / "a.h5", data=np.arange(5.0)[:, None])
    (tmp_path / "list.txt").write_text(str(tmp_path / "a.h5"))
    text = f'name: "d" type: "HDF5Data" top: "data" hdf5_data_param {{ source: "{tmp_path / "list.txt"}" batch_size: 3 }}'
    lay, _, top = build(layer(text), [])
    seen = []
    for _ in range(4):
        lay.forward([], top)
        seen += top[0].data[:, 0].tolist()
    assert seen == [0, 1, 2, 3, 4, 0, 1, 2, 3, 4, 0, 1]


def test_hdf5_shuffle_is_seeded_and_covers_every_row(tmp_path):
    for name in "ab":
        make_h5(tmp_path / f"{name}.h5", data=np.arange(6.0)[:, None] + (10 if name == "b" else 0))
    (tmp_path / "list.txt").write_text(f"{tmp_path / 'a.h5'}\n{tmp_path / 'b.h5'}\n")
    text = (f'name: "d" type: "HDF5Data" top: "data" '
            f'hdf5_data_param {{ source: "{tmp_path / "list.txt"}" batch_size: 4 shuffle: true }}')

    def epoch_values(seed):
        lay, _, top = build(layer(text), [])
        lay.rng = np.random.default_rng(seed)  # what the Net hands over (after setup is fine)
        values = []
        for _ in range(6):  # 24 rows = two passes over the 12
            lay.forward([], top)
            values += top[0].data[:, 0].tolist()
        return values

    first, again, other = epoch_values(5), epoch_values(5), epoch_values(6)
    assert first == again
    assert first != other
    expected = sorted(list(range(6)) + list(range(10, 16)))
    assert sorted(first[:12]) == expected and sorted(first[12:]) == expected
    assert first[:12] != sorted(first[:12])


@pytest.mark.parametrize("setup, message", [
    (lambda p: None, "cannot read HDF5 list file"),
    (lambda p: (p / "list.txt").write_text(""), "at least 1 HDF5 filename"),
    (lambda p: (p / "list.txt").write_text("missing.h5"), "Failed opening HDF5 file 'missing.h5'"),
    (lambda p: (make_h5(p / "x.h5", other=np.zeros((2, 2))), (p / "list.txt").write_text(str(p / "x.h5"))),
     "Failed to find HDF5 dataset 'data' in '.*x.h5' \\(datasets: other\\)"),
])
def test_hdf5_errors_name_layer_and_file(tmp_path, setup, message):
    setup(tmp_path)
    text = f'name: "src" type: "HDF5Data" top: "data" hdf5_data_param {{ source: "{tmp_path / "list.txt"}" batch_size: 2 }}'
    with pytest.raises(CaffeCaeError, match=rf"^layer 'src' \(HDF5Data\): .*{message}"):
        build(layer(text), [])


def test_hdf5_row_count_mismatch(tmp_path):
    make_h5(tmp_path / "x.h5", data=np.zeros((3, 2)), label=np.zeros(4))
    (tmp_path / "list.txt").write_text(str(tmp_path / "x.h5"))
    text = f'name: "d" type: "HDF5Data" top: "data" top: "label" hdf5_data_param {{ source: "{tmp_path / "list.txt"}" batch_size: 2 }}'
    with pytest.raises(CaffeCaeError, match="same number of rows"):
        build(layer(text), [])


# -- MemoryData --------------------------------------------------------------------------------


def test_memory_data_batches_wrap():
    text = ('name: "m" type: "MemoryData" top: "data" top: "label" '
            'memory_data_param { batch_size: 2 channels: 1 height: 2 width: 2 }')
    lay, _, top = build(layer(text), [])
    assert [t.shape for t in top] == [(2, 1, 2, 2), (2,)]
    with pytest.raises(CaffeCaeError, match="set_input_arrays"):
        lay.forward([], top)
    data = np.arange(16, dtype=np.float32).reshape(4, 1, 2, 2)
    lay.set_input_arrays(data, np.array([0, 1, 2, 3]))
    for rows in ([0, 1], [2, 3], [0, 1]):
        lay.forward([], top)
        np.testing.assert_array_equal(top[0].data, data[rows])
        np.testing.assert_array_equal(top[1].data, rows)
    with pytest.raises(CaffeCaeError, match="multiple of batch size"):
        lay.set_input_arrays(data[:3], np.zeros(3))
    with pytest.raises(CaffeCaeError, match=r"shape \(N, 1, 2, 2\)"):
        lay.set_input_arrays(np.zeros((2, 2, 2, 2)), np.zeros(2))


# -- DummyData ---------------------------------------------------------------------------------


def test_dummy_data_constant_and_shapes():
    text = ('name: "dd" type: "DummyData" top: "a" top: "b" '
            'dummy_data_param { shape { dim: 2 dim: 3 } shape { dim: 4 } }')
    lay, _, top = build(layer(text), [])
    assert [t.shape for t in top] == [(2, 3), (4,)]
    for t in top:
        t.data[...] = 5
    lay.forward([], top)
    assert all((t.data == 0).all() for t in top)
    top[0].data[...] = 9  # e.g. an in-place layer downstream: Caffe never refills constant tops
    lay.forward([], top)
    assert (top[0].data == 9).all()


def test_dummy_data_legacy_dims_and_random_refill():
    text = ('name: "dd" type: "DummyData" top: "a" '
            'dummy_data_param { num: 2 channels: 3 height: 1 width: 2 data_filler { type: "gaussian" std: 2 } }')
    lay, _, top = build(layer(text), [])
    assert top[0].shape == (2, 3, 1, 2)
    lay.fill_params(np.random.default_rng(0))
    lay.forward([], top)
    first = top[0].data.copy()
    lay.forward([], top)
    assert first.std() > 0.5 and not np.array_equal(first, top[0].data)


@pytest.mark.parametrize("body, message", [
    ("shape { dim: 1 } num: 1 channels: 1 height: 1 width: 1", "Both shape and legacy"),
    ("num: 1 channels: 1 height: 1", "Must specify 'width' once"),
    ("shape { dim: 1 } data_filler { } data_filler { } data_filler { }", "Number of data fillers"),
])
def test_dummy_data_errors(body, message):
    with pytest.raises(CaffeCaeError, match=message):
        build(layer(f'name: "dd" type: "DummyData" top: "a" top: "b" dummy_data_param {{ {body} }}'), [])
