"""DepthTrack heads: dense metric depth per camera and the single-target centre head.

Depth: the tokens of each camera are unpatchified (a linear layer to ``r * patch**2`` channels + pixel shuffle,
as DPT-free ViT decoders do) and fused with a small full-resolution image stem, so depth edges follow image edges
rather than the patch grid. The output is log-depth squashed into ``[log(min_depth), log(max_depth)]`` by a
sigmoid: positive metric depth by construction, and the mid-range (the geometric mean of the range) at init.

Single target (OSTrack's centre head with ViL-Tracker-style aleatoric uncertainty): the search tokens pass a
two-layer conv tower, then 1x1 convolutions give per cell a centre logit, the box size (fraction of the search
crop side, sigmoid), the sub-cell offset of the centre (fraction of a cell, sigmoid) and the log scale of a
Laplace distribution over (cx, cy, w, h) (in units of the search-crop side).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["DepthHead", "SOTHead", "SOTMaps"]

_HEAT_PRIOR = 0.01  # initial centre probability (CenterNet / focal-loss bias init: -log((1 - p) / p))


class DepthHead(nn.Module):
    """``tokens (N, hp, wp, C)`` and ``images (N, 3, H, W)`` -> log-depth ``(N, 1, H, W)`` in log-metres."""

    def __init__(self, dim: int, patch: int, channels: int, min_depth: float, max_depth: float) -> None:
        super().__init__()
        self.patch, self.channels = patch, channels
        self.log_min, self.log_range = math.log(min_depth), math.log(max_depth) - math.log(min_depth)
        self.norm = nn.LayerNorm(dim)
        self.unpatch = nn.Linear(dim, channels * patch * patch)
        self.stem = nn.Sequential(nn.Conv2d(3, channels, 3, padding=1), nn.GELU())
        self.fuse = nn.Sequential(nn.Conv2d(2 * channels, channels, 3, padding=1), nn.GELU(),
                                  nn.Conv2d(channels, 1, 3, padding=1))

    def forward(self, tokens: torch.Tensor, images: torch.Tensor) -> torch.Tensor:
        n, hp, wp, _ = tokens.shape
        p, r = self.patch, self.channels
        x = self.unpatch(self.norm(tokens))  # (N, hp, wp, r*p*p)
        x = x.permute(0, 3, 1, 2).reshape(n, r * p * p, hp, wp)
        x = F.pixel_shuffle(x, p)  # (N, r, H, W)
        z = self.fuse(torch.cat([x, self.stem((images - 0.45) / 0.25)], dim=1))  # (N, 1, H, W)
        return self.log_min + self.log_range * torch.sigmoid(z.float())


class SOTMaps(NamedTuple):
    """Single-target maps over the search crop's cell grid ``(h, w) = search_size / patch``.

    ``heatmap`` (B, 1, h, w) centre logits; ``size`` (B, 2, h, w) box (w, h) as fractions of the search side;
    ``offset`` (B, 2, h, w) centre offset inside the cell, fractions of a cell (x, y); ``log_scale``
    (B, 4, h, w) log Laplace scale of (cx, cy, w, h) in fractions of the search side.
    """

    heatmap: torch.Tensor
    size: torch.Tensor
    offset: torch.Tensor
    log_scale: torch.Tensor


class SOTHead(nn.Module):
    """``search tokens (B, h, w, C)`` -> :class:`SOTMaps`."""

    def __init__(self, dim: int, channels: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.tower = nn.Sequential(nn.Conv2d(dim, channels, 3, padding=1), nn.GELU(),
                                   nn.Conv2d(channels, channels, 3, padding=1), nn.GELU())
        self.out = nn.Conv2d(channels, 1 + 2 + 2 + 4, 1)  # heat, size, offset, log-scale
        with torch.no_grad():
            self.out.bias.zero_()
            self.out.bias[0] = -math.log((1 - _HEAT_PRIOR) / _HEAT_PRIOR)
            self.out.bias[5:] = math.log(0.05)  # initial uncertainty: 5 % of the search side

    def forward(self, tokens: torch.Tensor) -> SOTMaps:
        x = self.tower(self.norm(tokens).permute(0, 3, 1, 2))  # (B, channels, h, w)
        o = self.out(x).float()  # (B, 9, h, w)
        return SOTMaps(o[:, 0:1], torch.sigmoid(o[:, 1:3]), torch.sigmoid(o[:, 3:5]), o[:, 5:9].clamp(-10, 5))
