"""A file from Noh's Caffe fork (V1 syntax, UNPOOLING) runs directly and matches the fork's
recorded outputs, pooling switches and gradients (tests/data/golden_noh)."""
import numpy as np
import pytest

import caffe_cae
from tests.helpers.golden import assert_close
from tests.helpers.paths import GOLDEN_NOH

TOL = {"rtol": 1e-5, "atol": 1e-6, "atol_rel_max": 1e-6}


@pytest.mark.usefixtures("each_engine")
def test_unpool_test_net_forward_and_backward():
    folder = GOLDEN_NOH / "unpool_test"
    expected = dict(np.load(folder / "unpool_test_results.npz"))
    net = caffe_cae.Net(str(folder / "unpool_test.prototxt"), caffe_cae.TEST)
    assert [layer.type for layer in net.layers] == ["Input", "Pooling", "Split", "Unpooling", "Unpooling"]
    assert net.outputs == ["unpool_mask", "unpool_nomask"]
    out = net.forward(data=expected["data"], blobs=["pool", "pool_mask"])
    for name in ("pool", "pool_mask", "unpool_mask", "unpool_nomask"):
        assert_close(out[name], expected[name], TOL, name)
    diffs = net.backward(unpool_mask=expected["unpool_mask_diff"],
                         unpool_nomask=expected["unpool_nomask_diff"], diffs=["pool"])
    assert_close(diffs["pool"], expected["pool_diff"], TOL, "pool diff")
    assert_close(diffs["data"], expected["data_diff"], TOL, "data diff")
