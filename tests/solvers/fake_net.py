"""A NumPy stand-in for the golden solver cases' tiny net, so the solver's arithmetic is tested
on its own (the real ``caffe_cae.net.Net`` is exercised by test_golden_solver.py).

Net: HDF5 rows (sequential, wrapping) -> InnerProduct 12 -> Sigmoid -> InnerProduct 36 ->
EuclideanLoss against the flattened input; the solver only sees the pycaffe-like surface
(learnable_params, params_lr, params_weight_decay, forward_backward, to_proto, copy_from).
"""
from __future__ import annotations

from collections import OrderedDict

import h5py
import numpy as np

from caffe_cae import prototxt, weights
from caffe_cae.blob import Blob
from caffe_cae.proto import caffe_pb2

PARAM_LAYERS = ("ip1", "ip2")


class TinyAutoencoderNet:
    name = "solver_net"

    def __init__(self, case_dir, batch_size=16):
        net_param = prototxt.read_net_text(str(case_dir / "net.prototxt"))
        with h5py.File(case_dir / "data.h5", "r") as handle:
            self.dataset = np.asarray(handle["data"], np.float32).reshape(64, -1)
        self.batch_size = batch_size
        self.cursor = 0
        init = weights.read_weights(case_dir / "init.caffemodel")
        self.params = OrderedDict()
        self.params_lr, self.params_weight_decay = [], []
        for layer in net_param.layer:
            if layer.name not in PARAM_LAYERS:
                continue
            blobs = []
            for i, array in enumerate(init[layer.name]):
                blob = Blob(array.shape, name=f"{layer.name}/{i}")
                blob.data[...] = array
                blobs.append(blob)
                spec = layer.param[i] if i < len(layer.param) else caffe_pb2.ParamSpec()
                self.params_lr.append(spec.lr_mult)
                self.params_weight_decay.append(spec.decay_mult)
            self.params[layer.name] = blobs
        self.learnable_params = [b for blobs in self.params.values() for b in blobs]
        self.outputs = ["loss"]
        self.blob_loss_weights = {"loss": 1.0}
        self.blobs = {"loss": Blob(())}
        self.rows = []

    def _forward(self):
        n = self.batch_size
        rows = np.arange(self.cursor, self.cursor + n) % len(self.dataset)
        self.rows.append(rows)
        self.cursor = (self.cursor + n) % len(self.dataset)
        x = self.dataset[rows]
        (w1, b1), (w2, b2) = self.params["ip1"], self.params["ip2"]
        s = 0.5 * np.tanh(0.5 * (x @ w1.data.T + b1.data)) + 0.5
        y = s @ w2.data.T + b2.data
        d = y - x
        loss = np.float32(np.sum(d * d) / np.float32(2 * n))
        self.blobs["loss"].data[...] = loss
        return x, s, y, float(loss)

    def forward_loss(self) -> float:
        return self._forward()[-1]

    def forward_backward(self) -> float:
        x, s, y, loss = self._forward()
        (w1, b1), (w2, b2) = self.params["ip1"], self.params["ip2"]
        dy = (y - x) / np.float32(self.batch_size)
        dh = (dy @ w2.data) * s * (1 - s)
        # Caffe computes no gradient for a param with lr_mult 0.
        lr = dict(zip(map(id, self.learnable_params), self.params_lr))
        for blob, grad in ((w2, lambda: dy.T @ s), (b2, lambda: dy.sum(0)),
                           (w1, lambda: dh.T @ x), (b1, lambda: dh.sum(0))):
            if lr[id(blob)]:
                blob.diff += grad()
        return loss

    def to_proto(self, write_diff=False):
        net = caffe_pb2.NetParameter(name=self.name)
        for name, blobs in self.params.items():
            layer = net.layer.add(name=name, type="InnerProduct")
            for b in blobs:
                layer.blobs.append(weights.array_to_blob(b.data, b.diff if write_diff else None))
        return net

    def copy_from(self, path):
        for name, arrays in weights.read_weights(path).items():
            if name in self.params:
                for blob, array in zip(self.params[name], arrays):
                    blob.data[...] = array.reshape(blob.data.shape)

    def save_hdf5(self, path, write_diff=False):
        data = OrderedDict((n, [b.data for b in bl]) for n, bl in self.params.items())
        diff = OrderedDict((n, [b.diff for b in bl]) for n, bl in self.params.items()) if write_diff else None
        weights.write_weights_hdf5(path, data, diff)
