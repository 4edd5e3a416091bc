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
