"""A stand-in for py-faster-rcnn's ``rpn.proposal_layer.ProposalLayer`` (lib/rpn/proposal_layer.py
at 54d2576), written for caffe-cae's tests with the same interface and algorithm: anchors of 3
ratios x 3 scales at every feature-map cell, the RPN's deltas applied, boxes clipped to the
image, small ones dropped, the best ``pre_nms_top_n`` kept, greedy NMS at 0.7, then the best
``post_nms_top_n``.  Test-phase settings of py-faster-rcnn's config (6000, 300, 0.7, 16)."""
import ast

import numpy as np

import caffe

PRE_NMS_TOP_N, POST_NMS_TOP_N, NMS_THRESH, MIN_SIZE = 6000, 300, 0.7, 16


def generate_anchors(base_size=16, ratios=(0.5, 1, 2), scales=(8, 16, 32)):
    """(9, 4) anchors (x1, y1, x2, y2) around the cell (0, 0, 15, 15), ratios then scales."""
    center = (base_size - 1) / 2.0
    area = float(base_size * base_size)
    anchors = []
    for ratio in ratios:
        w = np.round(np.sqrt(area / ratio))
        h = np.round(w * ratio)
        for scale in scales:
            ws, hs = w * scale, h * scale
            anchors.append([center - 0.5 * (ws - 1), center - 0.5 * (hs - 1),
                            center + 0.5 * (ws - 1), center + 0.5 * (hs - 1)])
    return np.array(anchors)


def apply_deltas(boxes, deltas):
    widths = boxes[:, 2] - boxes[:, 0] + 1.0
    heights = boxes[:, 3] - boxes[:, 1] + 1.0
    ctr_x, ctr_y = boxes[:, 0] + 0.5 * widths, boxes[:, 1] + 0.5 * heights
    cx = deltas[:, 0] * widths + ctr_x
    cy = deltas[:, 1] * heights + ctr_y
    w, h = np.exp(deltas[:, 2]) * widths, np.exp(deltas[:, 3]) * heights
    return np.stack([cx - 0.5 * w, cy - 0.5 * h, cx + 0.5 * w, cy + 0.5 * h], axis=1)


def nms(boxes, scores, threshold):
    areas = (boxes[:, 2] - boxes[:, 0] + 1) * (boxes[:, 3] - boxes[:, 1] + 1)
    order = scores.argsort()[::-1]
    keep = []
    while order.size:
        i = order[0]
        keep.append(i)
        xx1 = np.maximum(boxes[i, 0], boxes[order[1:], 0])
        yy1 = np.maximum(boxes[i, 1], boxes[order[1:], 1])
        xx2 = np.minimum(boxes[i, 2], boxes[order[1:], 2])
        yy2 = np.minimum(boxes[i, 3], boxes[order[1:], 3])
        inter = np.maximum(0.0, xx2 - xx1 + 1) * np.maximum(0.0, yy2 - yy1 + 1)
        overlap = inter / (areas[i] + areas[order[1:]] - inter)
        order = order[1:][overlap <= threshold]
    return np.array(keep, dtype=np.int64)


class ProposalLayer(caffe.Layer):
    def setup(self, bottom, top):
        params = ast.literal_eval("{" + self.param_str_ + "}")
        self.feat_stride = params["feat_stride"]
        self.anchors = generate_anchors()
        top[0].reshape(1, 5)
        if len(top) > 1:
            top[1].reshape(1, 1, 1, 1)

    def forward(self, bottom, top):
        assert bottom[0].data.shape[0] == 1, "Only single item batches are supported"
        assert str(self.phase) == "TEST"
        A = self.anchors.shape[0]
        scores = bottom[0].data[:, A:, :, :]
        deltas = bottom[1].data
        im_info = bottom[2].data[0, :]
        height, width = scores.shape[-2:]
        shift_x, shift_y = np.meshgrid(np.arange(width) * self.feat_stride,
                                       np.arange(height) * self.feat_stride)
        shifts = np.stack([shift_x.ravel(), shift_y.ravel(), shift_x.ravel(), shift_y.ravel()], axis=1)
        anchors = (self.anchors[None, :, :] + shifts[:, None, :]).reshape(-1, 4)
        deltas = deltas.transpose((0, 2, 3, 1)).reshape(-1, 4)
        scores = scores.transpose((0, 2, 3, 1)).reshape(-1)
        boxes = apply_deltas(anchors, deltas)
        boxes[:, 0::2] = np.clip(boxes[:, 0::2], 0, im_info[1] - 1)
        boxes[:, 1::2] = np.clip(boxes[:, 1::2], 0, im_info[0] - 1)
        size = MIN_SIZE * im_info[2]
        keep = np.where((boxes[:, 2] - boxes[:, 0] + 1 >= size) & (boxes[:, 3] - boxes[:, 1] + 1 >= size))[0]
        boxes, scores = boxes[keep], scores[keep]
        order = scores.argsort()[::-1][:PRE_NMS_TOP_N]
        boxes, scores = boxes[order], scores[order]
        keep = nms(boxes, scores, NMS_THRESH)[:POST_NMS_TOP_N]
        boxes, scores = boxes[keep], scores[keep]
        blob = np.hstack([np.zeros((boxes.shape[0], 1), dtype=np.float32), boxes.astype(np.float32)])
        top[0].reshape(*blob.shape)
        top[0].data[...] = blob
        if len(top) > 1:
            top[1].reshape(*scores.shape)
            top[1].data[...] = scores

    def backward(self, top, propagate_down, bottom):
        pass

    def reshape(self, bottom, top):
        pass
