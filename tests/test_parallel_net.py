"""The thread splits of caffe_cae.parallel give the single-thread results (forward, blob diffs
and parameter gradients) to float rounding on a net big enough to be split, and are
deterministic; the reference engine agrees too."""
import numpy as np
import pytest

import caffe_cae
from caffe_cae import engine, parallel
from caffe_cae.proto import caffe_pb2
from caffe_cae.prototxt import parse_text
from caffe_cae.testing import assert_rounding_close

pytestmark = pytest.mark.usefixtures("fast_engine")

NET = """
name: "parallel_review" force_backward: true
layer { name: "in" type: "Input" top: "data" top: "tgt" top: "lab" input_param { shape { dim: 16 dim: 3 dim: 40 dim: 40 } shape { dim: 16 dim: 3 dim: 43 dim: 43 } shape { dim: 16 } } }
layer { name: "c1" type: "Convolution" bottom: "data" top: "c1" convolution_param { num_output: 16 kernel_size: 5 pad: 2 weight_filler { type: "gaussian" std: 0.1 } bias_filler { type: "gaussian" std: 0.3 } } }
layer { name: "r1" type: "Sigmoid" bottom: "c1" top: "c1" }
layer { name: "p1" type: "Pooling" bottom: "c1" top: "p1" top: "mask" pooling_param { pool: MAX kernel_size: 3 stride: 2 } }
layer { name: "u1" type: "Unpooling" bottom: "p1" bottom: "mask" top: "u1" unpooling_param { unpool: MAX kernel_size: 3 stride: 2 unpool_size: 40 } }
layer { name: "pa" type: "Pooling" bottom: "u1" top: "pa" pooling_param { pool: AVE kernel_size: 3 stride: 2 pad: 1 } }
layer { name: "u2" type: "Unpooling" bottom: "pa" top: "u2" unpooling_param { unpool: AVE kernel_size: 3 stride: 2 unpool_size: 43 } }
layer { name: "d1" type: "Deconvolution" bottom: "u2" top: "d1" convolution_param { num_output: 3 kernel_size: 5 pad: 2 weight_filler { type: "gaussian" std: 0.1 } bias_filler { type: "gaussian" std: 0.3 } } }
layer { name: "t" type: "TanH" bottom: "d1" top: "d1" }
layer { name: "ip" type: "InnerProduct" bottom: "d1" top: "ip" inner_product_param { num_output: 10 weight_filler { type: "gaussian" std: 0.05 } } }
layer { name: "loss" type: "EuclideanLoss" bottom: "d1" bottom: "tgt" top: "loss" }
layer { name: "l2" type: "SoftmaxWithLoss" bottom: "ip" bottom: "lab" top: "l2" }
"""


def _run(threads):
    previous = parallel.threads()
    parallel.set_threads(threads)
    try:
        net = caffe_cae.Net(parse_text(NET, caffe_pb2.NetParameter, "review"), phase=caffe_cae.TRAIN, seed=5)
        net.blobs["data"].data[...] = np.random.default_rng(0).random((16, 3, 40, 40))
        net.blobs["tgt"].data[...] = 0.3
        net.blobs["lab"].data[...] = np.arange(16) % 10
        loss = net.forward_backward()
    finally:
        parallel.set_threads(previous)
    blobs = {k: (b.data.copy(), b.diff.copy()) for k, b in net.blobs.items()}
    grads = {k: [p.diff.copy() for p in v] for k, v in net.params.items()}
    return loss, blobs, grads


#: Sums along the longest chain (a scale for the rounding bound): forward c1 (3 x 25), d1
#: (16 x 25), ip (3 x 43 x 43) and back again, then c1's weight gradient (16 images x 1600
#: positions); the loss adds its 16 x 3 x 43 x 43 terms.
CHAIN = 2 * (75 + 400 + 5547)
TERMS = CHAIN + 16 * 1600


def assert_same_to_rounding(run, expected):
    loss, blobs, grads = run
    loss1, blobs1, grads1 = expected
    assert_rounding_close(loss, loss1, terms=CHAIN + 16 * 3 * 43 * 43, err_msg="loss")
    for name, (data, diff) in blobs1.items():
        assert_rounding_close(blobs[name][0], data, terms=TERMS, err_msg=f"{name} data")
        assert_rounding_close(blobs[name][1], diff, terms=TERMS, err_msg=f"{name} diff")
    for name, diffs in grads1.items():
        for k, diff in enumerate(diffs):
            assert_rounding_close(grads[name][k], diff, terms=TERMS, err_msg=f"{name}/{k}")


def test_split_work_matches_one_thread_and_is_deterministic():
    one_thread = _run(1)
    runs = [_run(4), _run(4)]
    np.testing.assert_array_equal(runs[0][2]["c1"][0], runs[1][2]["c1"][0])  # deterministic
    for run in runs:
        assert_same_to_rounding(run, one_thread)


def test_the_fast_engine_matches_the_reference_engine():
    with engine.using("reference"):
        reference = _run(1)
    assert_same_to_rounding(_run(4), reference)
