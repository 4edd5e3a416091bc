"""The whole Net's backward is the gradient of its loss (float64 finite differences), through a
Split, an in-place layer, a loss weight on a non-loss layer and a parameter shared by two layers."""
import numpy as np

import caffe_cae
from caffe_cae.proto import caffe_pb2
from caffe_cae.prototxt import parse_text

TEXT = """
force_backward: true
layer { name: "pair" type: "Input" top: "pair" input_param { shape { dim: 2 dim: 4 dim: 4 dim: 4 } } }
layer { name: "slice" type: "Slice" bottom: "pair" top: "a" top: "b" slice_param { axis: 1 } }
layer { name: "conv_a" type: "Convolution" bottom: "a" top: "ca" param { name: "w" } param { name: "bias" }
        convolution_param { num_output: 3 kernel_size: 3 weight_filler { type: "gaussian" std: 0.5 }
                            bias_filler { type: "gaussian" std: 0.5 } } }
layer { name: "sig_a" type: "Sigmoid" bottom: "ca" top: "ca" }
layer { name: "conv_b" type: "Convolution" bottom: "b" top: "cb" param { name: "w" } param { name: "bias" }
        convolution_param { num_output: 3 kernel_size: 3 weight_filler { type: "gaussian" std: 0.5 }
                            bias_filler { type: "gaussian" std: 0.5 } } }
layer { name: "loss" type: "EuclideanLoss" bottom: "ca" bottom: "cb" top: "loss" loss_weight: 3 }
layer { name: "sq" type: "Power" bottom: "pair" top: "sq" power_param { power: 2 } loss_weight: 0.1 }
"""


def test_backward_is_the_gradient_of_the_loss():
    net = caffe_cae.Net(parse_text(TEXT, caffe_pb2.NetParameter), dtype=np.float64, seed=7)
    assert "pair_pair_0_split" in net.layer_names
    x = np.random.default_rng(2).standard_normal((2, 4, 4, 4))
    net.blobs["pair"].data[...] = x
    net.forward_loss()
    net.clear_param_diffs()
    net.backward()
    analytic = {"pair": net.blobs["pair"].diff.copy(), "w": net.params["conv_a"][0].diff.copy(),
                "bias": net.params["conv_b"][1].diff.copy()}
    targets = {"pair": net.blobs["pair"].data, "w": net.params["conv_a"][0].data,
               "bias": net.params["conv_a"][1].data}
    rng = np.random.default_rng(0)
    eps = 1e-6
    for name, array in targets.items():
        for flat in rng.choice(array.size, size=min(6, array.size), replace=False):
            index = np.unravel_index(flat, array.shape)
            original = array[index]
            array[index] = original + eps
            plus = net.forward_loss()
            array[index] = original - eps
            minus = net.forward_loss()
            array[index] = original
            numeric = (plus - minus) / (2 * eps)
            assert abs(numeric - analytic[name][index]) <= 1e-6 + 1e-5 * abs(numeric), (name, index)
