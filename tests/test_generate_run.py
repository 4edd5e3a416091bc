"""The generated nets run in our interpreter: one TRAIN forward/backward on tiny HDF5 data, and a
deploy forward that yields the code blob and the reconstruction."""
import h5py
import numpy as np
import pytest

from caffe_cae import TEST, TRAIN, Net, generate, zoo


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    folder = tmp_path_factory.mktemp("h5")
    rng = np.random.default_rng(0)
    with h5py.File(folder / "mnist.h5", "w") as h5:
        h5["data"] = rng.random((4, 1, 28, 28), dtype=np.float32)
        h5["label"] = np.arange(4, dtype=np.float32)
    with h5py.File(folder / "pairs.h5", "w") as h5:
        h5["pair_data"] = rng.random((4, 2, 28, 28), dtype=np.float32)
        h5["sim"] = np.array([1, 0, 1, 0], np.float32)
    (folder / "mnist.txt").write_text(f"{folder / 'mnist.h5'}\n")
    (folder / "pairs.txt").write_text(f"{folder / 'pairs.h5'}\n")
    return {"mnist": str(folder / "mnist.txt"), "pairs": str(folder / "pairs.txt")}


@pytest.mark.parametrize("model", list(zoo.MODELS))
def test_train_net_runs(model, sources):
    src = sources["pairs" if model == "siamese" else "mnist"]
    net = Net(generate.net_param(model, dim=2, batch=2, train_source=src, test_source=src), phase=TRAIN, seed=1)
    loss = net.forward_backward()
    assert np.isfinite(loss) and loss > 0
    if model != "siamese":  # only the cross entropy trains; the Euclidean loss is a monitor
        outputs = net.forward()
        assert set(outputs) == {"cross_entropy_loss", "l2_error"}
    grads = [np.abs(blob.diff).sum() for blob in net.learnable_params]
    # Every weight blob learns (a Siamese net's shared last bias gets +g and -g: exactly 0).
    assert all(g > 0 for g in grads[0::2])


@pytest.mark.parametrize("model", list(zoo.MODELS))
def test_deploy_net_runs(model):
    net = Net(generate.net_param(model, dim=10, batch=2, deploy=True), phase=TEST, seed=1)
    out = net.forward(data=np.random.default_rng(1).random((2, 1, 28, 28), dtype=np.float32))
    assert net.blobs[zoo.MODELS[model].code_blob].data.shape == (2, 10)
    (name, value), = out.items()
    expected = {"deep-ae": (2, 784), "siamese": (2, 10)}.get(model, (2, 1, 28, 28))
    assert value.shape == expected and np.isfinite(value).all()
