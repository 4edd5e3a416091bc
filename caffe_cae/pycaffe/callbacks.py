"""pycaffe's per-layer callbacks (``Net::add_before_forward`` ...), mixed into
:class:`caffe_cae.net.Net`; kept off the plain forward/backward loops."""
from __future__ import annotations


class LayerCallbacks:
    """``self._layer_callbacks`` is None while there are none (the Net's fast loops check it)."""

    _layer_callbacks: dict[str, list] | None = None

    def before_forward(self, fn) -> None:
        """``fn(layer_index)`` runs before each layer's forward."""
        self._add_layer_callback("before_forward", fn)

    def after_forward(self, fn) -> None:
        """``fn(layer_index)`` runs after each layer's forward."""
        self._add_layer_callback("after_forward", fn)

    def before_backward(self, fn) -> None:
        """``fn(layer_index)`` runs before each layer's backward step (all layers, as Caffe)."""
        self._add_layer_callback("before_backward", fn)

    def after_backward(self, fn) -> None:
        """``fn(layer_index)`` runs after each layer's backward step."""
        self._add_layer_callback("after_backward", fn)

    def _add_layer_callback(self, when: str, fn) -> None:
        if self._layer_callbacks is None:
            self._layer_callbacks = {k: [] for k in ("before_forward", "after_forward",
                                                     "before_backward", "after_backward")}
        self._layer_callbacks[when].append(fn)

    def _with_layer_callbacks(self, kind: str, start: int, end: int) -> float:
        """Run layer by layer with the callbacks around each (kept off the plain loops)."""
        callbacks, self._layer_callbacks = self._layer_callbacks, None
        loss = 0.0
        order = range(start, end + 1) if kind == "forward" else range(start, end - 1, -1)
        try:
            for i in order:
                for fn in callbacks["before_" + kind]:
                    fn(i)
                if kind == "forward":
                    loss += self._forward_from_to(i, i)
                else:
                    self._backward_from_to(i, i)
                for fn in callbacks["after_" + kind]:
                    fn(i)
        finally:
            self._layer_callbacks = callbacks
        return loss

