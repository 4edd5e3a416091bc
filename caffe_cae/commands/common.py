"""Arguments shared by several commands (not a command itself)."""
from __future__ import annotations


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


def add_python_layers_argument(parser) -> None:
    """``--allow-python-layers``: run the net's ``type: "Python"`` layers (``caffe_cae.cli``
    applies it around the whole command)."""
    parser.add_argument("--allow-python-layers", action="store_true",
                        help='run the net\'s type: "Python" layers: they import and run the module '
                             "python_param names (from sys.path and the prototxt's folder), i.e. "
                             "arbitrary code, so they are refused without this flag")
