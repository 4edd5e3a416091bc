"""PyTorch twins of interpreter nets, for the benchmark's "our time / PyTorch time" column.

A twin is built from an instantiated :class:`caffe_cae.Net` (its layers, blob wiring and current
weights), so it has exactly the same architecture and shapes as the net it is compared with,
and starts from the same numbers (the benchmark checks that both compute the same loss).

Layer mapping (only what the papers' nets use; anything else is refused, never skipped):

==========================  ===================================================================
Caffe                       PyTorch (eager, CPU)
==========================  ===================================================================
Input                       the ``data`` tensor fed in
Convolution                 ``F.conv2d`` (weight (C_out, C_in/g, kh, kw), same layout)
Deconvolution               ``F.conv_transpose2d`` (Caffe's (C_in, C_out/g, kh, kw) is torch's)
InnerProduct                ``F.linear`` on the blob flattened from ``axis``
Sigmoid / TanH / ReLU       ``torch.sigmoid`` / ``torch.tanh`` / ``F.relu``
Pooling MAX (+ mask top)    ``F.max_pool2d(ceil_mode=True, return_indices=...)``
Unpooling MAX with mask     ``F.max_unpool2d`` with the pooling indices (switches)
Unpooling MAX, no mask      ``F.max_unpool2d`` with constant top-left-of-window indices
Reshape / Flatten / Split   views
SigmoidCrossEntropyLoss     ``BCE-with-logits(sum) / N`` (Caffe's BATCH_SIZE normalisation)
EuclideanLoss               ``sum((a-b)^2) / 2N``
==========================  ===================================================================

Losses with loss weight 0 run forward only (as in Caffe, nothing backpropagates from them).
The optimiser is ``torch.optim.SGD`` with one parameter group per Caffe parameter, carrying
Caffe's ``base_lr * lr_mult``, ``weight_decay * decay_mult`` and ``momentum``: for the fixed and
step learning rates of these nets that is the same update as Caffe's SGD.

Imported only when PyTorch is installed; the benchmark runs without it and says so.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from caffe_cae.proto import caffe_pb2

P = caffe_pb2.PoolingParameter
U = caffe_pb2.UnpoolingParameter


class TwinError(Exception):
    """The net uses a layer (or a setting) the twin builder does not translate."""


def _pair(values, default):
    values = list(values)
    return (int(values[0]), int(values[0])) if values else (default, default)


def _conv_args(cp):
    if cp.HasField("kernel_h"):
        raise TwinError("kernel_h/kernel_w are not translated")
    k = _pair(cp.kernel_size, 1)
    s = _pair(cp.stride, 1)
    p = _pair(cp.pad, 0)
    d = _pair(cp.dilation, 1)
    return {"stride": s, "padding": p, "dilation": d, "groups": int(cp.group)}, k


class Twin(torch.nn.Module):
    """A PyTorch module running the layers of ``net`` (a caffe_cae Net) in order.

    ``forward(data)`` returns ``(loss to backpropagate, {blob: tensor})``.
    """

    def __init__(self, net):
        super().__init__()
        self.steps = []            # (kind, layer param, bottoms, tops, parameter names)
        self.weights = torch.nn.ParameterDict()
        self.param_specs = []      # (parameter, lr_mult, decay_mult) in Caffe's learnable order
        self.input_names = list(net.inputs)
        self._shapes = {name: tuple(blob.shape) for name, blob in net.blobs.items()}
        self._index_cache: dict = {}
        loss_weights = net.blob_loss_weights
        for layer, bottoms, tops in zip(net.layers, net.bottom_names, net.top_names):
            param = layer.param
            names = []
            for k, blob in enumerate(layer.blobs):
                key = f"{param.name.replace('.', '_')}__{k}"
                self.weights[key] = torch.nn.Parameter(torch.from_numpy(blob.data.copy()))
                names.append(key)
                spec = param.param[k] if k < len(param.param) else None
                lr = spec.lr_mult if spec is not None else 1.0
                decay = spec.decay_mult if spec is not None else 1.0
                self.param_specs.append((self.weights[key], float(lr), float(decay)))
            weight = sum(loss_weights.get(t, 0.0) for t in tops)
            self.steps.append((layer.type, param, list(bottoms), list(tops), names, weight))
        for kind, *_ in self.steps:
            if kind not in _FORWARD:
                raise TwinError(f"layer type {kind!r} has no PyTorch twin")

    def forward(self, data):
        blobs = {self.input_names[0]: data}
        loss = None
        for kind, param, bottoms, tops, names, weight in self.steps:
            if kind in ("Input",):
                continue
            params = [self.weights[n] for n in names]
            inputs = [blobs[b] for b in bottoms]
            if kind in _LOSSES:
                if weight == 0:
                    with torch.no_grad():
                        blobs[tops[0]] = _FORWARD[kind](self, param, inputs, params)[0]
                    continue
                value = _FORWARD[kind](self, param, inputs, params)[0] * weight
                blobs[tops[0]] = value
                loss = value if loss is None else loss + value
                continue
            outputs = _FORWARD[kind](self, param, inputs, params)
            for top, value in zip(tops, outputs):
                blobs[top] = value
        return loss, blobs

    def optimizer(self, solver_param):
        """``torch.optim.SGD`` with Caffe's per-parameter lr / decay multipliers."""
        base_lr = float(solver_param.base_lr)
        decay = float(solver_param.weight_decay)
        groups = [{"params": [p], "lr": base_lr * lr, "weight_decay": decay * dm}
                  for p, lr, dm in self.param_specs if lr != 0]
        return torch.optim.SGD(groups, lr=base_lr, momentum=float(solver_param.momentum))

    # -- helpers used by the layer functions ----------------------------------------------
    def top_left_indices(self, shape, unpooled, stride):
        """max_unpool2d indices sending input (ph, pw) to cell (ph*sh, pw*sw) of its plane."""
        key = (tuple(shape), tuple(unpooled), tuple(stride))
        if key not in self._index_cache:
            n, c, h, w = shape
            rows = torch.arange(h) * stride[0]
            cols = torch.arange(w) * stride[1]
            plane = (rows[:, None] * unpooled[1] + cols[None, :]).to(torch.int64)
            self._index_cache[key] = plane.expand(n, c, h, w).contiguous()
        return self._index_cache[key]


def _conv(twin, param, inputs, params):
    args, _ = _conv_args(param.convolution_param)
    bias = params[1] if len(params) > 1 else None
    return [F.conv2d(inputs[0], params[0], bias, **args)]


def _deconv(twin, param, inputs, params):
    args, _ = _conv_args(param.convolution_param)
    bias = params[1] if len(params) > 1 else None
    return [F.conv_transpose2d(inputs[0], params[0], bias, **args)]


def _inner_product(twin, param, inputs, params):
    ip = param.inner_product_param
    if ip.transpose:
        raise TwinError("InnerProduct transpose is not translated")
    x = inputs[0]
    axis = ip.axis % x.dim()
    x = x.reshape(x.shape[:axis] + (-1,))
    bias = params[1] if len(params) > 1 else None
    return [F.linear(x, params[0], bias)]


def _pooling(twin, param, inputs, params):
    pp = param.pooling_param
    if pp.pool != P.MAX or pp.global_pooling or pp.pad or pp.HasField("kernel_h"):
        raise TwinError("only MAX pooling with square kernel, no pad, is translated")
    k, s = int(pp.kernel_size), int(pp.stride)
    if len(param.top) > 1:
        y, idx = F.max_pool2d(inputs[0], k, s, ceil_mode=True, return_indices=True)
        return [y, idx]
    return [F.max_pool2d(inputs[0], k, s, ceil_mode=True)]


def _unpooling(twin, param, inputs, params):
    up = param.unpooling_param
    if up.unpool != U.MAX or up.HasField("kernel_h"):
        raise TwinError("only MAX unpooling with a square kernel is translated")
    k, s = int(up.kernel_size), int(up.stride)
    size = (int(up.unpool_size),) * 2 if up.HasField("unpool_size") else (int(up.unpool_h), int(up.unpool_w))
    x = inputs[0]
    if len(inputs) > 1:
        idx = inputs[1]
    else:
        if any((n - 1) * s > u - 1 for n, u in zip(x.shape[2:], size)):
            raise TwinError("top-left unpooling with clamped windows is not translated")
        idx = twin.top_left_indices(x.shape, size, (s, s))
    return [F.max_unpool2d(x, idx, k, s, output_size=size)]


def _reshape(twin, param, inputs, params):
    x = inputs[0]
    dims = list(param.reshape_param.shape.dim)
    if param.reshape_param.axis or param.reshape_param.num_axes != -1:
        raise TwinError("Reshape axis/num_axes are not translated")
    shape = [x.shape[i] if d == 0 else int(d) for i, d in enumerate(dims)]
    return [x.reshape(shape)]


def _flatten(twin, param, inputs, params):
    fp = param.flatten_param
    if fp.axis != 1 or fp.end_axis != -1:
        raise TwinError("Flatten axis/end_axis are not translated")
    return [inputs[0].reshape(inputs[0].shape[0], -1)]


def _split(twin, param, inputs, params):
    return [inputs[0]] * len(param.top)


def _sce_loss(twin, param, inputs, params):
    x, t = inputs
    return [F.binary_cross_entropy_with_logits(x, t.reshape(x.shape), reduction="sum") / x.shape[0]]


def _euclidean_loss(twin, param, inputs, params):
    a, b = inputs
    d = a - b.reshape(a.shape)
    return [(d * d).sum() / (2 * a.shape[0])]


_FORWARD = {
    "Input": None,
    "Convolution": _conv,
    "Deconvolution": _deconv,
    "InnerProduct": _inner_product,
    "Sigmoid": lambda t, p, i, w: [torch.sigmoid(i[0])],
    "TanH": lambda t, p, i, w: [torch.tanh(i[0])],
    "ReLU": lambda t, p, i, w: [F.relu(i[0])],
    "Pooling": _pooling,
    "Unpooling": _unpooling,
    "Reshape": _reshape,
    "Flatten": _flatten,
    "Split": _split,
    "SigmoidCrossEntropyLoss": _sce_loss,
    "EuclideanLoss": _euclidean_loss,
}
_LOSSES = {"SigmoidCrossEntropyLoss", "EuclideanLoss"}


def build_twin(net) -> Twin:
    """The PyTorch twin of ``net`` (raises :class:`TwinError` for untranslated layers)."""
    return Twin(net)


def param_count(twin: Twin) -> int:
    return sum(math.prod(p.shape) for p in twin.weights.values())
