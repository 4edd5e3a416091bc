"""``type: "Python"`` layers: a class from ``python_param.module`` run with pycaffe's interface.

A Python layer runs arbitrary code named by the net file, so it is refused unless allowed:
``--allow-python-layers`` on the command line, ``Net(..., allow_python_layers=True)``, or
``with caffe_cae.allow_python_layers(): ...`` around code that builds nets (a solver's).  Then,
as Caffe's ``PythonLayer``:

* the module is imported from ``sys.path`` plus the folder of the net's prototxt (Caffe users
  put that folder on ``PYTHONPATH``); ``import caffe`` inside it gets ``caffe_cae`` when no real
  pycaffe is installed, so ``class ProposalLayer(caffe.Layer)`` works;
* the class ``python_param.layer`` is instantiated with ``param_str`` (also the old
  ``param_str_``), ``phase`` (``str(self.phase)`` is ``"TRAIN"``/``"TEST"``) and ``blobs``
  (``self.blobs.add_blob(*shape)`` for learned parameters);
* ``setup(bottom, top)`` and ``reshape(bottom, top)`` run when the net is built (bottoms are
  zero-filled blobs of the right shapes: no data exists yet, as in Caffe), then every forward is
  ``reshape(bottom, top)`` + ``forward(bottom, top)`` on the net's blobs (``bottom[i].data``,
  ``top[i].reshape(...)``, ``top[i].data[...] = ...``), every backward
  ``backward(top, propagate_down, bottom)``.  A top may change shape in forward; the layers
  after it follow.

An exception from the module's code becomes a one-line error naming the layer (``--debug``
shows the module's traceback).
"""
from __future__ import annotations

import contextlib
import contextvars
import enum
import importlib
import importlib.util
import os
import sys
from dataclasses import dataclass

import numpy as np

from caffe_cae.blob import Blob
from caffe_cae.layers.base import Layer
from caffe_cae.layers.registry import register
from caffe_cae.proto import caffe_pb2


@dataclass(frozen=True)
class PythonLayerPolicy:
    """Whether Python layers may run, and the extra folders their modules are imported from."""

    allowed: bool = False
    folders: tuple[str, ...] = ()


_POLICY: contextvars.ContextVar[PythonLayerPolicy] = contextvars.ContextVar(
    "python_layer_policy", default=PythonLayerPolicy())


@contextlib.contextmanager
def allow_python_layers(allowed: bool | None = True, folder: str | os.PathLike | None = None):
    """Nets built inside may (``True``) or may not (``False``) run Python layers; ``None``
    keeps the surrounding choice.  ``folder`` is added to where their modules are imported from."""
    current = _POLICY.get()
    folders = current.folders + ((os.fspath(folder),) if folder else ())
    token = _POLICY.set(PythonLayerPolicy(current.allowed if allowed is None else bool(allowed), folders))
    try:
        yield
    finally:
        _POLICY.reset(token)


def net_folder(net) -> str | None:
    """The folder of a net given as a path (where its Python layers' modules may sit)."""
    return os.path.dirname(os.path.abspath(net)) if isinstance(net, (str, os.PathLike)) else None


class Phase(enum.IntEnum):
    """pycaffe's phase: an int (``caffe.TRAIN == 0``) that prints as its name."""

    TRAIN = caffe_pb2.TRAIN
    TEST = caffe_pb2.TEST

    def __str__(self) -> str:
        return self.name


class BlobVec(list):
    """pycaffe's ``layer.blobs``: a list of blobs with ``add_blob(*shape)``."""

    def add_blob(self, *shape) -> None:
        self.append(Blob(tuple(int(d) for d in shape), np.float32, f"blob{len(self)}"))


class PythonLayerBase:
    """pycaffe's ``caffe.Layer``, the base class of Python layers (``caffe_cae.Layer``)."""

    param_str: str = ""
    phase: Phase = Phase.TEST
    blobs: BlobVec

    def __init__(self, param=None):  # pycaffe calls the class with the LayerParameter
        pass

    @property
    def param_str_(self) -> str:  # the attribute's name in pycaffe before 2015 (py-faster-rcnn)
        return self.param_str

    def setup(self, bottom, top) -> None:
        pass

    def reshape(self, bottom, top) -> None:
        pass


def _caffe_alias() -> None:
    """Let the module's ``import caffe`` find caffe_cae when pycaffe itself is not installed."""
    if "caffe" not in sys.modules and importlib.util.find_spec("caffe") is None:
        import caffe_cae

        sys.modules["caffe"] = caffe_cae


@register("Python")
class PythonLayer(Layer):
    """A layer written in Python (see the module docstring)."""

    def __init__(self, param, phase=caffe_pb2.TEST):
        super().__init__(param, phase)
        pp = param.python_param
        self.qualified = f"{pp.module}.{pp.layer}"
        policy = _POLICY.get()
        if not policy.allowed:
            raise self.error(
                f"Python layers run arbitrary code (here {self.qualified}) and are refused by "
                f"default; if you trust this net, pass --allow-python-layers (command line) or "
                f"Net(..., allow_python_layers=True)")
        if not pp.module or not pp.layer:
            raise self.error("python_param needs module and layer (the class name)")
        self.is_data = not param.bottom  # a Python data layer feeds the net from outside
        self.impl = self._instantiate(pp, policy.folders)

    def _instantiate(self, pp, folders):
        _caffe_alias()
        saved = list(sys.path)
        sys.path[:0] = [f for f in folders if f not in sys.path]
        try:
            module = importlib.import_module(pp.module)
        except Exception as err:
            where = ", ".join(folders) if folders else "sys.path"
            raise self.error(f"cannot import module '{pp.module}' (searched sys.path and {where}): "
                             f"{type(err).__name__}: {err}") from err
        finally:
            sys.path[:] = saved
        cls = getattr(module, pp.layer, None)
        if not isinstance(cls, type):
            raise self.error(f"module '{pp.module}' ({getattr(module, '__file__', '?')}) has no class "
                             f"'{pp.layer}'")
        try:
            impl = cls.__new__(cls)
            impl.param_str = pp.param_str
            impl.phase = Phase(self.phase)
            impl.blobs = BlobVec()
            if cls.__init__ is not object.__init__:
                impl.__init__(self.param)
        except Exception as err:
            raise self.error(f"{self.qualified}(): {type(err).__name__}: {err}") from err
        return impl

    def _call(self, method: str, *args):
        function = getattr(self.impl, method, None)
        if function is None:
            raise self.error(f"{self.qualified} has no method {method}()")
        try:
            return function(*args)
        except Exception as err:
            raise self.error(f"{self.qualified}.{method}() raised {type(err).__name__}: {err}") from err

    @staticmethod
    def _zeros(shapes) -> list[Blob]:
        return [Blob(tuple(s), np.float32, f"bottom{i}") for i, s in enumerate(shapes)]

    def setup(self, bottom_shapes):
        self._bottoms = self._zeros(bottom_shapes)
        self._tops = [Blob((), np.float32, name) for name in self.param.top]
        self._call("setup", self._bottoms, self._tops)
        self._shaped_for = [tuple(s) for s in bottom_shapes]
        self._call("reshape", self._bottoms, self._tops)
        self._initial = [blob.data.copy() for blob in self.impl.blobs]
        return [blob.shape for blob in self.impl.blobs]

    def reshape(self, bottom_shapes):
        shapes = [tuple(s) for s in bottom_shapes]
        if shapes != self._shaped_for:
            self._bottoms = self._zeros(shapes)
            self._shaped_for = shapes
            self._call("reshape", self._bottoms, self._tops)
        return [blob.shape for blob in self._tops]

    def fill_params(self, rng):
        for blob, initial in zip(self.blobs, self._initial):
            blob.data[...] = initial

    def _bind_params(self) -> None:
        """The module's ``self.blobs`` are the net's parameter blobs (loaded weights included)."""
        if len(self.impl.blobs) != len(self.blobs) or any(a is not b for a, b in zip(self.impl.blobs, self.blobs)):
            self.impl.blobs = BlobVec(self.blobs)

    def forward(self, bottom, top):
        self._bind_params()
        self._call("reshape", bottom, top)  # Layer::Forward reshapes first
        self._call("forward", bottom, top)

    def backward(self, top, propagate_down, bottom):
        self._bind_params()
        self._call("backward", top, list(propagate_down), bottom)
