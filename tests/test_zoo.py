"""The model catalog: the papers' architectures, their geometry and their solver settings."""
import pytest

from caffe_cae import zoo
from caffe_cae.errors import CaffeCaeError

CAE = [name for name, spec in zoo.MODELS.items() if isinstance(spec, zoo.CAESpec)]


def test_catalog_names():
    assert list(zoo.MODELS) == ["model1", "model2", "model3", "model4", "model5",
                                "cae2017-model1", "deep-ae", "siamese"]
    assert all(spec.description for spec in zoo.MODELS.values())


def test_unknown_model_lists_the_known_ones():
    with pytest.raises(CaffeCaeError, match=r"unknown model 'model9'; known models: model1, model2"):
        zoo.get_model("model9")


@pytest.mark.parametrize("name, encoder, decoder, pooling, unpooling, out_kernel, hidden", [
    ("model1", ((8, 9), (4, 9)), ((4, 12), (4, 17)), False, None, 1, 250),        # 2019 Table 1
    ("model2", ((26, 5), (36, 5)), ((4, 12), (4, 17)), True, None, 1, 250),
    ("model3", ((26, 5), (36, 5)), ((36, 4), (26, 5)), True, "switches", 5, 250),
    ("model4", ((26, 5), (36, 5)), ((36, 4), (26, 5)), True, "fixed", 5, 250),
    ("model5", ((26, 5), (36, 5)), ((36, 4), (26, 5)), True, "fixed", 5, 250),
    ("cae2017-model1", ((4, 9), (2, 9)), ((2, 12), (2, 17)), False, None, 1, 125),  # 2017 Table II
])
def test_cae_architectures(name, encoder, decoder, pooling, unpooling, out_kernel, hidden):
    spec = zoo.MODELS[name]
    assert (spec.encoder, spec.decoder, spec.pooling, spec.unpooling, spec.out_kernel, spec.hidden) == (
        encoder, decoder, pooling, unpooling, out_kernel, hidden)
    assert spec.activation == ("TanH" if name == "model5" else "Sigmoid")


def test_caffe_geometry():
    assert zoo.conv_out(28, 5) == 24 and zoo.deconv_out(1, 12) == 12 and zoo.deconv_out(12, 17) == 28
    assert zoo.pool_out(24) == 12 and zoo.pool_out(8) == 4
    assert zoo.pool_out(7) == 4  # Caffe rounds pooling up


def test_model3_context_follows_table1():
    ctx = zoo.net_context("model3", zoo.Options(dim=2))
    assert [(s["conv"], s["pool"], s["mask"]) for s in ctx["encoder"]] == [
        ("conv1", "pool1", "pool1_mask"), ("conv2", "pool2", "pool2_mask")]
    assert [(s["deconv"], s["unpool"], s["unpool_size"], s["mask"]) for s in ctx["decoder"]] == [
        ("deconv2", "unpool2", 8, "pool2_mask"), ("deconv1", "unpool1", 24, "pool1_mask")]
    assert ctx["encoded"] == "pool2" and ctx["out_bottom"] == "unpool1"
    assert ctx["decoder"][0]["bottom"] == "ip1decodesh"


def test_model4_unpools_without_mask_and_legacy_has_no_reshape():
    ctx = zoo.net_context("model4", zoo.Options(syntax="legacy"))
    assert [s["mask"] for s in ctx["decoder"]] == [None, None]
    assert not ctx["reshape"] and ctx["decoder"][0]["bottom"] == "ip1decode"
    assert all(s["mask"] is None for s in ctx["encoder"])


@pytest.mark.parametrize("dim, code_sparse", [(2, 2), (10, 10), (30, 25)])
def test_sparse_never_exceeds_num_output(dim, code_sparse):
    ctx = zoo.net_context("model1", zoo.Options(dim=dim))
    assert ctx["code_sparse"] == code_sparse and ctx["hidden_sparse"] == 25
    deep = zoo.net_context("deep-ae", zoo.Options(dim=dim))
    assert [l["sparse"] for l in deep["encode"]] == [15, 15, 15, min(dim, 15)]


def test_deep_ae_widths():
    ctx = zoo.net_context("deep-ae", zoo.Options(dim=30))
    assert [(l["name"], l["num_output"]) for l in ctx["encode"] + ctx["decode"]] == [
        ("encode1", 1000), ("encode2", 500), ("encode3", 250), ("encode4", 30),
        ("decode4", 250), ("decode3", 500), ("decode2", 1000), ("decode1", 784)]
    assert ctx["encode"][-1]["neuron"] is None  # the code is linear


@pytest.mark.parametrize("bad, message", [
    (zoo.Options(dim=0), "--dim must be at least 1"),
    (zoo.Options(syntax="v2"), "--syntax must be one of new, legacy"),
    (zoo.Options(batch=0), "--batch must be at least 1"),
])
def test_bad_options(bad, message):
    with pytest.raises(CaffeCaeError, match=message):
        zoo.net_context("model1", bad)


def test_batch_defaults():
    assert zoo.Options().batch_size == 100 and zoo.Options(deploy=True).batch_size == 1
    assert zoo.Options(batch=7, deploy=True).batch_size == 7


def test_solver_settings():
    assert zoo.PAPER_SOLVER == zoo.Solver(base_lr=0.006, lr_policy="fixed", max_iter=50000, weight_decay=0.0005)
    assert zoo.PAPER_SOLVER.momentum is None
    assert all(zoo.MODELS[n].solver is zoo.PAPER_SOLVER for n in CAE if n != "cae2017-model1")
    assert zoo.MODELS["cae2017-model1"].solver.max_iter == 20000
    ctx = zoo.solver_context("deep-ae", zoo.Options(batch=50), net="n", snapshot_prefix="p")
    assert ctx["tests"] == [{"stage": "test-on-train", "iter": 1000}, {"stage": "test-on-test", "iter": 200}]


def test_code_blobs():
    assert {n: s.code_blob for n, s in zoo.MODELS.items()} == {
        **{n: "ip2encode" for n in CAE}, "deep-ae": "encode4", "siamese": "ip2encode"}
