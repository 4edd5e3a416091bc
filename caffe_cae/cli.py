"""The ``caffe-cae`` command line: one sub-command per module in ``caffe_cae.commands``.

Each command module defines ``register(subparsers)``, which adds its parser and sets
``func(args) -> int``.  Exit statuses: 0 done; 1 a user error (:class:`CaffeCaeError`: one line
on stderr that names the file, layer or blob; ``--debug`` shows the traceback instead), 2 for bad
arguments (and unparsable files in ``migrate``, as Caffe's tools); 70 an internal error (a bug:
one line and how to report it); 71 out of memory; 130 interrupted (Ctrl-C).

Caffe's spellings work too: single-dash flags (``-solver``, ``-weights``, ``-model``,
``-iterations``, ``-snapshot``, also ``-flag=value``), and ``-gpu``/``--gpu`` (ignored with a
notice: the interpreter runs on the CPU).  The global options (``--debug``, ``-q``,
``--log-format``) may stand anywhere on the line.

Only the standard library is imported before ``main`` runs, so a Ctrl-C during start-up is one
line as well.
"""
from __future__ import annotations

import sys

from caffe_cae import __version__
from caffe_cae.errors import CaffeCaeError

# Order = order in --help.  Each name is a module in caffe_cae.commands.
COMMANDS = [
    "show",
    "migrate",
    "gen",
    "params",
    "layers",
    "data",
    "convert_imageset",
    "compute_image_mean",
    "encode",
    "evaluate",
    "reproduce",
    "train",
    "test",
    "timing",
    "export",
    "infer",
]

EXIT_USER, EXIT_USAGE, EXIT_INTERNAL, EXIT_MEMORY, EXIT_INTERRUPTED = 1, 2, 70, 71, 130
REPORT = ("this is a bug in caffe-cae, not a problem with your input; please report it with the command "
          "line, the input files if you can share them, and the output of the same command with --debug")
#: options of the main parser that may also follow the command: {flag: takes a value}
GLOBAL_OPTIONS = {"--debug": False, "-q": False, "--quiet": False, "--log-format": True}
#: commands whose log is in glog's format unless --log-format says otherwise
GLOG_BY_DEFAULT = {"train"}


def build_parser() -> argparse.ArgumentParser:
    import argparse
    import importlib

    from caffe_cae.logformat import FORMATS

    parser = argparse.ArgumentParser(
        prog="caffe-cae",
        description="Caffe nets and the convolutional auto-encoders of Turchenko et al. "
        "without a Caffe build.",
    )
    parser.add_argument("--version", action="version", version=f"caffe-cae {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks for errors")
    parser.add_argument("-q", "--quiet", action="store_true", help="only warnings and errors in the log")
    parser.add_argument("--log-format", choices=FORMATS, default=None,
                        help="plain messages, or glog's 'I1207 hh:mm:ss.uuuuuu pid file:line] ' prefix that "
                             "Caffe's tools/extra/parse_log.py reads (default: glog for train, else plain)")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"caffe_cae.commands.{name}").register(subparsers)
    return parser


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    import argparse

    for action in parser._actions:  # argparse keeps the sub-command table in its action
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _long_options(parser: argparse.ArgumentParser) -> set[str]:
    return {option for action in parser._actions for option in action.option_strings if option.startswith("--")}


def normalize_argv(argv: list[str], parser: argparse.ArgumentParser) -> tuple[list[str], list[str]]:
    """Caffe's spellings to ours: ``(argv, notices)``.

    Global options after the command move before it; ``-flag`` / ``-flag=v`` become ``--flag``
    when the command (or the main parser) has ``--flag``; ``-gpu X`` / ``--gpu X`` are dropped
    with a notice."""
    commands = _subparsers(parser)
    command = None
    head, out, notices, i = [], [], [], 0
    while i < len(argv):
        token = argv[i]
        if token == "--" and command is not None:
            out += argv[i:]
            break
        if command is None and token in commands:
            command = token
            i += 1
            continue
        name, eq, value = token.partition("=")
        known = _long_options(parser) | (_long_options(commands[command]) if command else set())
        if name.startswith("-") and not name.startswith("--") and len(name) > 2 and "--" + name[1:] in known:
            name = "--" + name[1:]  # gflags' -solver
        has_next = i + 1 < len(argv)
        if name in ("-gpu", "--gpu"):
            shown = value if eq else (argv[i + 1] if has_next else "")
            notices.append(f"{name} {shown} ignored: the interpreter runs on the CPU (for a GPU, export to ONNX "
                           f"and run `caffe-cae infer`)")
            i += 1 if eq or not has_next else 2
            continue
        if name in GLOBAL_OPTIONS:
            if GLOBAL_OPTIONS[name] and not eq and has_next:
                head += [name, argv[i + 1]]
                i += 2
                continue
            head.append(name + (eq + value if eq else ""))
            i += 1
            continue
        (out if command else head).append(name + (eq + value if eq else ""))
        i += 1
    return head + ([command] if command else []) + out, notices


def main(argv: list[str] | None = None) -> int:
    """Run one command; returns the exit status (Ctrl-C anywhere: one line, 130)."""
    command, debug, log_format = "", False, "plain"
    try:
        parser = build_parser()
        args_list, notices = normalize_argv(list(sys.argv[1:] if argv is None else argv), parser)
        args = parser.parse_args(args_list)
        command, debug = args.command or "", args.debug
        if not getattr(args, "func", None):
            parser.print_help(sys.stderr)
            return EXIT_USAGE
        from caffe_cae.logformat import configure

        log_format = args.log_format or ("glog" if command in GLOG_BY_DEFAULT else "plain")
        configure(log_format, args.quiet)
        import logging

        for notice in notices:
            logging.getLogger("caffe_cae.cli").warning("caffe-cae %s: %s", command, notice)
        return _run(args, log_format)
    except KeyboardInterrupt:
        _error(command, "interrupted", log_format, kind="")
        return EXIT_INTERRUPTED
    except CaffeCaeError as err:  # before the command runs (_run reports the command's own)
        if debug:
            raise
        _error(command, _one_line(err), log_format)
        return getattr(err, "exit_status", EXIT_USER)
    except BrokenPipeError:
        return 0
    except MemoryError as err:
        if debug:
            raise
        _error(command, f"out of memory{': ' + str(err) if str(err) else ''}", log_format)
        return EXIT_MEMORY
    except Exception as err:  # noqa: BLE001 - a bug: one line, a distinct status, how to report it
        if debug:
            raise
        _error(command, f"{type(err).__name__}: {_one_line(err)}; {REPORT}", log_format, kind="internal error")
        return EXIT_INTERNAL


def _run(args, log_format: str) -> int:
    from caffe_cae.parallel import limit_threads

    try:
        from caffe_cae import engine

        engine.current()  # a bad CAFFE_CAE_ENGINE is this command's one-line error
        if (getattr(args, "threads", None) or 0) < 0:
            raise CaffeCaeError(f"--threads must be 0 (the libraries' defaults) or more (got {args.threads})")
        from caffe_cae.layers.python_layer import allow_python_layers

        python_layers = True if getattr(args, "allow_python_layers", False) else None
        with limit_threads(getattr(args, "threads", None)), allow_python_layers(python_layers):
            return int(args.func(args) or 0)
    except CaffeCaeError as err:
        if args.debug:
            raise
        _error(args.command, _one_line(err), log_format)
        return getattr(err, "exit_status", EXIT_USER)  # e.g. migrate: 2 = unparsable input, as Caffe's tools


def _one_line(err: BaseException) -> str:
    return " ".join(part.strip() for part in str(err).splitlines() if part.strip())  # e.g. HDF5's


def _error(command: str, text: str, log_format: str, kind: str = "error") -> None:
    from caffe_cae.logformat import error_line

    name = f"caffe-cae {command}" if command else "caffe-cae"
    line = f"{name}: {kind}: {text}" if kind else f"{name}: {text}"
    line = error_line(line, log_format)
    encoding = getattr(sys.stderr, "encoding", None) or "utf-8"
    line = line.encode(encoding, "backslashreplace").decode(encoding)  # undecodable file names
    try:
        sys.stderr.flush()
        print(line, file=sys.stderr)
    except (OSError, ValueError):  # stderr closed
        pass
