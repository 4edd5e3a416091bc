"""``caffe-cae layers``: the layer types the interpreter runs and what an ONNX export makes of each.

``--markdown`` prints the README's supported-layer list (the README is checked against it).
"""
from __future__ import annotations

import argparse
from dataclasses import dataclass


@dataclass(frozen=True)
class LayerSupport:
    type: str
    onnx: str      # "converted", "input", "left out" or "refused"
    reason: str = ""


def layer_support() -> list[LayerSupport]:
    """Every registered layer type, sorted, with its ONNX treatment."""
    from caffe_cae.layers import LAYERS
    from caffe_cae.onnx import export  # noqa: F401 (registers every converter)
    from caffe_cae.onnx.converters import CONVERTERS, UNEXPORTABLE

    rows = []
    for name, cls in sorted(LAYERS.items(), key=lambda item: item[0].lower()):
        if name in UNEXPORTABLE:
            rows.append(LayerSupport(name, "refused", UNEXPORTABLE[name].reason))
        elif cls.is_data:
            rows.append(LayerSupport(name, "input"))
        elif cls.is_loss or cls.is_metric:
            rows.append(LayerSupport(name, "left out"))
        elif name in CONVERTERS:
            rows.append(LayerSupport(name, "converted"))
        else:
            rows.append(LayerSupport(name, "refused", "no converter"))
    return rows


def markdown(rows: list[LayerSupport]) -> str:
    """The README's list: one line per ONNX treatment."""
    groups = [
        ("converted", "exported to ONNX"),
        ("input", "data layers (graph inputs of an export)"),
        ("left out", "losses and metrics (left out of an export)"),
        ("refused", "refused by the export"),
    ]
    lines = [f"{len(rows)} layer types:", ""]
    for kind, title in groups:
        members = [r for r in rows if r.onnx == kind]
        if not members:
            continue
        if kind == "refused":
            names = "; ".join(f"{r.type} ({r.reason})" for r in members)
        else:
            names = ", ".join(r.type for r in members)
        lines.append(f"- {title} ({len(members)}): {names}")
    return "\n".join(lines) + "\n"


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "layers", help="list the supported layer types and their ONNX export",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--markdown", action="store_true", help="print the README's list")
    parser.set_defaults(func=run)


def run(args) -> int:
    rows = layer_support()
    if args.markdown:
        print(markdown(rows), end="")
        return 0
    width = max(len(r.type) for r in rows)
    for row in rows:
        print(f"{row.type.ljust(width)}  {row.onnx}" + (f": {row.reason}" if row.reason else ""))
    return 0
