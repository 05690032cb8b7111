"""DepthTrack losses: a name -> method map with a weight per name (DETR's ``SetCriterion`` layout).

* ``depth``: SILog on log-depth (Eigen et al. 2014) per camera image, ``sqrt(mean(e^2) - lambda * mean(e)^2)``
  with ``e = log(pred) - log(gt)`` over valid pixels (finite, > 0). ``lambda < 1`` (0.5, as Depth Anything V2's
  metric fine-tuning) keeps part of the global scale error in the loss: the loss is *scale-aware*, so the network
  must get metres right, not only relative depth.
* ``heatmap``: CenterNet's penalty-reduced focal loss (alpha 2, beta 4) against a Gaussian at the true centre
  cell (sigma from the box size in cells, CenterNet's ``gaussian_radius`` simplified to ``sqrt(w h) / 6``).
* ``box_l1``: L1 of the normalised (cx, cy, w, h) read at the true centre cell (OSTrack).
* ``giou``: 1 - GIoU of that box with the ground truth.
* ``uncertainty``: Laplace negative log-likelihood ``|err| / b + log b`` of the four coordinates with the error
  detached, so it trains only the predicted scale ``b`` (aleatoric uncertainty) without reweighting the box.
* ``aux``: the MoE load-balance loss from the model output.
"""

from __future__ import annotations

import math

import torch

from depthtracker.models.depthtrack.config import DepthTrackConfig
from depthtracker.models.depthtrack.heads import SOTMaps
from depthtracker.models.depthtrack.model import DepthTrackOutput

__all__ = ["DepthTrackCriterion", "silog_loss", "centre_heatmap", "focal_heatmap_loss", "giou"]


def silog_loss(log_pred: torch.Tensor, gt: torch.Tensor, lam: float) -> torch.Tensor:
    """Mean SILog over images: ``log_pred (N, H, W)`` log-metres, ``gt (N, H, W)`` metres (NaN / <= 0 invalid).

    Images without a valid pixel are skipped; a batch with none returns 0 (kept in the graph)."""
    valid = torch.isfinite(gt) & (gt > 0)
    e = torch.where(valid, log_pred.float() - torch.log(torch.where(valid, gt, 1.0).float()), 0.0)  # (N, H, W)
    n = valid.flatten(1).sum(1)  # (N,)
    keep = n > 0
    if not bool(keep.any()):
        return log_pred.sum() * 0.0
    m1 = e.flatten(1).sum(1)[keep] / n[keep]
    m2 = (e * e).flatten(1).sum(1)[keep] / n[keep]
    return torch.sqrt((m2 - lam * m1 * m1).clamp_min(1e-8)).mean()


def centre_heatmap(boxes: torch.Tensor, h: int, w: int, stride: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Gaussian targets ``(B, 1, h, w)`` for xyxy ``boxes (B, 4)`` in search pixels, and the centre cells
    ``(B, 2)`` int64 (x, y). The centre cell has value exactly 1."""
    cx = ((boxes[:, 0] + boxes[:, 2]) / 2 / stride).clamp(0, w - 1e-3)
    cy = ((boxes[:, 1] + boxes[:, 3]) / 2 / stride).clamp(0, h - 1e-3)
    ix, iy = cx.floor().long(), cy.floor().long()
    area = ((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])).clamp_min(0)
    sigma = (area.sqrt() / stride / 6).clamp_min(0.5)  # (B,) cells
    ys = torch.arange(h, device=boxes.device).view(1, h, 1)
    xs = torch.arange(w, device=boxes.device).view(1, 1, w)
    d2 = (xs - ix.view(-1, 1, 1)) ** 2 + (ys - iy.view(-1, 1, 1)) ** 2  # (B, h, w)
    heat = torch.exp(-d2 / (2 * sigma.view(-1, 1, 1) ** 2))
    return heat.unsqueeze(1).float(), torch.stack([ix, iy], 1)


def focal_heatmap_loss(logits: torch.Tensor, target: torch.Tensor, alpha: float = 2.0,
                       beta: float = 4.0) -> torch.Tensor:
    """CenterNet focal loss, normalised by the number of positive (value 1) cells."""
    p = torch.sigmoid(logits.float()).clamp(1e-4, 1 - 1e-4)
    pos = target >= 1.0 - 1e-6
    pos_loss = -torch.log(p) * (1 - p) ** alpha
    neg_loss = -torch.log(1 - p) * p**alpha * (1 - target) ** beta
    return (torch.where(pos, pos_loss, neg_loss)).sum() / pos.sum().clamp_min(1)


def giou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Generalised IoU of matching rows of xyxy boxes ``(N, 4)`` -> ``(N,)``."""
    lt, rb = torch.maximum(a[:, :2], b[:, :2]), torch.minimum(a[:, 2:], b[:, 2:])
    inter = (rb - lt).clamp_min(0).prod(1)
    area_a = (a[:, 2:] - a[:, :2]).clamp_min(0).prod(1)
    area_b = (b[:, 2:] - b[:, :2]).clamp_min(0).prod(1)
    union = area_a + area_b - inter
    hull = (torch.maximum(a[:, 2:], b[:, 2:]) - torch.minimum(a[:, :2], b[:, :2])).clamp_min(0).prod(1)
    iou = inter / union.clamp_min(1e-9)
    return iou - (hull - union) / hull.clamp_min(1e-9)


def _cxcywh_to_xyxy(b: torch.Tensor) -> torch.Tensor:
    return torch.cat([b[:, :2] - b[:, 2:] / 2, b[:, :2] + b[:, 2:] / 2], 1)


class DepthTrackCriterion:
    """``criterion(output, depth=..., boxes=..., box_valid=...) -> (loss, parts)``.

    Args (of the call):
        output: the model's :class:`DepthTrackOutput`.
        depth: ``(B, V, H, W)`` ground-truth metres at network-input resolution (NaN = unknown), or None.
        boxes: ``(B, 4)`` xyxy target boxes in search-crop pixels, or None.
        box_valid: ``(B,)`` bool, False where a pair has no usable target (its tracking terms are skipped).
    Returns the weighted sum and the unweighted parts (detached) for logging.
    """

    def __init__(self, config: DepthTrackConfig) -> None:
        self.config = config
        self.weights = {"depth": config.depth_weight, "heatmap": config.heatmap_weight,
                        "box_l1": config.box_l1_weight, "giou": config.giou_weight,
                        "uncertainty": config.uncertainty_weight, "aux": config.aux_weight}

    def loss_depth(self, out: DepthTrackOutput, depth: torch.Tensor) -> dict[str, torch.Tensor]:
        b, v, h, w = out.log_depth.shape
        return {"depth": silog_loss(out.log_depth.reshape(b * v, h, w), depth.reshape(b * v, h, w),
                                    self.config.silog_lambda)}

    def loss_sot(self, maps: SOTMaps, boxes: torch.Tensor, valid: torch.Tensor) -> dict[str, torch.Tensor]:
        if not bool(valid.any()):
            zero = sum(m.sum() * 0.0 for m in maps)  # keeps every head output in the graph (DDP)
            return dict.fromkeys(("heatmap", "box_l1", "giou", "uncertainty"), zero)
        side = float(self.config.search_size)
        _, _, h, w = maps.heatmap.shape
        stride = side / w
        boxes = boxes[valid].float()
        heat, cell = centre_heatmap(boxes, h, w, stride)
        idx = torch.nonzero(valid).flatten()
        ix, iy = cell[:, 0], cell[:, 1]
        size = maps.size[idx, :, iy, ix]  # (n, 2) fractions of the side
        off = maps.offset[idx, :, iy, ix]  # (n, 2) fractions of a cell
        log_b = maps.log_scale[idx, :, iy, ix]  # (n, 4)
        centre = (torch.stack([ix, iy], 1).float() + off) * stride / side  # (n, 2) fractions of the side
        pred = torch.cat([centre, size], 1)  # (n, 4) normalised cx, cy, w, h
        gt = torch.cat([(boxes[:, :2] + boxes[:, 2:]) / 2, boxes[:, 2:] - boxes[:, :2]], 1) / side
        err = (pred - gt).abs()
        return {
            "heatmap": focal_heatmap_loss(maps.heatmap[idx], heat),
            "box_l1": err.sum(1).mean(),
            "giou": (1 - giou(_cxcywh_to_xyxy(pred), _cxcywh_to_xyxy(gt))).mean(),
            "uncertainty": (err.detach() * torch.exp(-log_b) + log_b).mean() + math.log(2.0),
        }

    def __call__(self, output: DepthTrackOutput, depth: torch.Tensor | None = None, boxes: torch.Tensor | None = None,
                 box_valid: torch.Tensor | None = None) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        parts: dict[str, torch.Tensor] = {"aux": output.aux_loss}
        if output.log_depth is not None and depth is not None:
            parts.update(self.loss_depth(output, depth))
        if output.sot is not None and boxes is not None:
            valid = box_valid if box_valid is not None else torch.ones(boxes.shape[0], dtype=torch.bool,
                                                                       device=boxes.device)
            parts.update(self.loss_sot(output.sot, boxes, valid.bool()))
        total = sum(self.weights[k] * v for k, v in parts.items())
        return total, {k: v.detach() for k, v in parts.items()}

