"""HSV-DET training loss: task-aligned assignment, then CIoU box loss, DFL and BCE class loss (YOLOv8's recipe).

DETR-style layout: :class:`HSVDetCriterion` runs the assignment once and calls each loss of ``losses`` through a
name -> method map; the total is ``sum(weights[name] * loss[name])``. Every term is normalised by the sum of the
soft class targets (``max(sum, 1)``), so it is a mean per assigned box and independent of the batch size.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from depthtracker.models.hsvdet.assigner import Assignment, task_aligned_assign
from depthtracker.models.hsvdet.box_ops import ciou
from depthtracker.models.hsvdet.config import HSVDetConfig
from depthtracker.models.hsvdet.heads import box_to_dist, dfl_expectation, dist_to_box
from depthtracker.models.hsvdet.model import HSVDetOutput

__all__ = ["HSVDetCriterion", "LossInputs", "pad_targets", "dfl_loss"]


def pad_targets(targets: torch.Tensor, batch_size: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(T, 6)`` rows ``[batch_idx, label, x1, y1, x2, y2]`` (pixels of the network input) -> padded
    ``labels (B, M)`` int64, ``boxes (B, M, 4)`` float and ``mask (B, M)`` bool, ``M`` the most boxes of one image."""
    dev = targets.device
    if targets.numel() == 0:
        return (torch.zeros(batch_size, 0, dtype=torch.long, device=dev), torch.zeros(batch_size, 0, 4, device=dev),
                torch.zeros(batch_size, 0, dtype=torch.bool, device=dev))
    bi = targets[:, 0].long()
    if int(bi.min()) < 0 or int(bi.max()) >= batch_size:
        raise ValueError(f"targets batch_idx must lie in [0, {batch_size}), got {bi.min()}..{bi.max()}")
    counts = torch.bincount(bi, minlength=batch_size)
    m = int(counts.max())
    order = torch.argsort(bi, stable=True)
    bi_sorted = bi[order]
    starts = torch.cumsum(counts, 0) - counts  # (B,)
    slot = torch.arange(len(bi), device=dev) - starts[bi_sorted]  # position of each row within its image
    labels = torch.zeros(batch_size, m, dtype=torch.long, device=dev)
    boxes = torch.zeros(batch_size, m, 4, dtype=torch.float32, device=dev)
    mask = torch.zeros(batch_size, m, dtype=torch.bool, device=dev)
    labels[bi_sorted, slot] = targets[order, 1].long()
    boxes[bi_sorted, slot] = targets[order, 2:6].float()
    mask[bi_sorted, slot] = True
    return labels, boxes, mask


def dfl_loss(box_logits: torch.Tensor, target_dist: torch.Tensor) -> torch.Tensor:
    """Distribution focal loss: ``box_logits (N, 4, R)``, ``target_dist (N, 4)`` in bins ``[0, R-1)`` -> ``(N,)``.

    Cross-entropy towards the two bins around the target, weighted by linear interpolation (Li et al. 2020), so the
    distribution's expectation is pulled onto the target; averaged over the four sides.
    """
    left = target_dist.long()  # floor: target_dist >= 0
    w_right = target_dist - left
    ce_left = F.cross_entropy(box_logits.flatten(0, 1), left.flatten(), reduction="none").view_as(left)
    ce_right = F.cross_entropy(box_logits.flatten(0, 1), (left + 1).flatten(), reduction="none").view_as(left)
    return (ce_left * (1 - w_right) + ce_right * w_right).mean(-1)


@dataclass(frozen=True, eq=False)
class LossInputs:
    """What every loss term reads: flat predictions, decoded boxes, anchors and the assignment."""

    box_logits: torch.Tensor  # (B, A, 4 * R)
    cls_logits: torch.Tensor  # (B, A, nc)
    pred_boxes: torch.Tensor  # (B, A, 4) xyxy px
    anchors: torch.Tensor  # (A, 2) px
    strides: torch.Tensor  # (A, 1)
    assignment: Assignment
    score_sum: torch.Tensor  # scalar: max(sum of target scores, 1)


class HSVDetCriterion:
    """``criterion(output, targets) -> {"loss", "box", "cls", "dfl"}`` scalar tensors.

    ``output``: :class:`~depthtracker.models.hsvdet.model.HSVDetOutput` of a batch of ``B`` images; ``targets``:
    ``(T, 6)`` float rows ``[batch_idx, label, x1, y1, x2, y2]`` in pixels of the network input (as
    ``data.datasets.collate_detections`` makes them). ``"loss"`` is the weighted total to back-propagate; the named
    terms are unweighted (for logging).
    """

    def __init__(self, config: HSVDetConfig) -> None:
        self.config = config
        self.weights = {"box": config.box_weight, "cls": config.cls_weight, "dfl": config.dfl_weight}
        self.losses = {"box": self.loss_box, "cls": self.loss_cls, "dfl": self.loss_dfl}

    def prepare(self, output: HSVDetOutput, targets: torch.Tensor) -> LossInputs:
        cfg = self.config
        box_logits, cls_logits = output.flat()  # (B, A, 4R), (B, A, nc)
        anchors, strides = output.anchors()
        pred_boxes = dist_to_box(dfl_expectation(box_logits, cfg.reg_max), anchors, strides)  # (B, A, 4)
        labels, boxes, mask = pad_targets(targets.to(box_logits.device), output.batch_size)
        assignment = task_aligned_assign(cls_logits.detach().sigmoid().float(), pred_boxes.detach(), anchors, labels,
                                         boxes, mask, cfg.tal_topk, cfg.tal_alpha, cfg.tal_beta)
        score_sum = assignment.target_scores.sum().clamp(min=1.0)
        return LossInputs(box_logits, cls_logits, pred_boxes, anchors, strides, assignment, score_sum)

    def loss_cls(self, inp: LossInputs) -> torch.Tensor:
        """BCE of every (anchor, class) logit against the soft task-aligned targets (zero on background)."""
        bce = F.binary_cross_entropy_with_logits(inp.cls_logits.float(), inp.assignment.target_scores,
                                                 reduction="sum")
        return bce / inp.score_sum

    def _fg_weight(self, inp: LossInputs) -> torch.Tensor:
        return inp.assignment.target_scores.sum(-1)[inp.assignment.fg_mask]  # (P,)

    def loss_box(self, inp: LossInputs) -> torch.Tensor:
        """``1 - CIoU`` of positive anchors' boxes, weighted by their target score."""
        fg = inp.assignment.fg_mask
        if not fg.any():
            return inp.pred_boxes.sum() * 0.0
        c = ciou(inp.pred_boxes[fg], inp.assignment.target_boxes[fg])  # (P,)
        return ((1.0 - c) * self._fg_weight(inp)).sum() / inp.score_sum

    def loss_dfl(self, inp: LossInputs) -> torch.Tensor:
        """DFL of positive anchors' side distributions towards the target distances, weighted by target score."""
        fg = inp.assignment.fg_mask
        if not fg.any():
            return inp.box_logits.sum() * 0.0
        r = self.config.reg_max
        b, a = fg.shape
        strides = inp.strides[None].expand(b, a, 1)[fg]  # (P, 1)
        anchors = inp.anchors[None].expand(b, a, 2)[fg]  # (P, 2)
        target = box_to_dist(inp.assignment.target_boxes[fg], anchors, strides, r)  # (P, 4)
        logits = inp.box_logits[fg].float().view(-1, 4, r)  # (P, 4, R)
        return (dfl_loss(logits, target) * self._fg_weight(inp)).sum() / inp.score_sum

    def __call__(self, output: HSVDetOutput, targets: torch.Tensor) -> dict[str, torch.Tensor]:
        inp = self.prepare(output, targets)
        terms = {name: fn(inp) for name, fn in self.losses.items()}
        terms["loss"] = sum(self.weights[name] * terms[name] for name in self.losses)
        return terms
