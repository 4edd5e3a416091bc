"""One regression test per group of bad inputs found by fuzzing (the newcomer issue): each is
refused in one line that names the file and the object, before anything large is allocated."""
from __future__ import annotations

import re
import time

import h5py
import numpy as np
import pytest

from caffe_cae import TEST, TRAIN, Net, params, weights
from caffe_cae.errors import CaffeCaeError
from caffe_cae.experiments import encode, evaluate
from caffe_cae.proto import caffe_pb2
from caffe_cae.solvers import get_solver
from caffe_cae.testing.fuzz.corpus import DEPLOY_NET, TRAIN_NET
from tests.robustness.conftest import one_error

MODEL, STATE = "snap_iter_2.caffemodel", "snap_iter_2.solverstate"


def rewrite_h5(path, **datasets):
    """Replace datasets of an HDF5 file (None removes one); ``attrs`` sets root attributes."""
    attrs = datasets.pop("attrs", {})
    with h5py.File(path, "a") as f:
        for name, value in datasets.items():
            if name in f:
                del f[name]
            if callable(value):
                value(f, name)
            elif value is not None:
                f[name] = value
        for key, value in attrs.items():
            if value is None:
                del f.attrs[key]
            else:
                f.attrs[key] = value


# ------------------------------------------------------------------------------------------
# HDF5: every file kind, corrupt or oddly typed


@pytest.mark.parametrize("value, message", [
    (np.array([b"a", b"b"] * 6), "holds strings; Caffe reads float or integer data"),
    (np.zeros((12, 1, 8, 8), bool), "holds booleans"),
    (np.zeros((12, 1, 8, 8), np.complex64), "holds complex numbers"),
    (np.zeros(12, dtype=[("a", "f4"), ("b", "i4")]), "holds records (a compound type)"),
])
def test_hdf5_data_of_a_type_caffe_refuses(seeded, value, message):
    rewrite_h5("data.h5", data=value)
    with pytest.raises(CaffeCaeError, match=re.escape(f"layer 'data' (HDF5Data): data.h5: dataset 'data' {message}")):
        Net("train.prototxt", TRAIN).forward()


def test_hdf5_data_integers_are_read_as_caffe_reads_them(seeded):
    rewrite_h5("data.h5", data=np.arange(12 * 64, dtype=np.int16).reshape(12, 1, 8, 8))
    net = Net("train.prototxt", TRAIN)
    net.forward()
    assert net.blobs["data"].data[0, 0, 0, :3].tolist() == [0, 1, 2]


def test_hdf5_list_file_naming_the_data_file_itself(seeded):
    (seeded / "train.prototxt").write_text(TRAIN_NET.replace('"train.txt"', '"data.h5"'))
    with pytest.raises(CaffeCaeError, match="'data.h5' is an HDF5 file; hdf5_data_param.source names a text file"):
        Net("train.prototxt", TRAIN)


def test_hdf5_list_file_with_binary_bytes(seeded):
    (seeded / "train.txt").write_bytes(b"data.h5\xff\xfe\n")
    with pytest.raises(CaffeCaeError, match="'train.txt' is not a text list of HDF5 files"):
        Net("train.prototxt", TRAIN)


def test_few_kb_hdf5_declaring_37_gib_is_not_read(seeded):
    rewrite_h5("data.h5", data=lambda f, n: f.create_dataset(n, shape=(2**24, 1, 24, 24), dtype="f4",
                                                             chunks=(1, 1, 24, 24), compression="gzip"))
    assert (seeded / "data.h5").stat().st_size < 100_000
    with pytest.raises(CaffeCaeError, match=r"data\.h5: dataset 'data' declares 36\.0 GiB .* but the file stores"):
        Net("train.prototxt", TRAIN)


def test_truncated_hdf5_weights(seeded):
    data = (seeded / f"{MODEL}.h5").read_bytes()
    (seeded / f"{MODEL}.h5").write_bytes(data[: len(data) // 2])
    with pytest.raises(CaffeCaeError, match=rf"{MODEL}\.h5: "):
        Net("deploy.prototxt", TEST).copy_from(f"{MODEL}.h5")


def test_hdf5_weights_with_a_dataset_where_a_layer_group_belongs(seeded):
    rewrite_h5(f"{MODEL}.h5", **{"data/conv1": np.zeros(3, np.float32)})
    with pytest.raises(CaffeCaeError, match=r"'/data/conv1' is a dataset, expected a group"):
        weights.read_weights(f"{MODEL}.h5")


@pytest.mark.parametrize("change, message", [
    ({"history": np.zeros(3, np.float32)}, "'/history' is a dataset, expected a group"),
    ({"iter": np.array([1, 2], np.int32)}, "dataset 'iter' must hold one int, it holds 2 values"),
    ({"iter": np.array([b"12"])}, "dataset 'iter' holds strings"),
    ({"iter": np.array([1.5])}, "dataset 'iter' must hold an integer"),
    ({"learned_net": np.array([1.0])}, "dataset 'learned_net' must hold one string"),
    ({"iter": None}, "HDF5 solverstate has no 'iter'"),
])
def test_hdf5_solverstate_fields(seeded, change, message):
    rewrite_h5(f"{STATE}.h5", **change)
    with pytest.raises(CaffeCaeError, match=rf"{STATE}\.h5: .*{message}"):
        get_solver("solver.prototxt").restore(f"{STATE}.h5")


# ------------------------------------------------------------------------------------------
# evaluate / encode / infer inputs


@pytest.mark.parametrize("attrs, message", [
    ({"switches": "[[1"}, "attribute 'switches' is not JSON"),
    ({"switches": "[[-1, 0]]"}, "must list \\[count, plane_cells\\] pairs of positive integers"),
    ({"switches": '[["a", 2]]'}, "must list"),
    ({"code_blob": np.arange(3)}, "attribute 'code_blob' must be text"),
    ({"code_blob": b"\xff\xfe"}, "attribute 'code_blob' is not valid UTF-8"),
    ({"code_blob": "label2"}, "no dataset 'label2'"),
])
def test_codes_file_attributes(seeded, run_cli, attrs, message):
    rewrite_h5("codes.h5", attrs=attrs)
    assert message.replace("\\", "") in one_error(run_cli, "evaluate", "codes.h5", "--folds", "2").replace("\\", "") \
        or pytest.fail(message)


@pytest.mark.parametrize("label, message", [
    (np.array([b"x"] * 12), "dataset 'label' holds strings"),
    (np.where(np.arange(12) == 5, np.nan, np.arange(12) % 3), "dataset 'label' holds nan at row 5"),
    (np.arange(12) % 3 + 0.5, "holds 0.5 at row 0; labels are integer class numbers"),
])
def test_codes_file_labels(seeded, run_cli, label, message):
    rewrite_h5("codes.h5", label=label)
    assert message in one_error(run_cli, "evaluate", "codes.h5", "--folds", "2")


def test_a_label_of_1e12_needs_no_terabytes(seeded):
    codes, labels, switches = evaluate.read_codes("codes.h5")
    labels[0] = 10**12 - 1  # fits no bincount, and Caffe's int only up to INT_MAX
    rewrite_h5("codes.h5", label=labels.astype(np.float64))
    with pytest.raises(CaffeCaeError, match="labels are integer class numbers"):
        evaluate.read_codes("codes.h5")
    labels[0] = 2**31 - 2
    with pytest.raises(CaffeCaeError, match="samples per class"):  # one sample of class 2^31-2
        evaluate.cross_validated_error(codes, labels, "linear", folds=2)


def test_nan_and_constant_codes(seeded, run_cli):
    codes = evaluate.read_codes("codes.h5")[0]
    rewrite_h5("codes.h5", ip2encode=np.full_like(codes, 3.0))
    assert "codes.h5: every code is the same vector" in one_error(run_cli, "evaluate", "codes.h5", "--folds", "2")
    codes[3, 1] = np.nan
    rewrite_h5("codes.h5", ip2encode=codes)
    assert "codes.h5: dataset 'ip2encode' holds NaN or infinite values" in one_error(
        run_cli, "evaluate", "codes.h5", "--folds", "2")


def test_codes_from_infer_have_no_compression_ratio(seeded, run_cli, capsys, caplog):
    status, _ = run_cli("infer", "model.onnx", "--input", "data.h5", "-o", "out.h5", "--device", "cpu")
    assert status == 0
    rewrite_h5("out.h5", label=np.arange(12) % 3)
    assert evaluate.read_codes("out.h5", "ip2encode")[2] is None
    assert run_cli("evaluate", "out.h5", "--blob", "ip2encode", "--folds", "2")[0] == 0
    assert "no switch inventory" in caplog.text
    result = evaluate.evaluate_codes(*evaluate.read_codes("out.h5", "ip2encode"), folds=2, classifiers=())
    assert result.compression is None
    with_switches = evaluate.evaluate_codes(*evaluate.read_codes("codes.h5"), folds=2, classifiers=())
    assert with_switches.compression is not None and with_switches.switches == [[18, 36]]


@pytest.mark.parametrize("data, message", [
    (np.float32(1.5), "dataset 'data' is a scalar"),
    (np.array([b"a"] * 12), "dataset 'data' holds strings"),
])
def test_infer_inputs(seeded, run_cli, data, message):
    rewrite_h5("data.h5", data=data)
    assert message in one_error(run_cli, "infer", "model.onnx", "--input", "data.h5", "-o", "o.h5", "--device", "cpu")


def test_infer_reads_one_batch_at_a_time(seeded, run_cli, monkeypatch):
    from caffe_cae import hdf5io

    reads, real = [], hdf5io.read_dataset
    monkeypatch.setattr(hdf5io, "read_dataset", lambda d, p, dtype=np.float32, rows=None: (
        reads.append(rows), real(d, p, dtype, rows))[1])
    assert run_cli("infer", "model.onnx", "--input", "data.h5", "-o", "o.h5", "--batch", "5", "--device", "cpu")[0] == 0
    assert [r for r in reads if r is not None and r.start is not None][:3] == [slice(0, 5), slice(5, 10), slice(10, 12)]
    with h5py.File("o.h5") as f:
        assert f["deconv1neursig"].shape == (12, 1, 8, 8) and list(f["label"][:3]) == [0, 1, 2]


def test_onnxruntime_run_errors_are_one_line(seeded, run_cli):
    import onnx

    model = onnx.load("model.onnx")
    model.graph.input[0].type.tensor_type.shape.dim[2].dim_param = "h"  # the graph accepts any height...
    onnx.save(model, "any.onnx")
    rewrite_h5("data.h5", data=np.zeros((12, 1, 5, 8), np.float32))  # ...its Reshape/Concat do not
    assert "any.onnx: onnxruntime failed on rows 0..11" in one_error(
        run_cli, "infer", "any.onnx", "--input", "data.h5", "-o", "o.h5", "--device", "cpu")


def test_encode_of_a_data_file_without_the_input(seeded, run_cli):
    rewrite_h5("data.h5", data=None)
    assert "blob 'data': the data layer's top has no dataset of that name in the data file" in one_error(
        run_cli, "encode", "train.prototxt", MODEL, "data.h5", "--out", "c.h5")


# ------------------------------------------------------------------------------------------
# invalid UTF-8 in protobuf string fields


def _invalid_utf8(path, name=b"conv1"):
    data = (path).read_bytes()
    path.write_bytes(data.replace(name, b"\xff" + name[1:], 1))


@pytest.mark.parametrize("argv, file", [
    (("show", MODEL), MODEL),
    (("migrate", MODEL, "-o", "x.caffemodel"), MODEL),
    (("train", "solver.prototxt", "--snapshot", STATE), STATE),
    (("test", "train.prototxt", "--weights", MODEL, "--iterations", "1"), MODEL),
])
def test_invalid_utf8_in_string_fields(seeded, run_cli, argv, file):
    _invalid_utf8(seeded / file, b"conv1" if file == MODEL else b"snap_iter_2.caffemodel")
    line = one_error(run_cli, *argv, status=2 if argv[0] == "migrate" else 1)  # migrate: 2, as Caffe's tools
    assert f"{file}: not a binary" in line and "is not valid UTF-8" in line


def test_invalid_utf8_in_an_onnx_model(seeded, run_cli):
    _invalid_utf8(seeded / "model.onnx", b"conv1")
    assert "model.onnx: onnxruntime cannot load the model" in one_error(
        run_cli, "infer", "model.onnx", "--input", "data.h5", "-o", "o.h5", "--device", "cpu")


# ------------------------------------------------------------------------------------------
# sizes


HUGE = 'layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 1000000 dim: 1000000 } } }\n'


@pytest.mark.parametrize("command", [["time", "huge.prototxt"], ["test", "huge.prototxt", "--weights", MODEL],
                                     ["export", "huge.prototxt", "-o", "h.onnx"], ["params", "huge.prototxt"]])
def test_blob_over_int_max_is_refused_before_allocating(seeded, run_cli, command):
    (seeded / "huge.prototxt").write_text(HUGE)
    assert ("layer 'data' (Input): top 'data': shape [1000000, 1000000] has 1000000000000 elements, more than "
            "Caffe's blob limit of INT_MAX") in one_error(run_cli, *command)


def test_net_over_the_memory_budget(seeded, monkeypatch):
    monkeypatch.setenv("CAFFE_CAE_MEMORY_LIMIT", "4K")
    with pytest.raises(CaffeCaeError, match=r"deploy.prototxt: net 'tiny_cae': .* needs .* more than the 4.0 KiB"):
        Net("deploy.prototxt", TEST)


def _wide_deconvolution(kernel: int) -> str:
    return ('layer { name: "x" type: "Input" top: "x" input_param { shape { dim: 1 dim: 1 dim: 1 dim: 1 } } }\n'
            'layer { name: "d" type: "Deconvolution" bottom: "x" top: "d" convolution_param { num_output: 1 '
            f'kernel_size: {kernel} }} }}\n')


def test_params_of_wide_deconvolutions_allocates_nothing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "w65535.prototxt").write_text(_wide_deconvolution(65535))
    (tmp_path / "w40000.prototxt").write_text(_wide_deconvolution(40000))
    monkeypatch.setenv("CAFFE_CAE_MEMORY_LIMIT", "64M")  # shape inference needs nothing like 6 GB
    start = time.perf_counter()
    with pytest.raises(CaffeCaeError, match=r"layer 'd' \(Deconvolution\): param 0: shape \[1, 1, 65535, 65535\] has "
                                            r"4294836225 elements, more than Caffe's blob limit of INT_MAX"):
        params.count_params("w65535.prototxt")
    report = params.count_params("w40000.prototxt")
    assert report.total == 40000 * 40000 + 1
    assert time.perf_counter() - start < 5


def test_a_2000_wide_deconvolution_kernel_trains_in_seconds(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "wide.prototxt").write_text(
        'layer { name: "x" type: "DummyData" top: "x" top: "t" dummy_data_param { shape { dim: 1 dim: 1 dim: 1 dim: 1 }'
        ' shape { dim: 1 dim: 1 dim: 2000 dim: 2000 } data_filler { type: "constant" value: 1 } } }\n'
        'layer { name: "d" type: "Deconvolution" bottom: "x" top: "d" convolution_param { num_output: 1 '
        'kernel_size: 2000 weight_filler { type: "gaussian" std: 0.01 } } }\n'
        'layer { name: "loss" type: "EuclideanLoss" bottom: "d" bottom: "t" top: "loss" }\n')
    net = Net("wide.prototxt", TRAIN)
    start = time.perf_counter()
    net.forward_backward()
    assert time.perf_counter() - start < 10
    assert np.allclose(net.blobs["d"].data[0, 0], net.params["d"][0].data[0, 0] + net.params["d"][1].data[0])


def test_a_blob_shape_over_int_max_in_a_caffemodel(seeded):
    model = weights.read_net_binary(MODEL)
    layer = next(layer for layer in model.layer if layer.name == "ip2encode")
    layer.blobs[0].shape.dim[:] = [2**40, 2]
    weights.write_binary("big.caffemodel", model)
    with pytest.raises(CaffeCaeError, match=r"big.caffemodel: layer 'ip2encode' blob 0: shape \[1099511627776, 2\]"):
        weights.read_weights("big.caffemodel")


def test_messages_name_the_file_and_the_layer(seeded):
    model = weights.read_net_binary(MODEL)
    layer = next(layer for layer in model.layer if layer.name == "ip2encode")
    del layer.blobs[1].data[-1]
    weights.write_binary("short.caffemodel", model)
    with pytest.raises(CaffeCaeError, match=r"^short.caffemodel: layer 'ip2encode' blob 1: shape \[2\] holds 1 data "
                                            r"values, expected 2$"):
        weights.read_weights("short.caffemodel")


# ------------------------------------------------------------------------------------------
# net semantics that would reach NumPy


INPUT = ('layer { name: "x" type: "Input" top: "a" top: "label" input_param { shape { dim: 2 dim: 1 dim: 6 dim: 6 } '
         'shape { dim: 2 dim: 1 dim: 6 dim: 6 } } }\n')


@pytest.mark.parametrize("layer", [
    'name: "c" type: "Convolution" convolution_param { num_output: 3 kernel_size: 3 }',
    'name: "c" type: "Pooling" pooling_param { pool: MAX kernel_size: 2 stride: 2 }',
    'name: "c" type: "InnerProduct" inner_product_param { num_output: 2 }',
    'name: "c" type: "Deconvolution" convolution_param { num_output: 1 kernel_size: 2 }',
])
def test_shape_changing_layers_in_place(tmp_path, monkeypatch, layer):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "inplace.prototxt").write_text(INPUT + f'layer {{ {layer} bottom: "a" top: "a" }}\n')
    with pytest.raises(CaffeCaeError, match=r"layer 'c' \(\w+\): cannot compute in place: top 'a' would be"):
        Net("inplace.prototxt")


@pytest.mark.parametrize("loss", ["EuclideanLoss", "SigmoidCrossEntropyLoss"])
def test_losses_in_place(tmp_path, monkeypatch, loss):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "inplace.prototxt").write_text(INPUT + f'layer {{ name: "l" type: "{loss}" bottom: "a" bottom: "label" '
                                                       f'top: "a" }}\n')
    with pytest.raises(CaffeCaeError, match=rf"layer 'l' \({loss}\): cannot compute in place"):
        Net("inplace.prototxt")


def test_concat_and_softmax_loss_in_place(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    base = ('layer { name: "x" type: "Input" top: "a" top: "b" top: "label" input_param { shape { dim: 2 dim: 3 } '
            'shape { dim: 2 dim: 3 } shape { dim: 2 } } }\n')
    (tmp_path / "concat.prototxt").write_text(base + 'layer { name: "c" type: "Concat" bottom: "a" bottom: "b" top: "a" }\n')
    with pytest.raises(CaffeCaeError, match=r"layer 'c' \(Concat\): cannot compute in place"):
        Net("concat.prototxt")
    (tmp_path / "softmax.prototxt").write_text(
        base + 'layer { name: "l" type: "SoftmaxWithLoss" bottom: "a" bottom: "label" top: "a" }\n')
    with pytest.raises(CaffeCaeError, match=r"layer 'l' \(SoftmaxWithLoss\): cannot compute in place"):
        Net("softmax.prototxt")


def test_batch_size_zero(seeded):
    (seeded / "zero.prototxt").write_text(TRAIN_NET.replace("batch_size: 4", "batch_size: 0"))
    with pytest.raises(CaffeCaeError, match=r"layer 'data' \(HDF5Data\): hdf5_data_param.batch_size must be > 0"):
        Net("zero.prototxt", TRAIN)


def test_test_iter_zero_with_a_test_interval(seeded, run_cli):
    text = (seeded / "solver.prototxt").read_text().replace("test_iter: 1", "test_iter: 0")
    (seeded / "solver.prototxt").write_text(text)
    assert "solver.prototxt: test_iter must be >= 1 when test_interval is set" in one_error(
        run_cli, "train", "solver.prototxt")


def test_an_iteration_counter_at_int_max(seeded, run_cli):
    state = weights.read_solverstate(STATE)
    state.iter = 2**31 - 1
    weights.write_solverstate("max.solverstate", state)
    solver = get_solver("solver.prototxt")
    solver.restore("max.solverstate")
    with pytest.raises(CaffeCaeError, match="passes Caffe's int iteration counter"):
        solver.step(1)
    assert "--iterations must be 0..2147483647" in one_error(run_cli, "train", "solver.prototxt", "--iterations",
                                                              str(2**31))


def test_a_truncated_lmdb_is_refused_not_a_crash():
    """LMDB maps its file: reading a truncated copy past its end kills the process (SIGBUS).
    Run in a forked child, so that a crash fails this test instead of the suite."""
    from caffe_cae.testing import fuzz
    from caffe_cae.testing.fuzz.corpus import seed_files

    files = dict(seed_files())
    files["lmdb/data.mdb"] = files["lmdb/data.mdb"][: len(files["lmdb/data.mdb"]) // 2]
    outcome = fuzz.run_case(fuzz.Case("lmdb/data.mdb", "truncated to half", "Net(lmdb) forward_backward"), files)
    assert outcome.kind == "error" and "a truncated or corrupt copy" in outcome.detail, outcome


def test_an_hdf5_file_the_library_loops_on_is_one_error(tmp_path, monkeypatch):
    """libhdf5 never returns from this file's attributes, in C code: the structure is read in a
    forked child first, with a time limit."""
    from caffe_cae import fileio
    from tests.helpers.paths import FIXTURES

    monkeypatch.setattr(fileio, "HDF5_PROBE_SECONDS", 2.0)
    monkeypatch.setattr(fileio.probe_hdf5, "__defaults__", ("HDF5 file", 2.0))
    start = time.perf_counter()
    with pytest.raises(CaffeCaeError, match=r"codes_attribute_loop.h5: the HDF5 library does not finish reading"):
        evaluate.read_codes(FIXTURES / "corrupt" / "codes_attribute_loop.h5")
    assert time.perf_counter() - start < 15


def test_the_hdf5_probe_reports_a_crash(seeded, monkeypatch):
    import os
    import signal

    import h5py

    from caffe_cae import fileio

    real = h5py.File

    def crash_in_the_child(path, mode="r", *args, **kwargs):
        if os.getpid() != parent:
            os.kill(os.getpid(), signal.SIGKILL)  # as a crash would end it (no faulthandler dump)
        return real(path, mode, *args, **kwargs)

    parent = os.getpid()
    monkeypatch.setattr(h5py, "File", crash_in_the_child)
    with pytest.raises(CaffeCaeError, match=r"data.h5: the HDF5 library crashes reading this HDF5 file \(SIGKILL\)"):
        fileio.open_hdf5("data.h5")


def test_an_lmdb_value_size_past_the_file_is_refused_not_a_crash():
    """A flipped byte in a record's size made LMDB copy past the end of its mapped file (SIGBUS)."""
    import struct

    from caffe_cae.testing import fuzz
    from caffe_cae.testing.fuzz.corpus import seed_files

    files = dict(seed_files())
    data = bytearray(files["lmdb/data.mdb"])
    psize = struct.unpack_from("<I", data, 40)[0]
    meta = max((0, psize), key=lambda m: struct.unpack_from("<Q", data, m + 144)[0])  # the newer meta page
    root = struct.unpack_from("<Q", data, meta + 128)[0]  # the main DB's root: a leaf for 12 records
    first_node = struct.unpack_from("<H", data, root * psize + 16)[0]
    struct.pack_into("<HH", data, root * psize + first_node, 0xFFFF, 0x00FF)  # a 16 MB value
    files["lmdb/data.mdb"] = bytes(data)
    outcome = fuzz.run_case(fuzz.Case("lmdb/data.mdb", "a record's size", "Net(lmdb) forward_backward"), files)
    assert outcome.kind == "error" and "is corrupt (a value of page" in outcome.detail, outcome
