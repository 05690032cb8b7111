"""Decoupled anchor-free detection head with DFL box regression, anchor points and box <-> distance coding.

Conventions (shared by the loss, post-processing and export):

* anchor points are cell centres in pixels of the (padded) network input: ``((j + 0.5) s, (i + 0.5) s)`` for cell
  ``(i, j)`` of the level with stride ``s``; levels are concatenated P3, P4, P5, each row-major, ``A`` in total;
* a box is regressed as distances ``(l, t, r, b)`` from its anchor to its sides, in units of the level's stride,
  each a distribution over ``reg_max`` bins ``0..reg_max-1`` (DFL, Li et al. 2020, "Generalized Focal Loss");
  the distance is the distribution's expectation, so boxes reach at most ``(reg_max - 1) * stride`` from the anchor;
* boxes are ``[x1, y1, x2, y2]`` pixels of the network input.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from depthtracker.models.hsvdet.blocks import ConvBNAct

__all__ = ["DetectHead", "make_anchors", "dfl_expectation", "dist_to_box", "box_to_dist"]

# Prior of the class logits at init (YOLOv8's choice): about 5 objects per 640x640 image spread over the classes, so
# early training is not swamped by the background term.
_PRIOR_OBJECTS = 5.0
_PRIOR_IMAGE = 640.0
_BOX_BIAS = 1.0  # initial bias of the box-bin logits (YOLOv8)


class DetectHead(nn.Module):
    """Per level: a box branch (two 3x3 ConvBNAct, 1x1 conv to ``4 * reg_max``) and a class branch (same, to
    ``num_classes``), decoupled as in YOLOv8/YOLOX.

    ``forward(feats)``: list of ``(B, C_l, H_l, W_l)`` -> (box logits list of ``(B, 4 * reg_max, H_l, W_l)``, class
    logits list of ``(B, num_classes, H_l, W_l)``). Box channels are ordered side-major: ``(4, reg_max)`` = l, t, r, b.
    """

    def __init__(self, channels: tuple[int, ...], num_classes: int, reg_max: int, strides: tuple[int, ...]) -> None:
        super().__init__()
        self.num_classes, self.reg_max, self.strides = num_classes, reg_max, tuple(strides)
        c_box = max(16, channels[0] // 4, 4 * reg_max)  # YOLOv8's branch widths
        c_cls = max(channels[0], min(num_classes, 100))
        self.box = nn.ModuleList(
            nn.Sequential(ConvBNAct(c, c_box, 3), ConvBNAct(c_box, c_box, 3), nn.Conv2d(c_box, 4 * reg_max, 1))
            for c in channels)
        self.cls = nn.ModuleList(
            nn.Sequential(ConvBNAct(c, c_cls, 3), ConvBNAct(c_cls, c_cls, 3), nn.Conv2d(c_cls, num_classes, 1))
            for c in channels)
        self.reset_bias()

    def reset_bias(self) -> None:
        for box, cls, s in zip(self.box, self.cls, self.strides):
            nn.init.constant_(box[-1].bias, _BOX_BIAS)
            p = _PRIOR_OBJECTS / self.num_classes / (_PRIOR_IMAGE / s) ** 2
            nn.init.constant_(cls[-1].bias, math.log(p))

    def forward(self, feats: list[torch.Tensor]) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        return [m(f) for m, f in zip(self.box, feats)], [m(f) for m, f in zip(self.cls, feats)]


def make_anchors(shapes: list[tuple[int, int]], strides: tuple[int, ...], dtype: torch.dtype = torch.float32,
                 device: torch.device | str = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
    """Anchor points ``(A, 2)`` (x, y pixels) and strides ``(A, 1)`` for levels of ``(H_l, W_l)`` feature maps."""
    points, stride_t = [], []
    for (h, w), s in zip(shapes, strides):
        ys = (torch.arange(h, device=device, dtype=dtype) + 0.5) * s
        xs = (torch.arange(w, device=device, dtype=dtype) + 0.5) * s
        gy, gx = torch.meshgrid(ys, xs, indexing="ij")  # (H, W) each
        points.append(torch.stack([gx, gy], dim=-1).reshape(-1, 2))  # (H*W, 2)
        stride_t.append(torch.full((h * w, 1), float(s), device=device, dtype=dtype))
    return torch.cat(points), torch.cat(stride_t)


def dfl_expectation(box_logits: torch.Tensor, reg_max: int) -> torch.Tensor:
    """``(..., 4 * reg_max)`` bin logits -> ``(..., 4)`` expected distances in bins (softmax over each side)."""
    probs = box_logits.unflatten(-1, (4, reg_max)).float().softmax(-1)  # (..., 4, R)
    bins = torch.arange(reg_max, device=box_logits.device, dtype=probs.dtype)
    return probs @ bins  # (..., 4)


def dist_to_box(dist: torch.Tensor, anchors: torch.Tensor, strides: torch.Tensor) -> torch.Tensor:
    """Distances ``(..., A, 4)`` l,t,r,b in stride units + anchors ``(A, 2)`` px, strides ``(A, 1)`` -> xyxy px."""
    d = dist * strides  # (..., A, 4) pixels
    return torch.cat([anchors - d[..., :2], anchors + d[..., 2:]], dim=-1)


def box_to_dist(boxes: torch.Tensor, anchors: torch.Tensor, strides: torch.Tensor, reg_max: int) -> torch.Tensor:
    """Inverse of :func:`dist_to_box`: xyxy px ``(..., A, 4)`` -> l,t,r,b in stride units clamped to
    ``[0, reg_max - 1 - 0.01]`` (the upper margin keeps the right DFL bin inside the range)."""
    d = torch.cat([anchors - boxes[..., :2], boxes[..., 2:] - anchors], dim=-1) / strides
    return d.clamp(0, reg_max - 1 - 0.01)
