"""SSD's DetectionOutput (Wei Liu's weiliu89/caffe, ``ssd`` branch): the boxes and scores of
the prediction heads decoded against the priors, suppressed per class, the best kept.

Read from the fork's ``src/caffe/layers/detection_output_layer.cpp`` (0f964fe) and
``src/caffe/util/bbox_util.cpp`` (0d455ff: ``DecodeBBox``, ``JaccardOverlap``,
``GetMaxScoreIndex``, ``ApplyNMSFast``).  Box arithmetic is float32 where the fork's is
(``float`` coordinates), double where it computes in double before storing a float.
"""
from __future__ import annotations

import logging

import numpy as np

from caffe_cae.layers.base import Layer
from caffe_cae.layers.common import legacy_shape
from caffe_cae.layers.registry import register
from caffe_cae.proto import caffe_pb2

log = logging.getLogger(__name__)

CodeType = caffe_pb2.PriorBoxParameter
FLT_MAX = float(np.finfo(np.float32).max)
f32 = np.float32


def decode_boxes(loc: np.ndarray, priors: np.ndarray, variances: np.ndarray, code_type: int,
                 variance_in_target: bool) -> np.ndarray:
    """bbox_util.cpp's DecodeBBox for arrays: ``loc`` (..., P, 4) offsets, ``priors`` and
    ``variances`` (P, 4); float32 boxes (..., P, 4) (xmin, ymin, xmax, ymax)."""
    loc = loc.astype(np.float32, copy=False)
    var = np.ones_like(variances) if variance_in_target else variances
    pxmin, pymin, pxmax, pymax = (priors[:, k] for k in range(4))
    out = np.empty(loc.shape, dtype=np.float32)
    if code_type == CodeType.CORNER:
        np.add(priors, var * loc, out=out)
    elif code_type in (CodeType.CENTER_SIZE, CodeType.CORNER_SIZE):
        width, height = pxmax - pxmin, pymax - pymin
        if (width <= 0).any() or (height <= 0).any():
            raise ValueError("prior boxes must have positive width and height")
        if code_type == CodeType.CORNER_SIZE:
            out[...] = priors + var * loc * np.stack([width, height, width, height], axis=1)
        else:
            cx = ((pxmin + pxmax).astype(np.float64) / 2.0).astype(np.float32)
            cy = ((pymin + pymax).astype(np.float64) / 2.0).astype(np.float32)
            center_x = var[:, 0] * loc[..., 0] * width + cx
            center_y = var[:, 1] * loc[..., 1] * height + cy
            # exp in double (C's exp), times the float prior size, stored as float
            box_w = (np.exp((var[:, 2] * loc[..., 2]).astype(np.float64)) * width).astype(np.float32)
            box_h = (np.exp((var[:, 3] * loc[..., 3]).astype(np.float64)) * height).astype(np.float32)
            half_w, half_h = box_w.astype(np.float64) / 2.0, box_h.astype(np.float64) / 2.0
            out[..., 0] = center_x - half_w
            out[..., 1] = center_y - half_h
            out[..., 2] = center_x + half_w
            out[..., 3] = center_y + half_h
    else:
        raise ValueError(f"unknown code_type {code_type}")
    return out


def box_sizes(boxes: np.ndarray) -> np.ndarray:
    """BBoxSize (normalized): width * height in float, 0 for an inverted box."""
    width = boxes[..., 2] - boxes[..., 0]
    height = boxes[..., 3] - boxes[..., 1]
    return np.where((width < 0) | (height < 0), np.float32(0), width * height).astype(np.float32)


def jaccard_matrix(boxes: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    """JaccardOverlap of every pair of (K, 4) float32 boxes, in the fork's float arithmetic."""
    b1, b2 = boxes[:, None, :], boxes[None, :, :]
    apart = ((b2[..., 0] > b1[..., 2]) | (b2[..., 2] < b1[..., 0])
             | (b2[..., 1] > b1[..., 3]) | (b2[..., 3] < b1[..., 1]))
    width = np.minimum(b1[..., 2], b2[..., 2]) - np.maximum(b1[..., 0], b2[..., 0])
    height = np.minimum(b1[..., 3], b2[..., 3]) - np.maximum(b1[..., 1], b2[..., 1])
    inter = width * height
    union = sizes[:, None] + sizes[None, :] - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        overlap = inter / union
    return np.where(apart | ~((width > 0) & (height > 0)), np.float32(0), overlap).astype(np.float32)


def nms_fast(boxes: np.ndarray, scores: np.ndarray, score_threshold: float, nms_threshold: float,
             eta: float, top_k: int) -> list[int]:
    """ApplyNMSFast: candidates with score > threshold, in descending score order (stable:
    equal scores keep index order), at most ``top_k`` of them; a candidate is kept when its
    overlap with every box kept so far is <= the (adaptive) threshold."""
    candidates = np.flatnonzero(scores > np.float32(score_threshold))
    order = candidates[np.argsort(-scores[candidates], kind="stable")]
    if top_k > -1:
        order = order[:top_k]
    if order.size == 0:
        return []
    overlaps = jaccard_matrix(boxes[order], box_sizes(boxes[order]))
    threshold = f32(nms_threshold)
    kept: list[int] = []
    for i in range(order.size):
        if not kept or (overlaps[i, kept] <= threshold).all():
            kept.append(i)
            if eta < 1 and threshold > 0.5:
                threshold = f32(threshold * f32(eta))
    return [int(order[i]) for i in kept]


@register("DetectionOutput")
class DetectionOutputLayer(Layer):
    """SSD's detections: decode the location offsets against the priors, per image and class
    (background skipped) ``ApplyNMSFast`` with ``confidence_threshold``, ``nms_param``'s
    threshold, eta and top_k, then ``keep_top_k`` boxes per image by score.

    Top (1, 1, D, 7): rows ``[image, label, score, xmin, ymin, xmax, ymax]``, per image by
    label, within a label by descending score; with no detection at all, one row per image
    ``[image, -1, -1, -1, -1, -1, -1]``.  D depends on the data: the top is reshaped in
    forward, as in the fork.  Ties in keep_top_k's sort keep label order (the fork's
    ``std::sort`` leaves them unspecified).  ``save_output_param`` and ``visualize`` (writing
    result files, opening windows) are not reproduced; a warning says so.
    """

    exact_bottoms = 3
    exact_tops = 1

    def allow_force_backward(self, bottom_index):
        return False

    def setup(self, bottom_shapes):
        p = self.param.detection_output_param
        if not p.HasField("num_classes"):
            raise self.error("Must specify num_classes")
        self.num_classes = int(p.num_classes)
        self.share_location = p.share_location
        self.num_loc_classes = 1 if self.share_location else self.num_classes
        self.background = int(p.background_label_id)
        if self.share_location and self.background == -1:
            raise self.error("Could not find location predictions for label -1 (the fork skips the "
                             "shared locations when background_label_id is -1)")
        self.code_type = p.code_type
        self.variance_in_target = p.variance_encoded_in_target
        self.keep_top_k = int(p.keep_top_k)
        self.confidence_threshold = float(p.confidence_threshold) if p.HasField("confidence_threshold") \
            else -FLT_MAX
        nms = p.nms_param
        self.nms_threshold = float(nms.nms_threshold)
        if self.nms_threshold < 0:
            raise self.error(f"nms_threshold must be non negative, got {self.nms_threshold:g}")
        self.eta = float(nms.eta)
        if not 0 < self.eta <= 1:
            raise self.error(f"nms_param.eta must be in (0, 1], got {self.eta:g}")
        self.top_k = int(nms.top_k) if nms.HasField("top_k") else -1
        if p.save_output_param.output_directory or p.visualize:
            log.warning("layer '%s' (DetectionOutput): %s not reproduced; the detections are in "
                        "the top blob only", self.name,
                        "save_output_param (result files)" if p.save_output_param.output_directory
                        else "visualize")
        return []

    def reshape(self, bottom_shapes):
        loc, conf, prior = (tuple(s) for s in bottom_shapes)
        if loc[0] != conf[0]:
            raise self.error(f"bottoms 0 and 1 must have the same num: {list(loc)} vs {list(conf)}")
        _, prior_height, _ = legacy_shape(self, prior)[1:]
        self.num_priors = prior_height // 4
        loc_channels, _, _ = legacy_shape(self, loc)[1:]  # the fork compares channels()
        conf_channels, _, _ = legacy_shape(self, conf)[1:]
        if self.num_priors * self.num_loc_classes * 4 != loc_channels:
            raise self.error(f"Number of priors must match number of location predictions: "
                             f"{self.num_priors} priors x {self.num_loc_classes} x 4 != {loc_channels}")
        if self.num_priors * self.num_classes != conf_channels:
            raise self.error(f"Number of priors must match number of confidence predictions: "
                             f"{self.num_priors} priors x {self.num_classes} classes != {conf_channels}")
        return [(1, 1, 1, 7)]

    def detections(self, loc: np.ndarray, conf: np.ndarray, prior: np.ndarray) -> np.ndarray:
        """(D, 7) float32 rows from the three bottoms' arrays."""
        num, P, C = loc.shape[0], self.num_priors, self.num_classes
        prior = prior.astype(np.float32, copy=False).reshape(-1)
        boxes = prior[:P * 4].reshape(P, 4)
        variances = prior[P * 4:P * 8].reshape(P, 4)
        loc = loc.astype(np.float32, copy=False).reshape(num, P, self.num_loc_classes, 4).transpose(0, 2, 1, 3)
        scores = conf.astype(np.float32, copy=False).reshape(num, P, C)
        try:
            decoded = decode_boxes(loc, boxes, variances, self.code_type, self.variance_in_target)
        except ValueError as err:
            raise self.error(str(err)) from None
        rows = []
        for i in range(num):
            kept: dict[int, list[int]] = {}
            for c in range(C):
                if c == self.background:
                    continue
                label_boxes = decoded[i, 0 if self.share_location else c]
                kept[c] = nms_fast(label_boxes, scores[i, :, c], self.confidence_threshold,
                                   self.nms_threshold, self.eta, self.top_k)
            total = sum(len(v) for v in kept.values())
            if self.keep_top_k > -1 and total > self.keep_top_k:
                pairs = [(scores[i, idx, c], c, idx) for c, found in kept.items() for idx in found]
                order = sorted(range(len(pairs)), key=lambda k: -pairs[k][0])[:self.keep_top_k]
                kept = {}
                for k in order:
                    kept.setdefault(pairs[k][1], []).append(pairs[k][2])
            for c in sorted(kept):
                found = kept[c]
                if not found:
                    continue
                label_boxes = decoded[i, 0 if self.share_location else c]
                block = np.empty((len(found), 7), dtype=np.float32)
                block[:, 0], block[:, 1] = i, c
                block[:, 2] = scores[i, found, c]
                block[:, 3:] = label_boxes[found]
                rows.append(block)
        if not rows:
            empty = np.full((num, 7), -1, dtype=np.float32)
            empty[:, 0] = np.arange(num)
            return empty
        return np.concatenate(rows)

    def forward(self, bottom, top):
        found = self.detections(bottom[0].data, bottom[1].data, bottom[2].data)
        top[0].reshape(1, 1, found.shape[0], 7)
        top[0].data[...] = found

    def backward(self, top, propagate_down, bottom):
        pass  # the fork has none (NOT_IMPLEMENTED); no bottom accepts a gradient
