"""Real legacy nets: BVLC's V1 examples, Noh's DeconvNet files, and a legacy CAE (2017 paper)."""
import pytest

from caffe_cae import prototxt
from caffe_cae.migrate import upgrade_net, upgrade_solver
from caffe_cae.proto import caffe_pb2
from tests.helpers.paths import DATA, FIXTURES

BVLC = FIXTURES / "bvlc_examples"
NOH = FIXTURES / "deconvnet_noh"
LEGACY_CAE = DATA / "legacy_cae"
V1_BEFORE = sorted(BVLC.glob("*.V1_before_*.prototxt"))


def migrate(path, **kwargs):
    return upgrade_net(prototxt.read_net_text(path), source=path, **kwargs)


@pytest.mark.parametrize("before", V1_BEFORE, ids=lambda p: p.name.split(".")[0])
def test_bvlc_v1_examples_match_the_upgraded_files(before):
    after = prototxt.read_net_text(str(before).replace("V1_before", "V2_after"))
    upgraded, notes = migrate(before)
    # The 2015 tool kept deprecated `input` fields (the Input layer came in Oct 2015); today's
    # upgrade of the 2015 output must equal ours.
    if after.input:
        after, _ = upgrade_net(after)
    assert upgraded == after
    assert not any(note.level == "error" for note in notes)


def test_bvlc_v1_examples_exist():
    assert len(V1_BEFORE) == 4


@pytest.mark.parametrize("name", ["stage_1_train.prototxt", "DeconvNet_inference_deploy.prototxt"])
def test_deconvnet_nets_migrate_and_parse(name):
    upgraded, notes = migrate(NOH / name)
    assert not upgraded.layers and upgraded.layer
    reparsed = prototxt.parse_text(prototxt.to_text(upgraded), caffe_pb2.NetParameter)
    assert reparsed == upgraded
    assert not any(note.level == "error" for note in notes)
    original = prototxt.read_net_text(NOH / name)
    assert len(upgraded.layer) == len(original.layers) + (1 if original.input else 0)
    unpools = [layer for layer in upgraded.layer if layer.type == "Unpooling"]
    assert [u.unpooling_param.unpool_size for u in unpools] == [14, 28, 56, 112, 224]
    for unpool in unpools:
        assert len(unpool.bottom) == 2 and unpool.bottom[1].endswith("_mask")
        assert unpool.unpooling_param.kernel_size == 2 and unpool.unpooling_param.stride == 2
    pools = [layer for layer in upgraded.layer if layer.type == "Pooling"]
    assert len(pools) == 5 and all(list(p.top) == [p.name, p.name + "_mask"] for p in pools)
    bns = [layer for layer in upgraded.layer if layer.type == "BN"]
    assert bns and all(layer.HasField("bn_param") for layer in bns)
    assert not [layer for layer in upgraded.layer if layer.type == "Reshape"]


def test_deconvnet_fork_only_types_are_mapped():
    upgraded, _ = migrate(NOH / "stage_1_train.prototxt")
    types = {layer.type for layer in upgraded.layer}
    assert {"ImageSegData", "EltwiseAccuracy", "Unpooling", "BN", "Deconvolution"} <= types
    data = upgraded.layer[0]
    assert data.image_data_param.label_type == caffe_pb2.ImageDataParameter.PIXEL
    accuracy = [layer for layer in upgraded.layer if layer.type == "EltwiseAccuracy"][0]
    assert accuracy.HasField("eltwise_accuracy_param")


def test_noh_solver_keeps_iter_size():
    solver, notes = upgrade_solver(prototxt.read_solver_text(NOH / "stage_1_solver.prototxt"))
    assert solver.iter_size == 8 and solver.type == "SGD" and not solver.HasField("type")
    assert notes == []


# -- the 2017 paper's legacy CAE ---------------------------------------------------------------

CAE = LEGACY_CAE / "mnistCAE10sym0202.prototxt"


def test_legacy_cae_gets_exactly_one_reshape():
    upgraded, notes = migrate(CAE)
    reshapes = [(i, layer) for i, layer in enumerate(upgraded.layer) if layer.type == "Reshape"]
    assert len(reshapes) == 1
    index, reshape = reshapes[0]
    assert upgraded.layer[index - 1].name == "sig3de"
    assert list(reshape.bottom) == ["ip1decode"] and list(reshape.top) == ["ip1decodesh"]
    assert list(reshape.reshape_param.shape.dim) == [0, 0, 1, 1]
    deconv2 = upgraded.layer[index + 1]
    assert deconv2.name == "deconv2" and list(deconv2.bottom) == ["ip1decodesh"]
    assert [n for n in notes if "Reshape" in n and n.level == "warning"]


def test_legacy_cae_without_reshape_fix_is_caffes_upgrade():
    upgraded, _ = migrate(CAE, reshape_fix=False)
    assert not [layer for layer in upgraded.layer if layer.type == "Reshape"]
    assert [layer for layer in upgraded.layer if layer.name == "deconv2"][0].bottom[0] == "ip1decode"
    # param folding: blobs_lr 1 / 3 and no weight_decay entries
    conv1 = upgraded.layer[2]
    assert [(p.lr_mult, p.HasField("decay_mult")) for p in conv1.param] == [(1, False), (3, False)]


def test_legacy_cae_solver():
    solver, _ = upgrade_solver(prototxt.read_solver_text(LEGACY_CAE / "solver-mnistCAE10sym020203.prototxt"))
    assert solver.type == "SGD" and not solver.HasField("solver_type")
    assert solver.base_lr == pytest.approx(0.006) and solver.max_iter == 20000


PAPER_SHAPES = {
    "data": (100, 1, 28, 28), "conv1": (100, 8, 20, 20), "conv2": (100, 4, 12, 12),
    "ip1encode": (100, 250), "ip2encode": (100, 2), "ip1decode": (100, 250),
    "ip1decodesh": (100, 250, 1, 1), "deconv2": (100, 4, 12, 12), "deconv1": (100, 4, 28, 28),
    "deconv1neur": (100, 1, 28, 28), "deconv1neursig": (100, 1, 28, 28),
}


@pytest.fixture
def cae_with_data(tmp_path):
    """The migrated CAE with its HDF5 sources pointed at a small file of the paper's geometry."""
    h5py = pytest.importorskip("h5py")
    import numpy as np

    data_file = tmp_path / "mnist.h5"
    with h5py.File(data_file, "w") as handle:
        handle["data"] = np.random.default_rng(0).random((100, 1, 28, 28), dtype=np.float32)
    listing = tmp_path / "list.txt"
    listing.write_text(f"{data_file}\n")
    upgraded, _ = migrate(CAE)
    for layer in upgraded.layer:
        if layer.type == "HDF5Data":
            layer.hdf5_data_param.source = str(listing)
    return upgraded


def test_migrated_cae_has_the_papers_shapes(cae_with_data):
    net_module = pytest.importorskip("caffe_cae.net", reason="caffe_cae.net (Net) not written yet")
    for phase in (caffe_pb2.TRAIN, caffe_pb2.TEST):
        shapes = net_module.infer_shapes(cae_with_data, phase=phase,
                                         input_shapes={"data": PAPER_SHAPES["data"]})
        for blob, shape in PAPER_SHAPES.items():
            assert tuple(shapes[blob]) == shape, blob
    net = net_module.Net(cae_with_data, phase=caffe_pb2.TEST)
    for blob, shape in PAPER_SHAPES.items():
        assert net.blobs[blob].shape == shape, blob
    assert [tuple(b.shape) for b in net.params["deconv2"]] == [(250, 4, 12, 12), (4,)]


def test_noh_golden_unpool_net_migrates():
    from tests.helpers.paths import GOLDEN_NOH

    upgraded, _ = migrate(GOLDEN_NOH / "unpool_test" / "unpool_test.prototxt")
    assert [l.type for l in upgraded.layer] == ["Input", "Pooling", "Unpooling", "Unpooling"]
    with_mask, without_mask = upgraded.layer[2:]
    assert list(with_mask.bottom) == ["pool", "pool_mask"] and list(without_mask.bottom) == ["pool"]
    assert list(upgraded.layer[1].top) == ["pool", "pool_mask"]
    assert upgraded.force_backward


def test_migrated_noh_unpool_net_runs_like_noh_caffe():
    """Noh's own file, migrated, reproduces the fork's outputs in our interpreter."""
    import numpy as np
    from tests.helpers.paths import GOLDEN_NOH

    net_module = pytest.importorskip("caffe_cae.net", reason="caffe_cae.net (Net) not written yet")
    results = np.load(GOLDEN_NOH / "unpool_test" / "unpool_test_results.npz")
    upgraded, _ = migrate(GOLDEN_NOH / "unpool_test" / "unpool_test.prototxt")
    net = net_module.Net(upgraded)
    net.forward(data=results["data"])
    for blob in ("pool", "pool_mask", "unpool_mask", "unpool_nomask"):
        np.testing.assert_array_equal(net.blobs[blob].data, results[blob], err_msg=blob)
