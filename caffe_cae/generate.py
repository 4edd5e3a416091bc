"""Render the papers' nets and solvers from ``templates/`` (the ``gen`` command's engine).

    >>> from caffe_cae import generate
    >>> text = generate.net_text("model4", dim=10)             # train/test net, current syntax
    >>> text = generate.net_text("model3", syntax="legacy")    # V1 layers for Noh's Caffe fork
    >>> text = generate.solver_text("model4", net="model4.prototxt")

Every rendered text is parsed back with our schema before it is returned, so a template error
surfaces here and not in Caffe.  The templates ship inside the package (``caffe_cae/templates``
links to the top-level ``templates/`` folder).
"""
from __future__ import annotations

import functools
import importlib.resources
import pathlib
import shlex

import jinja2

from caffe_cae import prototxt, zoo
from caffe_cae.errors import CaffeCaeError
from caffe_cae.proto import caffe_pb2


class _TemplateError(Exception):
    """Raised by the templates' ``fail()``; re-raised as CaffeCaeError with the model's name."""


def _fail(message: str):
    raise _TemplateError(message)


def _template_dir() -> pathlib.Path:
    packaged = importlib.resources.files("caffe_cae") / "templates"
    if packaged.is_dir():
        return pathlib.Path(str(packaged))
    # A checkout whose caffe_cae/templates link was lost (e.g. no symlinks on this file system).
    return pathlib.Path(__file__).resolve().parent.parent / "templates"


@functools.lru_cache(maxsize=1)
def environment() -> jinja2.Environment:
    """The Jinja environment: strict undefined names, Caffe's float printing as ``|num``, string
    literals as ``|quoted``."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(_template_dir())),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        autoescape=False,
    )
    env.filters["num"] = lambda value: prototxt.format_float(float(value))
    # A user-given string (paths) as a C-escaped, double-quoted literal, as TextFormat prints it.
    env.filters["quoted"] = lambda value: '"' + prototxt._escape(str(value).encode("utf-8")) + '"'
    env.globals["fail"] = _fail
    return env


def render(template: str, context: dict) -> str:
    """Render one template with ``context`` (a dict from :mod:`caffe_cae.zoo`)."""
    try:
        return environment().get_template(template).render(**context)
    except _TemplateError as err:
        raise CaffeCaeError(f"model {context.get('model')!r}: {err}") from None


def _command(model: str, opts: zoo.Options, extra: dict | None = None) -> str:
    """The ``caffe-cae gen`` command line that writes the same text (for the file's header)."""
    words = ["caffe-cae", "gen", model, "--dim", str(opts.dim), "--syntax", opts.syntax]
    options = {"--batch": opts.batch, "--train-source": opts.train_source,
               "--test-source": opts.test_source, **(extra or {})}
    for flag, value in options.items():
        if value is True:
            words.append(flag)
        elif value not in (None, False):
            words += [flag, str(value)]
    if opts.deploy:
        words.append("--deploy")
    return " ".join(shlex.quote(w) for w in words).replace("\n", "\\n")  # one comment line


def _check(text: str, message_type, what: str):
    try:
        return prototxt.parse_text(text, message_type, source=what)
    except CaffeCaeError as err:  # pragma: no cover - a template bug, not a user error
        raise AssertionError(f"generated text does not parse: {err}\n{text}") from None


def net_text(model: str, dim: int = 2, syntax: str = "new", batch: int | None = None,
             train_source: str | None = None, test_source: str | None = None,
             deploy: bool = False, header: bool = True) -> str:
    """The prototxt of ``model`` (a name of :data:`caffe_cae.zoo.MODELS`), after two comment
    lines (the equivalent ``caffe-cae gen`` command and the model) unless ``header`` is False.

    ``dim``: code size N; ``syntax``: "new" (``layer {}``) or "legacy" (V1 ``layers {}`` as Noh's
    fork reads them); ``batch``: batch size (default 100, deploy 1); ``train_source`` /
    ``test_source``: HDF5 list files; ``deploy``: an ``Input`` layer ``data`` (legacy: ``input:``
    fields) instead of the data layers, and no losses.
    """
    opts = zoo.Options(dim=dim, syntax=syntax, batch=batch, train_source=train_source,
                       test_source=test_source, deploy=deploy)
    context = zoo.net_context(model, opts)
    context["header"] = [_command(model, opts), context["description"]] if header else []
    text = render(context["template"], context)
    _check(text, caffe_pb2.NetParameter, f"<{model}>")
    return text


def net_param(model: str, **options) -> caffe_pb2.NetParameter:
    """:func:`net_text` parsed into a NetParameter."""
    return prototxt.parse_text(net_text(model, header=False, **options), caffe_pb2.NetParameter)


def solver_text(model: str, net: str | None = None, dim: int = 2, syntax: str = "new",
                batch: int | None = None, snapshot_prefix: str | None = None,
                solver_mode: str = "CPU", random_seed: int | None = None, header: bool = True) -> str:
    """The solver prototxt of ``model``: the papers' SGD for the CAEs, Caffe's own for the deep
    auto-encoder and the Siamese net.  ``net`` is the net file it trains (default
    ``<model>.prototxt``), ``snapshot_prefix`` defaults to ``<model>``; ``syntax`` "legacy" leaves
    out the ``type`` field that Noh's fork does not know (it is SGD there by default).
    """
    if solver_mode not in ("CPU", "GPU"):
        raise CaffeCaeError(f"--solver-mode must be CPU or GPU, got {solver_mode!r}")
    opts = zoo.Options(dim=dim, syntax=syntax, batch=batch)
    extra = {"--solver": True, "--net": net, "--snapshot-prefix": snapshot_prefix,
             "--solver-mode": solver_mode if solver_mode != "CPU" else None, "--seed": random_seed}
    net = net if net is not None else f"{model}.prototxt"
    prefix = snapshot_prefix if snapshot_prefix is not None else model
    context = zoo.solver_context(model, opts, net=net, snapshot_prefix=prefix,
                                 solver_mode=solver_mode, random_seed=random_seed)
    context["header"] = [_command(model, opts, extra), f"solver of: {context['description']}"] if header else []
    text = render(context["template"], context)
    _check(text, caffe_pb2.SolverParameter, f"<{model} solver>")
    return text


def solver_param(model: str, **options) -> caffe_pb2.SolverParameter:
    """:func:`solver_text` parsed into a SolverParameter."""
    return prototxt.parse_text(solver_text(model, header=False, **options), caffe_pb2.SolverParameter)
