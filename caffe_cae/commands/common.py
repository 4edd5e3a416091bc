"""Arguments shared by several commands (not a command itself)."""
from __future__ import annotations

from caffe_cae.errors import CaffeCaeError


def add_threads_argument(parser, default: int | None, why: str = "") -> None:
    """``--threads N``: threads for the interpreter and the BLAS/OpenMP libraries (0 = defaults).

    Use with ``caffe_cae.parallel.limit_threads(args.threads)`` around the command's work.
    """
    if default:
        shown = f"default {default}{'; ' + why if why else ''}; 0 = the libraries' defaults"
    else:
        shown = "default: the libraries' own, i.e. every core"
    parser.add_argument("--threads", type=int, default=default, metavar="N",
                        help=f"threads for the interpreter and BLAS/OpenMP ({shown})")


def add_input_shape_argument(parser) -> None:
    """``--input-shape BLOB=C,H,W`` (repeatable): per-sample shapes of data tops."""
    parser.add_argument("--input-shape", action="append", default=[], metavar="BLOB=C,H,W",
                        help="per-sample shape of a data/Input top (repeatable), e.g. data=1,28,28; "
                             "needed where the data is not at hand and the layer does not fix it")


def parse_input_shape(text: str) -> tuple[str, tuple[int, ...]]:
    """``data=1,28,28`` -> ("data", (1, 28, 28)); ``sim=`` is a per-sample scalar."""
    name, sep, dims = text.partition("=")
    try:
        if not sep or not name:
            raise ValueError
        shape = tuple(int(d) for d in dims.replace("x", ",").split(",") if d.strip())
        if any(d < 1 for d in shape):
            raise ValueError
    except ValueError:
        raise CaffeCaeError(f"--input-shape {text!r}: expected BLOB=C,H,W with positive sizes") from None
    return name, shape


def input_shapes(args) -> dict[str, tuple[int, ...]]:
    """The ``--input-shape`` arguments as {blob: per-sample shape}."""
    return dict(parse_input_shape(text) for text in args.input_shape)


def add_python_layers_argument(parser) -> None:
    """``--allow-python-layers``: run the net's ``type: "Python"`` layers (``caffe_cae.cli``
    applies it around the whole command)."""
    parser.add_argument("--allow-python-layers", action="store_true",
                        help='run the net\'s type: "Python" layers: they import and run the module '
                             "python_param names (from sys.path and the prototxt's folder), i.e. "
                             "arbitrary code, so they are refused without this flag")
