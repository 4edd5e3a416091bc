"""Embed, BatchReindex, Filter and Parameter in nets: Caffe's refusals to back-propagate into an
index/selector bottom, index checks, Filter's data-dependent top shape, Parameter's sharing."""
import numpy as np
import pytest

import caffe_cae
from caffe_cae.errors import CaffeCaeError
from caffe_cae.proto import caffe_pb2
from caffe_cae.prototxt import parse_text


def net_of(text, **kw):
    return caffe_cae.Net(parse_text(text, caffe_pb2.NetParameter), **kw)


def inputs(**shapes):
    return "".join(
        f'layer {{ name: "{name}" type: "Input" top: "{name}" input_param {{ shape {{ '
        + " ".join(f"dim: {d}" for d in shape) + " } } }\n"
        for name, shape in shapes.items())


EMBED = inputs(idx=(2, 3)) + """
layer { name: "emb" type: "Embed" bottom: "idx" top: "y"
        embed_param { num_output: 4 input_dim: 5 weight_filler { type: "gaussian" } } }
"""


def test_embed_looks_up_rows_and_sums_repeated_gradients():
    net = net_of("force_backward: false\n" + EMBED + """
        layer { name: "loss" type: "Reduction" bottom: "y" top: "s" loss_weight: 1 }""", seed=1)
    weight, bias = net.params["emb"]
    idx = np.array([[4, 0, 4], [2.9, 4, 1]])  # 2.9 truncates to 2, as static_cast<int>
    net.forward(idx=idx)
    rows = np.array([4, 0, 4, 2, 4, 1])
    np.testing.assert_array_equal(net.blobs["y"].data.reshape(6, 4), weight.data[rows] + bias.data)
    net.backward()
    assert weight.diff[:, 0].tolist() == [1, 1, 1, 0, 3]  # row 4 used three times
    assert bias.diff.tolist() == [6, 6, 6, 6]


def test_embed_refuses_a_gradient_to_its_input():
    net = net_of("force_backward: true\n" + EMBED)
    net.forward(idx=np.zeros((2, 3)))
    with pytest.raises(CaffeCaeError, match=r"^layer 'emb' \(Embed\): Can't backpropagate to "
                                            r"EmbedLayer input\.$"):
        net.backward()


@pytest.mark.parametrize("bad", [5.0, -1.0, np.nan])
def test_embed_refuses_indices_out_of_range(bad):
    net = net_of(EMBED)
    idx = np.zeros((2, 3))
    idx[1, 2] = bad
    with pytest.raises(CaffeCaeError, match=r"layer 'emb' \(Embed\): index .* out of range \[0, 5\)"):
        net.forward(idx=idx)


def test_embed_setup_checks():
    with pytest.raises(CaffeCaeError, match="EmbedLayer input_dim must be positive"):
        net_of(EMBED.replace("input_dim: 5", "input_dim: 0"))
    with pytest.raises(CaffeCaeError, match="EmbedLayer num_output must be positive"):
        net_of(EMBED.replace("num_output: 4", ""))


REINDEX = inputs(x=(4, 2), perm=(5,)) + """
layer { name: "r" type: "BatchReindex" bottom: "x" bottom: "perm" top: "y" }
"""


def test_batch_reindex_refuses_bad_indices_and_a_gradient_to_them():
    net = net_of("force_backward: true\n" + REINDEX)
    x = np.arange(8.0).reshape(4, 2)
    net.forward(x=x, perm=[3, 0, 3, 1, 1])
    np.testing.assert_array_equal(net.blobs["y"].data, x[[3, 0, 3, 1, 1]])
    with pytest.raises(CaffeCaeError, match=r"layer 'r' \(BatchReindex\): Cannot backprop to index\."):
        net.backward()
    with pytest.raises(CaffeCaeError, match="Index specified for reindex layer was negative."):
        net.forward(x=x, perm=[0, 0, -1, 0, 0])
    with pytest.raises(CaffeCaeError, match="Index specified for reindex layer was greater than batch size"):
        net.forward(x=x, perm=[0, 0, 4, 0, 0])


def test_batch_reindex_index_bottom_must_be_1d():
    with pytest.raises(CaffeCaeError, match=r"layer 'r' \(BatchReindex\): the index bottom 'perm' must have 1 axis"):
        net_of(REINDEX.replace("dim: 5", "dim: 5 dim: 1"))


FILTER = inputs(x=(4, 3), t=(4, 2), sel=(4,)) + """
layer { name: "ip" type: "InnerProduct" bottom: "x" top: "h"
        inner_product_param { num_output: 2 weight_filler { type: "gaussian" } } }
layer { name: "f" type: "Filter" bottom: "h" bottom: "t" bottom: "sel" top: "fh" top: "ft" }
layer { name: "loss" type: "EuclideanLoss" bottom: "fh" bottom: "ft" top: "loss" }
"""


def test_filter_reshapes_its_tops_at_every_forward_and_the_net_follows():
    net = net_of(FILTER, seed=3)
    assert net.blobs["fh"].shape == (4, 2)  # Caffe's setup: N rows
    rng = np.random.default_rng(0)
    x, t = rng.normal(size=(4, 3)), rng.normal(size=(4, 2))
    for sel, kept in (([1, 0, 2.5, 1], [0, 2, 3]), ([0, 1, 0, 0], [1]), ([1, 1, 1, 1], [0, 1, 2, 3])):
        out = net.forward(x=x, t=t, sel=sel)
        h = net.blobs["h"].data
        assert net.blobs["fh"].shape == (len(kept), 2)
        np.testing.assert_array_equal(net.blobs["ft"].data, t[kept].astype(np.float32))
        expected = np.sum((h[kept] - t[kept].astype(np.float32)) ** 2) / (2 * len(kept))
        np.testing.assert_allclose(out["loss"], expected, rtol=1e-5)
        net.backward()
        dh = net.blobs["h"].diff
        np.testing.assert_allclose(dh[kept], (h[kept] - t[kept]) / len(kept), rtol=1e-5, atol=1e-7)
        assert not np.delete(dh, kept, axis=0).any()  # rows not forwarded get 0


def test_filter_refuses_a_gradient_to_its_selector():
    net = net_of("force_backward: true\n" + FILTER)
    net.forward(x=np.ones((4, 3)), t=np.ones((4, 2)), sel=[1, 0, 0, 1])
    with pytest.raises(CaffeCaeError, match=r"layer 'f' \(Filter\): FilterLayer cannot "
                                            r"backpropagate to filter index inputs"):
        net.backward()


@pytest.mark.parametrize("replacements, expected", [
    ([('top: "fh" top: "ft" }', 'top: "fh" }'), ('bottom: "ft" top: "loss"', 'bottom: "t" top: "loss"')],
     "Top.size() should be equal to bottom.size() - 1 (3 bottoms, 1 tops)"),
    ([('"sel" input_param { shape { dim: 4 }', '"sel" input_param { shape { dim: 4 dim: 2 }')],
     "Selector blob dimensions must be singletons (1), except the first"),
    ([('"t" input_param { shape { dim: 4', '"t" input_param { shape { dim: 3')],
     "Each bottom should have the same 0th dimension as the selector blob"),
])
def test_filter_setup_checks(replacements, expected):
    text = FILTER
    for old, new in replacements:
        assert old in text
        text = text.replace(old, new)
    with pytest.raises(CaffeCaeError, match=r"layer 'f' \(Filter\): ") as info:
        net_of(text)
    assert expected in str(info.value)


PARAMETER = inputs(x=(2, 3)) + """
force_backward: true
layer { name: "p" type: "Parameter" top: "p" parameter_param { shape { dim: 2 dim: 3 } } }
layer { name: "prod" type: "Eltwise" bottom: "x" bottom: "p" top: "y"
        eltwise_param { operation: PROD } }
"""


def test_parameter_starts_at_zero_and_its_top_shares_data_and_diff():
    net = net_of(PARAMETER, seed=1)
    (blob,) = net.params["p"]
    assert blob.shape == (2, 3) and not blob.data.any()  # no filler
    blob.data[...] = np.arange(6.0).reshape(2, 3)
    x = np.full((2, 3), 2.0)
    out = net.forward(x=x)
    np.testing.assert_array_equal(out["y"], 2 * np.arange(6.0).reshape(2, 3))
    assert np.shares_memory(net.blobs["p"].data, blob.data)
    net.backward(y=np.ones((2, 3)))
    assert np.shares_memory(net.blobs["p"].diff, blob.diff)
    np.testing.assert_array_equal(blob.diff, x)
