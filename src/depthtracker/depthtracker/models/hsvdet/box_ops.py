"""Element-wise IoU and Complete-IoU of xyxy boxes in torch (differentiable), for the assigner and the box loss.

``geometry.boxes`` holds the NumPy conversions of the public API; these are the training-time torch twins.
"""

from __future__ import annotations

import math

import torch

__all__ = ["iou", "ciou"]

_EPS = 1e-7


def iou(a: torch.Tensor, b: torch.Tensor, eps: float = _EPS) -> torch.Tensor:
    """IoU of broadcastable ``(..., 4)`` xyxy boxes -> ``(...)``."""
    wh = (torch.minimum(a[..., 2:], b[..., 2:]) - torch.maximum(a[..., :2], b[..., :2])).clamp(min=0)
    inter = wh[..., 0] * wh[..., 1]
    area_a = (a[..., 2] - a[..., 0]).clamp(min=0) * (a[..., 3] - a[..., 1]).clamp(min=0)
    area_b = (b[..., 2] - b[..., 0]).clamp(min=0) * (b[..., 3] - b[..., 1]).clamp(min=0)
    return inter / (area_a + area_b - inter + eps)


def ciou(a: torch.Tensor, b: torch.Tensor, eps: float = _EPS) -> torch.Tensor:
    """Complete IoU (Zheng et al. 2020) of broadcastable ``(..., 4)`` xyxy boxes -> ``(...)``, in [-1.5, 1].

    ``CIoU = IoU - rho^2 / c^2 - alpha v``: ``rho`` the distance of the centres, ``c`` the diagonal of the smallest
    enclosing box, ``v = 4 / pi^2 (atan(w_b / h_b) - atan(w_a / h_a))^2`` the aspect mismatch and
    ``alpha = v / (1 - IoU + v)`` its trade-off weight, treated as a constant in the gradient (as the paper does).
    """
    i = iou(a, b, eps)
    wa, ha = a[..., 2] - a[..., 0], (a[..., 3] - a[..., 1]).clamp(min=eps)
    wb, hb = b[..., 2] - b[..., 0], (b[..., 3] - b[..., 1]).clamp(min=eps)
    cw = torch.maximum(a[..., 2], b[..., 2]) - torch.minimum(a[..., 0], b[..., 0])
    ch = torch.maximum(a[..., 3], b[..., 3]) - torch.minimum(a[..., 1], b[..., 1])
    c2 = cw.square() + ch.square() + eps
    rho2 = ((b[..., 0] + b[..., 2] - a[..., 0] - a[..., 2]).square()
            + (b[..., 1] + b[..., 3] - a[..., 1] - a[..., 3]).square()) / 4
    v = (4 / math.pi**2) * (torch.atan(wb / hb) - torch.atan(wa / ha)).square()
    with torch.no_grad():
        alpha = v / (v - i + (1 + eps))
    return i - (rho2 / c2 + v * alpha)
