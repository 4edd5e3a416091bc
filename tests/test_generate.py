"""The generator: every model x dim x syntax renders, parses, is canonical, and has the papers'
names, fillers, losses and layer order; current-syntax nets keep to BVLC Caffe's schema."""
import itertools
import pathlib

import pytest

from caffe_cae import generate, migrate, prototxt, zoo
from caffe_cae.errors import CaffeCaeError
from caffe_cae.proto import caffe_pb2
from tests.helpers.paths import GOLDEN

MODELS = list(zoo.MODELS)
CASES = list(itertools.product(MODELS, zoo.DIMS, zoo.SYNTAXES, (False, True)))

# Layer types BVLC Caffe (master 9b8915401) registers, restricted to what the generator may use.
BVLC_TYPES = {"HDF5Data", "Input", "Convolution", "Deconvolution", "Pooling", "InnerProduct",
              "Sigmoid", "TanH", "ReLU", "Reshape", "Flatten", "Slice", "SigmoidCrossEntropyLoss",
              "EuclideanLoss", "ContrastiveLoss"}


def layers(net):
    return list(net.layers) if len(net.layers) else list(net.layer)


def names(net):
    return [l.name for l in layers(net)]


def by_name(net, name):
    found = [l for l in layers(net) if l.name == name]
    assert len(found) == 1, name
    return found[0]


@pytest.mark.parametrize("model, dim, syntax, deploy", CASES)
def test_every_net_parses_and_is_canonical(model, dim, syntax, deploy):
    text = generate.net_text(model, dim=dim, syntax=syntax, deploy=deploy)
    assert text.startswith(f"# caffe-cae gen {model} --dim {dim} --syntax {syntax}")
    body = generate.net_text(model, dim=dim, syntax=syntax, deploy=deploy, header=False)
    net = prototxt.parse_text(text, caffe_pb2.NetParameter)
    # Fields in Caffe's print order: the file is what Caffe's TextFormat would write.
    assert prototxt.to_text(net) == body
    if syntax == "new":
        assert len(net.layer) and not len(net.layers)
    else:
        assert len(net.layers) and not len(net.layer)
        assert "Reshape" not in body and "reshape" not in names(net)


def _fields(message, path=""):
    for field, value in message.ListFields():
        items = value if field.is_repeated else [value]
        for item in items:
            yield field, f"{path}.{field.name}"
            if field.message_type is not None:
                yield from _fields(item, f"{path}.{field.name}")


@pytest.mark.parametrize("model, dim, deploy", [(m, d, dep) for m, d, s, dep in CASES if s == "new"])
def test_new_syntax_keeps_to_bvlc_schema(model, dim, deploy):
    net = generate.net_param(model, dim=dim, deploy=deploy)
    if any(l.type == "Unpooling" for l in net.layer):
        assert model in ("model3", "model4", "model5")
        return
    for field, where in _fields(net):
        assert field.number < 10000, f"{where} is not a BVLC field"
        assert field.containing_type.name != "V1LayerParameter", where
    assert {l.type for l in net.layer} <= BVLC_TYPES


def test_model3_layer_order_and_blobs():
    net = generate.net_param("model3", dim=10)
    assert names(net) == [
        "data", "data", "conv1", "sig1en", "pool1", "conv2", "sig2en", "pool2", "ip1encode", "sig3en",
        "ip2encode", "ip1decode", "sig3de", "reshape", "deconv2", "sig2de", "unpool2", "deconv1", "sig1de",
        "unpool1", "deconv1neur", "loss", "deconv1neursig", "loss"]
    assert list(by_name(net, "pool1").top) == ["pool1", "pool1_mask"]
    assert list(by_name(net, "unpool2").bottom) == ["deconv2", "pool2_mask"]
    assert list(by_name(net, "unpool1").bottom) == ["deconv1", "pool1_mask"]
    assert by_name(net, "unpool2").unpooling_param.unpool_size == 8
    assert by_name(net, "unpool1").unpooling_param.unpool_size == 24
    reshape = by_name(net, "reshape")
    assert (list(reshape.bottom), list(reshape.top), list(reshape.reshape_param.shape.dim)) == (
        ["ip1decode"], ["ip1decodesh"], [0, 0, 1, 1])
    assert list(by_name(net, "deconv2").bottom) == ["ip1decodesh"]
    assert by_name(net, "ip2encode").inner_product_param.num_output == 10


@pytest.mark.parametrize("model", ["model4", "model5"])
def test_unpooling_without_switches(model):
    net = generate.net_param(model)
    assert len(by_name(net, "pool1").top) == 1
    for name in ("unpool1", "unpool2"):
        unpool = by_name(net, name)
        assert unpool.type == "Unpooling" and len(unpool.bottom) == 1
        assert unpool.unpooling_param.unpool == caffe_pb2.UnpoolingParameter.MAX
        assert (unpool.unpooling_param.kernel_size, unpool.unpooling_param.stride) == (2, 2)


def test_activations():
    sig = [l.name for l in generate.net_param("model4").layer if l.type == "Sigmoid"]
    assert sig == ["sig1en", "sig2en", "sig3en", "sig3de", "sig2de", "sig1de", "deconv1neursig"]
    tanh = [l.name for l in generate.net_param("model5").layer if l.type == "TanH"]
    assert tanh == sig[:-1]  # Model 5: TanH in every hidden layer; the loss's sigmoid stays
    assert [l.type for l in generate.net_param("model5").layer if l.name == "deconv1neursig"] == ["Sigmoid"]


@pytest.mark.parametrize("model", [m for m, s in zoo.MODELS.items() if isinstance(s, zoo.CAESpec)])
@pytest.mark.parametrize("syntax", zoo.SYNTAXES)
def test_cae_fillers_params_and_losses(model, syntax):
    net = generate.net_param(model, syntax=syntax, dim=2)
    new = migrate.upgrade_net(net)[0] if syntax == "legacy" else net
    learnable = [l for l in new.layer if l.type in ("Convolution", "Deconvolution", "InnerProduct")]
    assert [l.name for l in learnable][-1] == "deconv1neur"
    for layer in learnable:
        assert [(p.lr_mult, p.HasField("decay_mult")) for p in layer.param] == [(1, False), (3, False)]
        if layer.type == "InnerProduct":
            param = layer.inner_product_param
            f = param.weight_filler
            assert (f.type, f.std, f.sparse) == ("gaussian", 1, min(25, param.num_output))
        else:
            param = layer.convolution_param
            assert param.weight_filler.type == "xavier" and list(param.stride) == [1]
        assert param.bias_filler.type == "constant" and not param.bias_filler.HasField("value")
    sce, sig, l2 = new.layer[-3:]
    assert (sce.type, list(sce.bottom), list(sce.top), list(sce.loss_weight)) == (
        "SigmoidCrossEntropyLoss", ["deconv1neur", "data"], ["cross_entropy_loss"], [1])
    assert (sig.type, list(sig.bottom), list(sig.top)) == ("Sigmoid", ["deconv1neur"], ["deconv1neursig"])
    assert (l2.type, list(l2.bottom), list(l2.top), list(l2.loss_weight)) == (
        "EuclideanLoss", ["deconv1neursig", "data"], ["l2_error"], [0])
    assert sce.name == l2.name == "loss"


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("deploy", [False, True])
def test_legacy_upgrades_to_the_new_syntax_net(model, deploy):
    """Our migrator turns each V1 net into its current-syntax twin (Reshape fix included)."""
    upgraded, _notes = migrate.upgrade_net(generate.net_param(model, syntax="legacy", deploy=deploy))
    new = generate.net_param(model, deploy=deploy)
    if deploy:  # Caffe's input-field upgrade names its layer "input"
        assert upgraded.layer[0].name == "input"
        upgraded.layer[0].name = "data"
    assert prototxt.to_text(upgraded) == prototxt.to_text(new)


def test_legacy_layers_as_noh_fork_reads_them():
    net = generate.net_param("model3", syntax="legacy")
    V1 = caffe_pb2.V1LayerParameter
    pool = by_name(net, "pool1")
    assert pool.type == V1.POOLING and list(pool.top) == ["pool1", "pool1_mask"]
    unpool = by_name(net, "unpool1")
    assert unpool.type == V1.UNPOOLING and list(unpool.bottom) == ["deconv1", "pool1_mask"]
    assert unpool.unpooling_param.unpool_size == 24
    assert list(by_name(net, "conv1").blobs_lr) == [1, 3]
    assert list(by_name(net, "deconv2").bottom) == ["ip1decode"]  # 4-D IP tops: no Reshape
    assert by_name(generate.net_param("model4", syntax="legacy"), "unpool2").bottom == ["deconv2"]


@pytest.mark.parametrize("model", MODELS)
def test_deploy_nets(model):
    net = generate.net_param(model, dim=10, deploy=True)
    first = net.layer[0]
    assert (first.name, first.type, list(first.top)) == ("data", "Input", ["data"])
    assert list(first.input_param.shape[0].dim) == [1, 1, 28, 28]
    assert not any("Loss" in l.type or l.type == "HDF5Data" for l in net.layer)
    assert zoo.MODELS[model].code_blob in {t for l in net.layer for t in l.top}
    legacy = generate.net_param(model, deploy=True, syntax="legacy", batch=5)
    assert list(legacy.input) == ["data"] and list(legacy.input_dim) == [5, 1, 28, 28]


def test_deploy_outputs():
    assert generate.net_param("model1", deploy=True).layer[-1].top == ["deconv1neursig"]
    assert generate.net_param("deep-ae", deploy=True).layer[-1].top == ["decode1neuron"]
    siamese = generate.net_param("siamese", deploy=True)
    assert names(siamese)[-1] == "ip2encode" and not any(n.endswith("_p") for n in names(siamese))


def test_sources_and_batch():
    net = generate.net_param("model2", batch=64, train_source="a/train.txt", test_source="a/test.txt")
    train, test = net.layer[:2]
    assert (train.include[0].phase, train.hdf5_data_param.source, train.hdf5_data_param.batch_size) == (
        caffe_pb2.TRAIN, "a/train.txt", 64)
    assert (test.include[0].phase, test.hdf5_data_param.source, test.hdf5_data_param.batch_size) == (
        caffe_pb2.TEST, "a/test.txt", 64)
    default = generate.net_param("model2").layer[0].hdf5_data_param
    assert (default.source, default.batch_size) == (zoo.DEFAULT_TRAIN_SOURCE, 100)


def test_deep_ae_follows_caffe_example():
    net = generate.net_param("deep-ae", dim=30)
    data = [l for l in net.layer if l.type == "HDF5Data"]
    assert [(r.phase, list(r.stage)) for l in data for r in l.include] == [
        (caffe_pb2.TRAIN, []), (caffe_pb2.TEST, ["test-on-train"]), (caffe_pb2.TEST, ["test-on-test"])]
    assert [l.hdf5_data_param.source for l in data] == [zoo.DEFAULT_TRAIN_SOURCE] * 2 + [zoo.DEFAULT_TEST_SOURCE]
    assert list(by_name(net, "encode1").bottom) == ["data"] and list(by_name(net, "flatdata").bottom) == ["data"]
    assert list(by_name(net, "encode2").bottom) == ["encode1neuron"]
    assert list(by_name(net, "decode4").bottom) == ["encode4"]  # linear code
    enc1 = by_name(net, "encode1")
    assert [(p.lr_mult, p.decay_mult) for p in enc1.param] == [(1, 1), (1, 0)]
    f = enc1.inner_product_param.weight_filler
    assert (f.type, f.std, f.sparse) == ("gaussian", 1, 15)
    assert enc1.inner_product_param.bias_filler.HasField("value")
    sce, sig, l2 = net.layer[-3:]
    assert (list(sce.bottom), list(sig.top), list(l2.bottom), list(l2.loss_weight)) == (
        ["decode1", "flatdata"], ["decode1neuron"], ["decode1neuron", "flatdata"], [0])
    # The code of a 2-D deep AE: sparse must not exceed num_output (Caffe CHECKs it).
    assert by_name(generate.net_param("deep-ae", dim=2), "encode4").inner_product_param.weight_filler.sparse == 2


def test_siamese_shares_weights():
    net = generate.net_param("siamese", dim=2)
    assert list(by_name(net, "slice_pair").top) == ["data", "data_p"]
    for base in ("conv1", "conv2", "ip1encode", "ip2encode"):
        a, b = by_name(net, base), by_name(net, base + "_p")
        assert [p.name for p in a.param] == [p.name for p in b.param] == [f"{base}_w", f"{base}_b"]
        assert [p.lr_mult for p in a.param] == [1, 2]
    assert list(by_name(net, "relu1").top) == ["ip1encode"]
    loss = net.layer[-1]
    assert (loss.type, list(loss.bottom), loss.contrastive_loss_param.margin) == (
        "ContrastiveLoss", ["ip2encode", "ip2encode_p", "sim"], 1)
    assert list(net.layer[0].top) == ["pair_data", "sim"]


def _layers_text(net, skip=()):
    return [prototxt.to_text(l) for l in net.layer if l.name not in skip]


@pytest.mark.parametrize("case", ["model1", "model2"])
def test_matches_caffe_accepted_golden_nets(case):
    """tests/data/golden/model{1,2}: nets real Caffe ran (Input batch 8, code 10, Euclidean weight 1)."""
    golden = prototxt.read_net_text(GOLDEN / case / "net.prototxt")
    ours = generate.net_param(case, dim=10)
    skip = ("data", "loss")
    assert _layers_text(ours, skip) == _layers_text(golden, skip)


def test_matches_paper_sgd_golden_net():
    """paper_sgd: Model 2 with the authors' lr_mult 1/3 and Euclidean loss_weight 0, TRAIN data."""
    golden = prototxt.read_net_text(GOLDEN / "paper_sgd" / "net.prototxt")
    ours = generate.net_param("model2", dim=10, batch=8, train_source="train_list.txt")
    del ours.layer[1]  # our TEST data layer
    assert _layers_text(ours) == _layers_text(golden)


def test_model4_encoder_and_learned_decoder_match_golden():
    golden = prototxt.read_net_text(GOLDEN / "model4_bvlc_equiv" / "net.prototxt")
    ours = generate.net_param("model4", dim=10)
    skip = ("data", "loss", "unpool1", "unpool2")
    assert _layers_text(ours, skip) == _layers_text(golden, skip)


def test_solver_for_the_paper_models():
    solver = generate.solver_param("model4", net="nets/model4.prototxt", snapshot_prefix="snap/m4", random_seed=7)
    assert (solver.net, solver.base_lr, solver.lr_policy, solver.weight_decay, solver.max_iter) == (
        "nets/model4.prototxt", pytest.approx(0.006), "fixed", pytest.approx(0.0005), 50000)
    assert not solver.HasField("momentum") and solver.type == "SGD"
    assert (list(solver.test_iter), solver.test_interval, solver.test_compute_loss) == ([100], 1000, True)
    assert (solver.snapshot_prefix, solver.random_seed, solver.solver_mode) == ("snap/m4", 7, caffe_pb2.SolverParameter.CPU)
    assert generate.solver_param("cae2017-model1").max_iter == 20000
    assert list(generate.solver_param("model1", batch=50).test_iter) == [200]
    legacy = generate.solver_param("model1", syntax="legacy")
    assert not legacy.HasField("type") and legacy.net == "model1.prototxt"


def test_solvers_of_caffe_examples():
    deep = generate.solver_param("deep-ae")
    assert (deep.base_lr, deep.lr_policy, deep.gamma, deep.stepsize, deep.momentum, deep.max_iter) == (
        pytest.approx(0.01), "step", pytest.approx(0.1), 10000, pytest.approx(0.9), 65000)
    assert list(deep.test_iter) == [500, 100]
    assert [list(s.stage) for s in deep.test_state] == [["test-on-train"], ["test-on-test"]]
    siamese = generate.solver_param("siamese")
    assert (siamese.lr_policy, siamese.gamma, siamese.power, siamese.momentum, siamese.weight_decay) == (
        "inv", pytest.approx(0.0001), pytest.approx(0.75), pytest.approx(0.9), 0)
    assert siamese.HasField("weight_decay") and (siamese.max_iter, siamese.snapshot) == (50000, 5000)


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("syntax", zoo.SYNTAXES)
def test_every_solver_is_canonical(model, syntax):
    body = generate.solver_text(model, syntax=syntax, header=False)
    assert prototxt.to_text(prototxt.parse_text(body, caffe_pb2.SolverParameter)) == body


def test_errors_are_one_line_user_errors():
    with pytest.raises(CaffeCaeError, match="unknown model 'model6'"):
        generate.net_text("model6")
    with pytest.raises(CaffeCaeError, match="--solver-mode must be CPU or GPU"):
        generate.solver_text("model1", solver_mode="TPU")


def test_templates_ship_inside_the_package():
    """caffe_cae/templates -> ../templates, included by pyproject's package-data glob."""
    folder = pathlib.Path(generate.__file__).parent / "templates"
    assert folder.is_dir() and generate._template_dir() == folder
    shipped = {p.name for p in folder.glob("*.j2")}
    assert {"layers.j2", "cae.prototxt.j2", "deep_ae.prototxt.j2", "siamese.prototxt.j2",
            "solver.prototxt.j2"} <= shipped
    pyproject = (pathlib.Path(generate.__file__).resolve().parents[1] / "pyproject.toml").read_text()
    assert '"templates/*.j2"' in pyproject


@pytest.mark.parametrize("syntax", zoo.SYNTAXES)
def test_model3_blob_shapes_follow_table1(syntax):
    """2019 Table 1, Model 3 (C x H x W here; the paper writes H x W x C)."""
    from caffe_cae.net import infer_shapes

    shapes = infer_shapes(generate.net_param("model3", dim=2, deploy=True, syntax=syntax))
    assert {name: shape[1:] for name, shape in shapes.items()} == {
        "data": (1, 28, 28), "conv1": (26, 24, 24), "pool1": (26, 12, 12), "pool1_mask": (26, 12, 12),
        "conv2": (36, 8, 8), "pool2": (36, 4, 4), "pool2_mask": (36, 4, 4), "ip1encode": (250,),
        "ip2encode": (2,), "ip1decode": (250,), "ip1decodesh": (250, 1, 1), "deconv2": (36, 4, 4),
        "unpool2": (36, 8, 8), "deconv1": (26, 12, 12), "unpool1": (26, 24, 24), "deconv1neur": (1, 28, 28),
        "deconv1neursig": (1, 28, 28)}


def test_user_strings_are_escaped():
    odd = 'dir "x"\\list\n.txt'
    net = generate.net_param("model1", train_source=odd)
    assert net.layer[0].hdf5_data_param.source == odd
    text = generate.net_text("model1", train_source=odd, header=False)
    assert prototxt.to_text(prototxt.parse_text(text, caffe_pb2.NetParameter)) == text
    assert prototxt.parse_text(generate.net_text("model1", train_source=odd), caffe_pb2.NetParameter) == net
    solver = generate.solver_param("model1", net=odd, snapshot_prefix=odd)
    assert solver.net == solver.snapshot_prefix == odd
