"""Every figure is a real PNG with the expected content (size, non-blank pixels, titles)."""
import numpy as np
import pytest
from matplotlib.image import imread

from caffe_cae.experiments import figures


def _is_real_png(path, min_px=200):
    image = imread(path)
    assert image.ndim == 3 and image.shape[0] >= min_px and image.shape[1] >= min_px
    # Not a blank canvas: several distinct colours.
    assert len(np.unique(image.reshape(-1, image.shape[2])[:, :3], axis=0)) > 10


def _codes(dims, n=200, seed=0):
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(10), n // 10)
    return rng.normal(size=(10, dims))[labels] * 4 + rng.normal(size=(n, dims)), labels


def test_code_scatter(tmp_path):
    codes, labels = _codes(2)
    figures.code_scatter(codes, labels, tmp_path / "scatter.png")
    _is_real_png(tmp_path / "scatter.png")
    with pytest.raises(ValueError):
        figures.code_scatter(np.zeros((3, 10)), labels[:3], tmp_path / "x.png")


def test_tsne_map_subsamples(tmp_path):
    codes, labels = _codes(10)
    embedding = figures.tsne_map(codes, labels, tmp_path / "tsne.png", max_points=120)
    assert embedding.shape == (120, 2)
    _is_real_png(tmp_path / "tsne.png")


def test_reconstructions_and_layer_panels(tmp_path):
    rng = np.random.default_rng(0)
    digits = rng.random((4, 1, 28, 28)).astype(np.float32)
    figures.reconstructions(digits, {"model4": digits[:, 0] * 0.5}, tmp_path / "rec.png")
    _is_real_png(tmp_path / "rec.png", min_px=150)
    panels = [("data", "data", digits[0]), ("conv1", "sig1en", rng.random((26, 24, 24))),
              ("ip2encode", "ip2encode", rng.normal(size=10))]
    figures.layer_panels(panels, tmp_path / "layers.png")
    _is_real_png(tmp_path / "layers.png")


def test_panel_title_format():
    values = np.linspace(-1, 2, 26 * 24 * 24).reshape(26, 24, 24)
    assert figures.panel_title("conv1", "sig1en", values.shape, values) == "conv1|sig1en 24x24x26 [-1..2]"
    assert figures.panel_title("ip1encode", "sig3en", (250,), np.array([0.25, 0.5])) == \
        "ip1encode|sig3en 1x1x250 [0.25..0.5]"


def test_mosaic_places_every_map():
    maps = np.arange(5 * 2 * 3, dtype=np.float32).reshape(5, 2, 3)
    tiled = figures.mosaic(maps)
    assert tiled.shape == (2 * 3 - 1, 3 * 4 - 1)   # 2 rows x 3 columns of 2x3 tiles, 1-px gaps
    assert np.nansum(tiled) == maps.sum()


def test_loss_curves(tmp_path):
    history = {"train": {"cross_entropy_loss": [(i, 200 / (1 + i)) for i in range(0, 500, 20)],
                         "l2_error": [(i, 20 / (1 + i)) for i in range(0, 500, 20)]},
               "test": {"cross_entropy_loss": [(0, 210.0), (250, 2.0), (500, 0.5)]}}
    figures.loss_curves(history, tmp_path / "loss.png")
    _is_real_png(tmp_path / "loss.png")


def test_loss_curves_are_labelled_and_show_the_papers_final_values(tmp_path, monkeypatch):
    drawn = []
    monkeypatch.setattr(figures, "_save", lambda fig, path, dpi=110: drawn.append(fig))
    history = {"train": {"cross_entropy_loss": [(0, 500.0), (100, 90.0)], "l2_error": [(0, 60.0), (100, 6.0)]},
               "test": {"cross_entropy_loss": [(0, 510.0), (100, 92.0)]}}
    figures.loss_curves(history, tmp_path / "loss.png", labels={"cross_entropy_loss": "SCE", "l2_error": "Euclidean"},
                        reference={"cross_entropy_loss": {"train": 82.74, "test": 84.13}})
    sce, l2 = drawn[0].axes
    assert sce.get_title() == "SCE" and l2.get_title() == "Euclidean"
    assert sce.get_ylabel() == "SCE (cross_entropy_loss)"
    lines = {line.get_label(): line for line in sce.get_lines()}
    assert lines["paper test (50000 it.) 84.13"].get_ydata()[0] == 84.13
    assert lines["paper train (50000 it.) 82.74"].get_linestyle() == "--"
