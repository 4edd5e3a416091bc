"""The net's seed drives every random layer, not only the fillers (Dropout masks here)."""
import numpy as np

from caffe_cae import Net, TRAIN
from caffe_cae.prototxt import parse_text
from caffe_cae.proto import caffe_pb2

NET = """
layer { name: "x" type: "Input" top: "x" input_param { shape { dim: 4 dim: 50 } } }
layer { name: "drop" type: "Dropout" bottom: "x" top: "y" dropout_param { dropout_ratio: 0.5 } }
"""


def _mask(seed):
    net = Net(parse_text(NET, caffe_pb2.NetParameter), phase=TRAIN, seed=seed)
    return net.forward(x=np.ones((4, 50), np.float32))["y"]


def test_dropout_mask_follows_the_net_seed():
    np.testing.assert_array_equal(_mask(1), _mask(1))
    assert not np.array_equal(_mask(1), _mask(2))
