"""The papers' figures as PNG files, drawn from arrays (no net needed here).

* :func:`code_scatter` — a 2-D code coloured by digit (Figs. 4-10, left);
* :func:`tsne_map` — t-SNE map of a 10-D/30-D code coloured by digit (Figs. 4-10, right);
* :func:`reconstructions` — sample digits and their reconstruction per model (Table 6);
* :func:`layer_panels` — one digit through the net, one panel per blob with the title
  ``blob|layer HxWxC [min..max]`` (Fig. 11);
* :func:`loss_curves` — train/test loss per loss output against the iteration.

Figures are drawn on Agg canvases (no pyplot state, no display needed) and written atomically.
"""
from __future__ import annotations

import math
import os
from typing import TYPE_CHECKING, Mapping, Sequence

import numpy as np

from caffe_cae.fileio import atomic_write

if TYPE_CHECKING:
    from matplotlib.figure import Figure

DIGIT_COLOURS = [
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
    "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf",
]


def _figure(**kwargs) -> "Figure":
    """A matplotlib Figure (imported here: matplotlib costs ~0.5 s, and every CLI start pays
    for module-level imports)."""
    from matplotlib.figure import Figure

    return Figure(**kwargs)


def _save(fig: "Figure", path: str | os.PathLike, dpi: int = 110) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=dpi, format="png"))


def _scatter_by_digit(ax, points: np.ndarray, labels: np.ndarray, size: float = 3.0) -> None:
    for digit in np.unique(labels):
        mask = labels == digit
        ax.scatter(points[mask, 0], points[mask, 1], s=size, c=DIGIT_COLOURS[int(digit) % 10],
                   label=str(int(digit)), linewidths=0, alpha=0.8)
    legend = ax.legend(title="digit", markerscale=4, fontsize=7, title_fontsize=8,
                       loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False)
    legend.set_in_layout(True)


def code_scatter(codes: np.ndarray, labels: np.ndarray, path: str | os.PathLike, title: str = "") -> None:
    """Scatter of a 2-D code (N x 2), one colour per digit."""
    codes = np.asarray(codes).reshape(len(codes), -1)
    if codes.shape[1] != 2:
        raise ValueError(f"code_scatter needs a 2-D code, got {codes.shape[1]}-D")
    fig = _figure(figsize=(6.4, 5.2), layout="constrained")
    ax = fig.add_subplot()
    _scatter_by_digit(ax, codes, np.asarray(labels))
    ax.set_xlabel("code[0]")
    ax.set_ylabel("code[1]")
    ax.set_title(title or f"2-D code of {len(codes)} digits")
    _save(fig, path)


def tsne_embedding(codes: np.ndarray, seed: int = 0, perplexity: float = 30.0) -> np.ndarray:
    """2-D t-SNE (Barnes-Hut, scikit-learn) of ``codes`` (N x D)."""
    from sklearn.manifold import TSNE

    codes = np.asarray(codes, dtype=np.float32).reshape(len(codes), -1)
    perplexity = min(perplexity, max(1.0, (len(codes) - 1) / 3.0))
    return TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed).fit_transform(codes)


def tsne_map(codes: np.ndarray, labels: np.ndarray, path: str | os.PathLike, title: str = "",
             max_points: int | None = 5000, seed: int = 0) -> np.ndarray:
    """t-SNE map of ``codes`` coloured by digit; at most ``max_points`` (a fixed random subset).

    Returns the embedding of the plotted points.
    """
    codes = np.asarray(codes).reshape(len(codes), -1)
    labels = np.asarray(labels)
    if max_points is not None and len(codes) > max_points:
        keep = np.sort(np.random.default_rng(seed).choice(len(codes), max_points, replace=False))
        codes, labels = codes[keep], labels[keep]
    embedding = tsne_embedding(codes, seed)
    fig = _figure(figsize=(6.4, 5.2), layout="constrained")
    ax = fig.add_subplot()
    _scatter_by_digit(ax, embedding, labels)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(title or f"t-SNE of {codes.shape[1]}-D code ({len(codes)} digits)")
    _save(fig, path)
    return embedding


def reconstructions(originals: np.ndarray, rows: Mapping[str, np.ndarray], path: str | os.PathLike,
                    title: str = "Reconstructions") -> None:
    """Grid: the original digits in the first row, then one row per model's reconstruction.

    ``originals``: (K, 28, 28) or (K, 1, 28, 28); ``rows``: model name -> same shape.
    """
    originals = np.asarray(originals).reshape(len(originals), 28, -1)
    named = [("input", originals)] + [(n, np.asarray(r).reshape(originals.shape)) for n, r in rows.items()]
    k = len(originals)
    fig = _figure(figsize=(1.1 * k + 1.4, 1.15 * len(named) + 0.4), layout="constrained")
    axes = fig.subplots(len(named), k, squeeze=False)
    for row, (name, images) in enumerate(named):
        for col in range(k):
            ax = axes[row][col]
            ax.imshow(images[col], cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if col == 0:
                ax.set_ylabel(name, fontsize=8)
    fig.suptitle(title, fontsize=10)
    _save(fig, path)


def mosaic(maps: np.ndarray) -> np.ndarray:
    """Tile C feature maps (C, H, W) into one image, NaN between tiles."""
    c, h, w = maps.shape
    cols = math.ceil(math.sqrt(c))
    rows = math.ceil(c / cols)
    out = np.full((rows * (h + 1) - 1, cols * (w + 1) - 1), np.nan, dtype=np.float32)
    for i in range(c):
        r, q = divmod(i, cols)
        out[r * (h + 1):r * (h + 1) + h, q * (w + 1):q * (w + 1) + w] = maps[i]
    return out


def panel_title(blob: str, layer: str, shape: Sequence[int], values: np.ndarray) -> str:
    """Fig. 11's title: ``blob|layer HxWxC [min..max]`` for one sample's blob of shape (C, H, W)."""
    shape = tuple(shape) + (1,) * (3 - len(shape))
    c, h, w = shape[:3]
    return f"{blob}|{layer} {h}x{w}x{c} [{values.min():.3g}..{values.max():.3g}]"


def layer_panels(panels: Sequence[tuple[str, str, np.ndarray]], path: str | os.PathLike,
                 title: str = "", columns: int = 4) -> None:
    """One panel per ``(blob, layer, values)``; values = one sample's blob (C, H, W) or (C,).

    Spatial blobs show their feature maps as a mosaic; fully-connected ones plot their values
    against the unit index (the numbers on the ordinate, as in the paper's Fig. 11).
    """
    n = len(panels)
    cols = min(columns, n)
    rows = math.ceil(n / cols)
    fig = _figure(figsize=(3.3 * cols, 3.0 * rows), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False)
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    for ax, (blob, layer, values) in zip(axes.flat, panels):
        values = np.asarray(values, dtype=np.float32)
        shape = values.shape if values.ndim == 3 else (values.size, 1, 1)
        ax.set_title(panel_title(blob, layer, shape, values), fontsize=8)
        if shape[1] > 1 or shape[2] > 1:
            ax.imshow(mosaic(values.reshape(shape)), cmap="gray", interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
        else:
            flat = values.ravel()
            ax.bar(np.arange(flat.size), flat, width=1.0, color="#1f77b4")
            ax.set_xlim(-0.5, flat.size - 0.5)
            ax.tick_params(labelsize=7)
    if title:
        fig.suptitle(title, fontsize=10)
    _save(fig, path)


def loss_curves(history: Mapping[str, Mapping[str, Sequence[tuple[int, float]]]], path: str | os.PathLike,
                title: str = "Loss", labels: Mapping[str, str] | None = None,
                reference: Mapping[str, Mapping[str, float]] | None = None) -> None:
    """Train/test curves, one axis per loss output.

    ``history``: ``{"train": {output: [(iter, value), ...]}, "test": {...}}``; ``labels``: the
    name to show for an output (e.g. ``"SCE"`` for ``cross_entropy_loss``); ``reference``:
    ``{output: {"train": value, "test": value}}`` drawn as dashed horizontal lines (the paper's
    final losses).
    """
    labels, reference = labels or {}, reference or {}
    outputs = sorted({name for phase in history.values() for name in phase})
    if not outputs:
        raise ValueError("no loss values to plot")
    fig = _figure(figsize=(5.0 * len(outputs), 3.8), layout="constrained")
    axes = fig.subplots(1, len(outputs), squeeze=False)[0]
    colours = {"train": "#1f77b4", "test": "#ff7f0e"}
    for ax, output in zip(axes, outputs):
        for phase, style in (("train", "-"), ("test", "o-")):
            points = history.get(phase, {}).get(output) or []
            if points:
                iters, values = zip(*points)
                ax.plot(iters, values, style, label=phase, markersize=3, color=colours[phase])
        for phase, value in reference.get(output, {}).items():
            ax.axhline(value, linestyle="--", linewidth=1, color=colours.get(phase, "gray"),
                       label=f"paper {phase} (50000 it.) {value:.2f}")
        name = labels.get(output, output)
        ax.set_xlabel("iteration")
        ax.set_ylabel(name if name == output else f"{name} ({output})")
        ax.set_title(name)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(title, fontsize=10)
    _save(fig, path)
