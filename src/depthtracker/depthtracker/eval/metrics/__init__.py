"""Evaluation metrics: multi-object tracking (HOTA, CLEAR, identity), single-object tracking (OTB/LaSOT), depth,
detection (COCO mAP).

``mot_metrics(gt, hyp)``, ``sot_metrics(pred_boxes, gt_boxes)``, ``depth_metrics(pred, gt, valid_mask=None)``,
``det_metrics(gt, pred, num_classes)``; the definitions and their reference implementations are in each module's
docstring.
"""

from depthtracker.eval.metrics.depth import depth_metrics
from depthtracker.eval.metrics.det import det_metrics
from depthtracker.eval.metrics.mot import mot_metrics
from depthtracker.eval.metrics.sot import sot_metrics

__all__ = ["depth_metrics", "det_metrics", "mot_metrics", "sot_metrics"]
