"""``caffe-cae params``: the papers' parameter counts and model sizes from shape inference."""
import pytest

from caffe_cae import generate, params, prototxt, zoo
from caffe_cae.commands import params as params_command
from caffe_cae.commands.common import parse_input_shape
from caffe_cae.errors import CaffeCaeError
from caffe_cae.proto import caffe_pb2
from tests.helpers.paths import GOLDEN

# (trainable parameters |w+b|, unique, model size) for N = 2: 2019 Tables 1-3, 2017 Tables II-III.
PAPER = {
    "model1": (297391, 297391, 7990),
    "model2": (318251, 318251, 25814),
    "model3": (337727, 337727, 43702),
    "model4": (337727, 337727, 43702),
    "model5": (337727, 337727, 43702),
    "cae2017-model1": (74893, 74893, 3996),
    "deep-ae": (2823286, 2823286, 3502),
    "siamese": (337728, 168864, 43704),   # counted over both branches, as Table 2 does
}


#: per-sample MNIST shapes of the generated nets' data tops (their HDF5 files are not made here)
MNIST_SHAPES = {"data": (1, 28, 28), "pair_data": (2, 28, 28), "sim": ()}


def mnist_shapes(net) -> dict:
    """The MNIST shapes of the tops of the net's data layers (either syntax)."""
    tops = {t for layer in [*net.layer, *net.layers] if not layer.bottom for t in layer.top}
    return {name: shape for name, shape in MNIST_SHAPES.items() if name in tops}


def report(model, **options):
    net = generate.net_param(model, **options)
    return params.count_params(net, input_shapes=mnist_shapes(net))


@pytest.mark.parametrize("model", list(PAPER))
@pytest.mark.parametrize("syntax", zoo.SYNTAXES)
def test_paper_counts(model, syntax):
    r = report(model, dim=2, syntax=syntax)
    assert (r.total, r.unique, r.model_size) == PAPER[model]
    assert r.frozen == 0


@pytest.mark.parametrize("model", list(PAPER))
@pytest.mark.parametrize("dim", [10, 30])
def test_counts_grow_with_the_code(model, dim):
    total, unique, size = PAPER[model]
    hidden = 250 if model == "deep-ae" else zoo.MODELS[model].hidden
    r = report(model, dim=dim)
    if model == "siamese":  # ip2encode hidden*N + N in each branch
        assert (r.total, r.unique, r.model_size) == (
            total + 2 * (hidden + 1) * (dim - 2), unique + (hidden + 1) * (dim - 2), size + 2 * (dim - 2))
    else:  # ip2encode hidden*N + N and ip1decode N*hidden + hidden
        grow = (2 * hidden + 1) * (dim - 2)
        assert (r.total, r.unique, r.model_size) == (total + grow, unique + grow, size + dim - 2)


@pytest.mark.parametrize("model", list(PAPER))
def test_deploy_nets_count_the_same(model):
    r = report(model, dim=2, deploy=True)
    total, unique, size = PAPER[model]
    if model == "siamese":  # one branch
        total, size = unique, size // 2
    assert (r.total, r.unique, r.model_size) == (total, unique, size)


def test_model3_rows_follow_tables_1_and_3():
    rows = {row.name: row for row in report("model3", dim=2, batch=1).rows}
    tops = {row.name: dict(row.tops) for row in rows.values()}
    assert tops["conv1"]["conv1"] == (1, 26, 24, 24) and tops["pool1"]["pool1"] == (1, 26, 12, 12)
    assert tops["pool1"]["pool1_mask"] == (1, 26, 12, 12)
    assert tops["conv2"]["conv2"] == (1, 36, 8, 8) and tops["pool2"]["pool2"] == (1, 36, 4, 4)
    assert tops["ip1encode"]["ip1encode"] == (1, 250) and tops["ip2encode"]["ip2encode"] == (1, 2)
    assert tops["reshape"]["ip1decodesh"] == (1, 250, 1, 1)
    assert tops["deconv2"]["deconv2"] == (1, 36, 4, 4) and tops["unpool2"]["unpool2"] == (1, 36, 8, 8)
    assert tops["deconv1"]["deconv1"] == (1, 26, 12, 12) and tops["unpool1"]["unpool1"] == (1, 26, 24, 24)
    assert tops["deconv1neur"]["deconv1neur"] == (1, 1, 28, 28)
    # Table 3: (weights, biases) per layer
    assert {n: (rows[n].weights, rows[n].biases) for n in (
        "conv1", "conv2", "ip1encode", "ip2encode", "ip1decode", "deconv2", "deconv1", "deconv1neur")} == {
        "conv1": (650, 26), "conv2": (23400, 36), "ip1encode": (144000, 250), "ip2encode": (500, 2),
        "ip1decode": (500, 250), "deconv2": (144000, 36), "deconv1": (23400, 26), "deconv1neur": (650, 1)}
    assert rows["deconv2"].param_shapes == [(250, 36, 4, 4), (36,)]  # (C_in, C_out, kh, kw)
    # Table 1: 14976-3744-2304-576-250-2-250-576-2304-3744-14976
    assert [rows[n].hidden for n in ("conv1", "pool1", "conv2", "pool2", "ip1encode", "ip2encode", "ip1decode",
                                     "deconv2", "unpool2", "deconv1", "unpool1")] == [
        14976, 3744, 2304, 576, 250, 2, 250, 576, 2304, 3744, 14976]
    assert rows["deconv1neur"].hidden == 0 and rows["reshape"].hidden == 0 and rows["sig1en"].hidden == 0


def test_siamese_shared_rows():
    rows = {row.name: row for row in report("siamese").rows}
    assert rows["conv1"].shared == [False, False] and rows["conv1_p"].shared == [True, True]
    assert rows["conv1_p"].trainable == 676


def test_frozen_params_are_not_trainable():
    """golden model4_bvlc_equiv: unpooling as a fixed Deconvolution with lr_mult 0 (code 10)."""
    r = params.count_params(GOLDEN / "model4_bvlc_equiv" / "net.prototxt")
    assert r.frozen == 36 * 4 + 26 * 4
    assert r.total == r.unique == PAPER["model4"][0] + 501 * 8
    assert r.model_size == PAPER["model4"][2] + 8


def test_input_shape_override_and_errors():
    net = generate.net_param("model1")
    r = params.count_params(net, input_shapes={"data": (1, 28, 28)})
    assert r.total == PAPER["model1"][0]
    with pytest.raises(CaffeCaeError, match="blob 'nope': --input-shape names no data or Input layer top"):
        params.count_params(net, input_shapes={"nope": (1,)})
    bad = prototxt.parse_text('layer { name: "d" type: "HDF5Data" top: "x" hdf5_data_param { source: "none.txt" '
                              'batch_size: 2 } }', caffe_pb2.NetParameter)
    with pytest.raises(CaffeCaeError, match=r"blob 'x': cannot tell the shape .* give --input-shape x=C,H,W"):
        params.count_params(bad)


def test_hdf5_source_shapes_are_read(tmp_path):
    import h5py
    import numpy as np

    with h5py.File(tmp_path / "d.h5", "w") as h5:
        h5["data"] = np.zeros((3, 1, 28, 28), np.float32)
    (tmp_path / "list.txt").write_text(f"{tmp_path / 'd.h5'}\n")
    net = generate.net_param("model1", batch=4, train_source=str(tmp_path / "list.txt"))
    r = params.count_params(net)
    assert dict(r.rows[0].tops)["data"] == (4, 1, 28, 28)


def test_command_prints_table_and_totals(tmp_path, capsys):
    path = tmp_path / "siamese.prototxt"
    path.write_text(generate.net_text("siamese", dim=2))
    parser_args = type("A", (), dict(net=str(path), phase="TRAIN", stage=[], level=0, input_shape=["data=1,28,28"]))
    # data of the siamese net is pair_data; an unknown name is a one-line error
    with pytest.raises(CaffeCaeError, match="blob 'data': --input-shape names no data or Input layer top"):
        params_command.run(parser_args)
    parser_args.input_shape = ["pair_data=2,28,28", "sim="]
    assert params_command.run(parser_args) == 0
    out = capsys.readouterr().out
    assert "trainable parameters: 337728 over all layers; 168864 unique (168864 shared by name)" in out
    assert "model size (hidden feature-map elements and neurons per sample): 43704" in out
    line = next(l for l in out.splitlines() if l.startswith("conv1_p "))
    assert "650 (26x1x5x5)" in line and "676 shared" in line


@pytest.mark.parametrize("text, shape", [("data=1,28,28", ("data", (1, 28, 28))), ("sim=", ("sim", ())),
                                         ("x=2x3", ("x", (2, 3)))])
def test_parse_input_shape(text, shape):
    assert parse_input_shape(text) == shape


@pytest.mark.parametrize("text", ["data", "=1", "data=0,1", "data=a"])
def test_parse_input_shape_errors(text):
    with pytest.raises(CaffeCaeError, match="expected BLOB=C,H,W"):
        parse_input_shape(text)


NONLINEAR = """name: "LogisticRegressionNet"
layer { name: "data" type: "HDF5Data" top: "data" top: "label" include { phase: TRAIN }
  hdf5_data_param { source: "examples/hdf5_classification/data/train.txt" batch_size: 10 } }
layer { name: "fc1" type: "InnerProduct" bottom: "data" top: "fc1" inner_product_param { num_output: 40 } }
layer { name: "relu1" type: "ReLU" bottom: "fc1" top: "fc1" }
layer { name: "fc2" type: "InnerProduct" bottom: "fc1" top: "fc2" inner_product_param { num_output: 2 } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "fc2" bottom: "label" top: "loss" }
"""


def test_no_guess_without_the_data(tmp_path, monkeypatch):
    """BVLC's hdf5_classification net (4 features -> 40 -> 2: 282 parameters) was counted as MNIST
    (31482) when its data was absent; now it says what is missing, or reads the data."""
    import h5py
    import numpy as np

    monkeypatch.chdir(tmp_path)
    (tmp_path / "net.prototxt").write_text(NONLINEAR)
    with pytest.raises(CaffeCaeError, match=r"blob 'data': cannot tell the shape of data layer 'data' \(HDF5Data\) "
                                            r"without its data \(cannot read HDF5 list file .*\); give --input-shape"):
        params.count_params("net.prototxt")
    assert params.count_params("net.prototxt", input_shapes={"data": (4,), "label": ()}).total == 282
    folder = tmp_path / "examples/hdf5_classification/data"
    folder.mkdir(parents=True)
    with h5py.File(folder / "train.h5", "w") as h5:
        h5["data"], h5["label"] = np.zeros((30, 4), np.float32), np.zeros(30, np.float32)
    (folder / "train.txt").write_text("examples/hdf5_classification/data/train.h5\n")
    report = params.count_params("net.prototxt")
    assert report.total == 282 and dict(report.rows[0].tops) == {"data": (10, 4), "label": (10,)}


def test_readme_example(tmp_path, monkeypatch, capsys):
    """README: `caffe-cae params model3.prototxt --input-shape data=1,28,28` before the data exists."""
    from caffe_cae import cli

    monkeypatch.chdir(tmp_path)
    (tmp_path / "model3.prototxt").write_text(generate.net_text("model3", dim=10))
    assert cli.main(["params", "model3.prototxt", "--input-shape", "data=1,28,28"]) == 0
    assert "trainable parameters: 341735" in capsys.readouterr().out
    assert cli.main(["params", "model3.prototxt"]) == 1
    assert "give --input-shape data=C,H,W" in capsys.readouterr().err


# Layers after the decoder's last convolution that make no new units: the reconstruction
# (the prediction a EuclideanLoss compares with the data) is still that convolution's.
NO_NEW_UNITS = {
    "BatchNorm": "", "Scale": "scale_param { bias_term: true }", "Bias": "", "PReLU": "",
    "ELU": "", "BNLL": "", "Exp": "", "Log": "", "Threshold": "", "Swish": "",
    "Clip": "clip_param { min: -1 max: 1 }", "LRN": "lrn_param { local_size: 3 }", "MVN": "",
}


@pytest.mark.parametrize("type_name", NO_NEW_UNITS)
def test_bvlc_layers_after_the_reconstruction_make_no_units(type_name):
    text = f"""
layer {{ name: "in" type: "Input" top: "data" input_param {{ shape {{ dim: 2 dim: 1 dim: 4 dim: 4 }} }} }}
layer {{ name: "enc" type: "Convolution" bottom: "data" top: "enc" convolution_param {{ num_output: 3 kernel_size: 3 pad: 1 }} }}
layer {{ name: "dec" type: "Convolution" bottom: "enc" top: "dec" convolution_param {{ num_output: 1 kernel_size: 3 pad: 1 }} }}
layer {{ name: "x" type: "{type_name}" bottom: "dec" top: "out" {NO_NEW_UNITS[type_name]} }}
layer {{ name: "loss" type: "EuclideanLoss" bottom: "out" bottom: "data" top: "loss" }}
"""
    r = params.count_params(prototxt.parse_text(text, caffe_pb2.NetParameter, "t"))
    assert r.model_size == 3 * 16  # the encoder's maps only


def test_spp_and_embed_tops_are_units():
    text = """
layer { name: "in" type: "Input" top: "data" top: "ids" input_param { shape { dim: 2 dim: 3 dim: 6 dim: 6 } shape { dim: 2 dim: 5 } } }
layer { name: "spp" type: "SPP" bottom: "data" top: "spp" spp_param { pyramid_height: 2 } }
layer { name: "emb" type: "Embed" bottom: "ids" top: "emb" embed_param { num_output: 4 input_dim: 10 } }
"""
    r = params.count_params(prototxt.parse_text(text, caffe_pb2.NetParameter, "t"))
    assert r.model_size == 3 * (1 + 4) + 5 * 4
    assert r.total == 10 * 4 + 4


def test_parameter_layer_is_no_data_layer():
    text = """
layer { name: "p" type: "Parameter" top: "p" parameter_param { shape { dim: 2 dim: 3 } } }
layer { name: "in" type: "Input" top: "x" input_param { shape { dim: 2 dim: 3 } } }
layer { name: "sum" type: "Eltwise" bottom: "p" bottom: "x" top: "y" }
"""
    r = params.count_params(prototxt.parse_text(text, caffe_pb2.NetParameter, "t"))
    assert r.total == 6 and [row.type for row in r.rows] == ["Parameter", "Input", "Eltwise"]
