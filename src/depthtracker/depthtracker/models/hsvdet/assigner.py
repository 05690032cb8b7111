"""Task-aligned assignment (TAL; Feng et al. 2021, "TOOD"), as YOLOv8 uses it.

For every ground-truth box ``g`` and anchor ``a`` whose centre lies inside ``g``, the alignment metric is
``t = s^alpha * IoU^beta``, ``s`` the predicted score of ``g``'s class at ``a`` and ``IoU`` that of ``a``'s predicted
box with ``g``. Each box takes the ``topk`` anchors of largest ``t`` among those inside it; an anchor claimed by
several boxes goes to the one its prediction overlaps most. Positive anchors get the box and a soft class target
``t / max_a(t) * max_a(IoU)`` (normalised per box), every other anchor is background with all-zero class targets.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from depthtracker.models.hsvdet.box_ops import iou

__all__ = ["Assignment", "centres_inside", "task_aligned_assign"]


@dataclass(frozen=True, eq=False)
class Assignment:
    """Targets per anchor. ``fg_mask (B, A)`` bool; ``target_boxes (B, A, 4)`` xyxy px (meaningful where fg);
    ``target_scores (B, A, nc)`` soft class targets (zero on background); ``target_gt (B, A)`` int64 index of the
    assigned ground-truth box in the padded ``(B, M)`` layout (0 on background)."""

    fg_mask: torch.Tensor
    target_boxes: torch.Tensor
    target_scores: torch.Tensor
    target_gt: torch.Tensor


def centres_inside(anchors: torch.Tensor, gt_boxes: torch.Tensor, eps: float = 1e-9) -> torch.Tensor:
    """``(B, M, A)`` bool: anchor point ``a`` (``anchors (A, 2)`` px) lies strictly inside box ``m`` (``gt_boxes
    (B, M, 4)`` xyxy px), by more than ``eps`` on every side: the candidates of task-aligned assignment."""
    lt = anchors[None, None] - gt_boxes[:, :, None, :2]  # (B, M, A, 2)
    rb = gt_boxes[:, :, None, 2:] - anchors[None, None]  # (B, M, A, 2)
    return torch.cat([lt, rb], -1).amin(-1) > eps


@torch.no_grad()
def task_aligned_assign(pred_scores: torch.Tensor, pred_boxes: torch.Tensor, anchors: torch.Tensor,
                        gt_labels: torch.Tensor, gt_boxes: torch.Tensor, gt_mask: torch.Tensor, topk: int = 10,
                        alpha: float = 0.5, beta: float = 6.0, eps: float = 1e-9) -> Assignment:
    """Assign ground truth to anchors.

    Args:
        pred_scores: ``(B, A, nc)`` class probabilities (after sigmoid).
        pred_boxes: ``(B, A, 4)`` predicted xyxy px.
        anchors: ``(A, 2)`` anchor points (x, y) px.
        gt_labels: ``(B, M)`` int64 classes; gt_boxes: ``(B, M, 4)`` xyxy px; gt_mask: ``(B, M)`` bool, false on
            padding rows.
        topk: anchors per box; alpha, beta: exponents of the alignment metric.
    """
    b, a, nc = pred_scores.shape
    m = gt_boxes.shape[1]
    dev = pred_scores.device
    if m == 0:
        return Assignment(torch.zeros(b, a, dtype=torch.bool, device=dev), torch.zeros(b, a, 4, device=dev),
                          torch.zeros(b, a, nc, device=dev), torch.zeros(b, a, dtype=torch.long, device=dev))
    pred_scores, pred_boxes, gt_boxes = pred_scores.float(), pred_boxes.float(), gt_boxes.float()
    inside = centres_inside(anchors, gt_boxes, eps) & gt_mask[:, :, None]  # (B, M, A), and the row is real
    labels = gt_labels.clamp(min=0).long()
    score = pred_scores.transpose(1, 2).gather(1, labels[:, :, None].expand(b, m, a))  # (B, M, A)
    overlap = iou(gt_boxes[:, :, None, :], pred_boxes[:, None, :, :]).clamp(min=0) * inside  # (B, M, A)
    metric = score.pow(alpha) * overlap.pow(beta) * inside  # (B, M, A)
    k = min(topk, a)
    # ties (e.g. all-zero metrics early in training) fall back to the anchors' order; `inside` keeps them valid
    top_idx = metric.topk(k, dim=-1).indices  # (B, M, k)
    pos = torch.zeros_like(inside).scatter_(-1, top_idx, True) & inside  # (B, M, A)
    # an anchor claimed by several boxes goes to the box of largest IoU with its prediction
    multi = pos.sum(1, keepdim=True) > 1  # (B, 1, A)
    best = F.one_hot(overlap.argmax(1), m).transpose(1, 2).bool()  # (B, M, A)
    pos = torch.where(multi, best & inside, pos)
    fg = pos.any(1)  # (B, A)
    gt_idx = pos.float().argmax(1)  # (B, A)
    target_boxes = gt_boxes.gather(1, gt_idx[..., None].expand(b, a, 4))  # (B, A, 4)
    target_labels = labels.gather(1, gt_idx)  # (B, A)
    # soft targets: the alignment metric normalised so each box's best anchor scores its best IoU
    metric = metric * pos
    norm = (metric * overlap.mul(pos).amax(-1, keepdim=True) / (metric.amax(-1, keepdim=True) + eps)).amax(1)
    target_scores = F.one_hot(target_labels, nc).float() * (norm * fg)[..., None]  # (B, A, nc)
    return Assignment(fg, target_boxes, target_scores, gt_idx.masked_fill(~fg, 0))
