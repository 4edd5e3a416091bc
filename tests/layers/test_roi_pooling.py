"""py-faster-rcnn's ROIPooling (caffe-fast-rcnn roi_pooling_layer.cpp) against values worked out
by hand, and against OpenCV's implementation of the same layer."""
from __future__ import annotations

import numpy as np
import pytest

from caffe_cae.errors import CaffeCaeError
from tests.helpers.run_layer import LayerRun, layer_text

MAP = np.arange(20.0).reshape(1, 1, 4, 5)  # value = h * 5 + w


def _pool(rois, body="pooled_h: 2 pooled_w: 2 spatial_scale: 1", data=MAP):
    return LayerRun(layer_text("ROIPooling", f"roi_pooling_param {{ {body} }}", bottoms=2),
                    [data, np.asarray(rois, dtype=float)])


def test_bins_floor_and_ceil_the_float_bin_edges():
    """ROI (0, 0)-(3, 2): 4 wide, 3 high; bins 1.5 rows x 2 columns: rows [0, 2) and [1, 3),
    columns [0, 2) and [2, 4); each bin's maximum is its bottom-right cell here."""
    run = _pool([[0, 0, 0, 3, 2]])
    (y,) = run.forward()
    np.testing.assert_array_equal(y, [[[[6.0, 8.0], [11.0, 13.0]]]])
    # each bin's diff goes to its argmax: (1, 1), (1, 3), (2, 1), (2, 3)
    (dx, _) = run.backward([np.array([[[[1.0, 2.0], [3.0, 4.0]]]])], [True, False])
    expected = np.zeros(20)
    expected[[6, 8, 11, 13]] = [1, 2, 3, 4]
    np.testing.assert_array_equal(dx.reshape(-1), expected)


def test_overlapping_bins_add_their_diffs_on_a_shared_maximum():
    data = np.zeros((1, 1, 4, 5))
    data[0, 0, 1, 1] = 9.0  # in both row bins of the ROI above
    run = _pool([[0, 0, 0, 3, 2]], data=data)
    (y,) = run.forward()
    assert y[0, 0, 0, 0] == 9.0 and y[0, 0, 1, 0] == 9.0
    (dx, _) = run.backward([np.ones((1, 1, 2, 2))], [True, False])
    assert dx[0, 0, 1, 1] == 2.0


def test_coordinates_round_half_away_from_zero_and_scale():
    # x1 = 2.5 * 1 rounds to 3 (C's round), not to 2 (NumPy's)
    (y,) = _pool([[0, 2.5, 0, 4, 3]], "pooled_h: 1 pooled_w: 1 spatial_scale: 1").forward()
    assert y.item() == 19.0
    (y,) = _pool([[0, 0.5, 0.5, 0.5, 0.5]], "pooled_h: 1 pooled_w: 1 spatial_scale: 1").forward()
    assert y.item() == 6.0  # round(0.5) = 1: the single cell (1, 1)
    (y,) = _pool([[0, 16, 16, 31, 31]], "pooled_h: 1 pooled_w: 1 spatial_scale: 0.0625").forward()
    assert y.item() == 12.0  # (16, 16)-(31, 31) / 16 -> cells (1, 1)-(2, 2)


def test_bins_outside_the_map_are_zero_and_pass_no_gradient():
    run = _pool([[0, 10, 10, 14, 14]])
    (y,) = run.forward()
    np.testing.assert_array_equal(y, np.zeros((1, 1, 2, 2)))
    (dx, _) = run.backward([np.ones((1, 1, 2, 2))], [True, False])
    assert not dx.any()


def test_rois_pick_their_batch_item():
    data = np.stack([MAP[0], -MAP[0]])
    (y,) = _pool([[1, 0, 0, 4, 3], [0, 0, 0, 4, 3]], "pooled_h: 1 pooled_w: 1", data=data).forward()
    np.testing.assert_array_equal(y.reshape(-1), [0.0, 19.0])


@pytest.mark.parametrize("rois, body, message", [
    ([[2, 0, 0, 1, 1]], "pooled_h: 1 pooled_w: 1", "names batch item 2"),
    ([[0, 0, 0, 1, 1]], "pooled_h: 0 pooled_w: 1", "pooled_h must be > 0"),
])
def test_refusals(rois, body, message):
    with pytest.raises(CaffeCaeError, match=message):
        _pool(rois, body).forward()


def test_roi_blob_must_hold_five_values_per_roi():
    with pytest.raises(CaffeCaeError, match="ROI layer C x W x H must be == 5"):
        _pool(np.zeros((2, 4)))


def test_equals_opencv(tmp_path):
    cv2 = pytest.importorskip("cv2")
    net_file = tmp_path / "roi.prototxt"
    net_file.write_text('''
        layer { name: "in" type: "Input" top: "data" top: "rois" input_param { shape { dim: 2 dim: 3 dim: 12 dim: 14 } shape { dim: 5 dim: 5 } } }
        layer { name: "pool" type: "ROIPooling" bottom: "data" bottom: "rois" top: "pool" roi_pooling_param { pooled_h: 3 pooled_w: 4 spatial_scale: 0.0625 } }
    ''')
    x = np.random.default_rng(2).standard_normal((2, 3, 12, 14)).astype(np.float32)
    rois = np.array([[0, 8, 8, 150, 120], [1, 0, 0, 223, 191], [0, 40, 20, 48, 28], [1, 100, 30, 90, 20],
                     [0, -30, -30, 300, 400]], np.float32)
    (ours,) = _pool(rois, "pooled_h: 3 pooled_w: 4 spatial_scale: 0.0625", data=x).forward()
    reference = cv2.dnn.readNetFromCaffe(str(net_file))
    reference.setInput(x, "data")
    reference.setInput(rois, "rois")
    np.testing.assert_array_equal(ours, reference.forward("pool"))
