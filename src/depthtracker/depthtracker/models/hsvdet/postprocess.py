"""HSV-DET post-processing: decode the raw output to boxes and scores, class-aware NMS, ``Detections`` per image.

Coordinates: the network sees each image resized (no letterbox) to ``output.image_size``; boxes are decoded in
those pixels, clipped to the image, then scaled by ``original / network`` per axis into original-image pixels.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from depthtracker.models.hsvdet.config import HSVDetConfig
from depthtracker.models.hsvdet.heads import dfl_expectation, dist_to_box
from depthtracker.models.hsvdet.model import HSVDetOutput
from depthtracker.types import Detections

__all__ = ["decode", "nms", "postprocess"]


def decode(output: HSVDetOutput) -> tuple[torch.Tensor, torch.Tensor]:
    """Boxes ``(B, A, 4)`` xyxy px of the network input and class scores ``(B, A, nc)`` in [0, 1] (sigmoid)."""
    box_logits, cls_logits = output.flat()
    anchors, strides = output.anchors()
    boxes = dist_to_box(dfl_expectation(box_logits, output.reg_max), anchors, strides)
    return boxes, cls_logits.float().sigmoid()


def nms(boxes: np.ndarray, scores: np.ndarray, labels: np.ndarray, iou_threshold: float) -> np.ndarray:
    """Greedy class-aware non-maximum suppression.

    Args:
        boxes: ``(N, 4)`` xyxy; scores: ``(N,)``; labels: ``(N,)`` int (boxes of different labels never suppress
            each other); iou_threshold: a box is dropped when its IoU with a kept box of its class exceeds this.

    Returns:
        ``(K,)`` int64 indices of the kept boxes, by decreasing score.
    """
    if len(boxes) == 0:
        return np.zeros(0, np.int64)
    b = np.asarray(boxes, np.float64)
    # shift each class into its own disjoint region so one pass handles every class (boxes never meet across classes)
    offset = np.asarray(labels, np.float64)[:, None] * (np.abs(b).max() * 2.0 + 1.0)
    b = b + offset
    area = (b[:, 2] - b[:, 0]).clip(0) * (b[:, 3] - b[:, 1]).clip(0)
    order = np.argsort(-np.asarray(scores), kind="stable")
    keep = []
    while order.size:
        i = order[0]
        keep.append(i)
        rest = order[1:]
        w = (np.minimum(b[i, 2], b[rest, 2]) - np.maximum(b[i, 0], b[rest, 0])).clip(0)
        h = (np.minimum(b[i, 3], b[rest, 3]) - np.maximum(b[i, 1], b[rest, 1])).clip(0)
        inter = w * h
        union = area[i] + area[rest] - inter
        overlap = np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)
        order = rest[overlap <= iou_threshold]
    return np.asarray(keep, np.int64)


def postprocess(output: HSVDetOutput, config: HSVDetConfig, image_sizes: Sequence[tuple[int, int]] | None = None,
                camera_ids: Sequence[int] | None = None, stamps_ns: Sequence[int] | None = None) -> list[Detections]:
    """Detections of each image of the batch.

    Args:
        output: the model's raw output for ``B`` images.
        config: thresholds (``score_threshold``, ``nms_iou``, ``pre_nms_topk``, ``max_detections``, ``multi_label``).
        image_sizes: ``(width, height)`` of each original image; boxes are scaled from the network input
            (``output.image_size``) to it. None = the network input size.
        camera_ids, stamps_ns: copied into each ``Detections`` (default 0).

    Returns:
        ``B`` :class:`~depthtracker.types.Detections`, boxes xyxy in original-image pixels, by decreasing score.
    """
    boxes_all, scores_all = decode(output)
    bsz = boxes_all.shape[0]
    in_h, in_w = output.image_size
    sizes = list(image_sizes) if image_sizes is not None else [(in_w, in_h)] * bsz
    cams = list(camera_ids) if camera_ids is not None else [0] * bsz
    stamps = list(stamps_ns) if stamps_ns is not None else [0] * bsz
    if not len(sizes) == len(cams) == len(stamps) == bsz:
        raise ValueError(f"postprocess: batch of {bsz} but {len(sizes)} image_sizes, {len(cams)} camera_ids, "
                         f"{len(stamps)} stamps_ns")
    boxes_np = boxes_all.detach().cpu().numpy()
    scores_np = scores_all.detach().cpu().numpy()
    out = []
    for i in range(bsz):
        scores = scores_np[i]  # (A, nc)
        if config.multi_label:
            anchor, label = np.nonzero(scores > config.score_threshold)
            conf = scores[anchor, label]
        else:
            label = scores.argmax(1)
            conf = scores[np.arange(len(label)), label]
            anchor = np.flatnonzero(conf > config.score_threshold)
            label, conf = label[anchor], conf[anchor]
        if conf.size > config.pre_nms_topk:
            top = np.argpartition(-conf, config.pre_nms_topk - 1)[: config.pre_nms_topk]
            anchor, label, conf = anchor[top], label[top], conf[top]
        boxes = boxes_np[i][anchor].astype(np.float64)
        boxes[:, 0::2] = boxes[:, 0::2].clip(0, in_w)
        boxes[:, 1::2] = boxes[:, 1::2].clip(0, in_h)
        keep = nms(boxes, conf, label, config.nms_iou)[: config.max_detections]
        width, height = sizes[i]
        scale = np.array([width / in_w, height / in_h] * 2)
        boxes = (boxes[keep] * scale).clip(0, np.array([width, height] * 2))
        out.append(Detections(boxes.astype(np.float32), conf[keep].astype(np.float32), label[keep].astype(np.int64),
                              int(cams[i]), int(stamps[i])))
    return out
