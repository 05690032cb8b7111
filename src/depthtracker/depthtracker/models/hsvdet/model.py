"""HSV-DET: YOLOv8-style detector with gated sparse global blocks (DESIGN.md §4, seed 003).

Layer plan (widths ``w = config.widths``, repeats ``n3 = repeats(3)``, ``n6 = repeats(6)``)::

    stem   Conv 3x3/2                      -> P1 w0
    stage2 Conv 3x3/2, C2f(n3, shortcut)   -> P2 w1
    stage3 Conv 3x3/2, C2f(n6, shortcut)   -> P3 w2 (stride 8)
    stage4 Conv 3x3/2, C2f(n6, shortcut)   -> P4 w3 (stride 16)
    stage5 Conv 3x3/2, C2f(n3, shortcut), SPPF -> P5 w4 (stride 32)
    FPN    up(P5) ++ P4 -> C2f -> T4;  up(T4) ++ P3 -> C2f -> N3
    PAN    down(N3) ++ T4 -> C2f -> N4;  down(N4) ++ P5 -> C2f -> N5
    SGB    N_l <- x + g * block(x) at each level of config.sgb_levels (the block's own gated residual is the only one)
           with sgb_placement="neck" (the seed's layout); with "backbone" the blocks act on P_l instead, as each
           stage's output (stage5's after SPPF), before the next stage and the neck take it
    head   decoupled box (DFL) and class branches per level

With the neck placement a block at P4 or P5 reaches only that level's head: when task-aligned assignment gives every
object to P3 anchors (objects up to the 2 * (reg_max - 1) * 8 = 240 px that P3's distance bins reach, and P3's many
anchors win the top-k), those heads never fire and the blocks cannot change a detection. With the backbone placement
the top-down path carries what they add to P3 as well.

The input is padded at the bottom and right to a multiple of 32, so every level's grid lines up and anchor pixels
equal input pixels; predictions inside the padding are clipped away by post-processing.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from depthtracker.models.hsvdet.blocks import SPPF, C2f, ConvBNAct
from depthtracker.models.hsvdet.config import HSVDetConfig
from depthtracker.models.hsvdet.heads import DetectHead, make_anchors
from depthtracker.models.hsvdet.sgb import SparseGlobalLayer

__all__ = ["HSVDet", "HSVDetOutput"]


@dataclass(frozen=True, eq=False)
class HSVDetOutput:
    """Raw predictions of :class:`HSVDet` for a batch of ``B`` images.

    Attributes:
        box_logits: per level (P3, P4, P5) ``(B, 4 * reg_max, H_l, W_l)`` float: DFL bin logits of the distances
            l, t, r, b from each cell centre to the box sides, in units of the level's stride (side-major channels).
        cls_logits: per level ``(B, num_classes, H_l, W_l)`` float: class logits (sigmoid -> scores, no softmax).
        strides: ``(8, 16, 32)``.
        image_size: ``(H, W)`` of the input before padding (pixels of the boxes the loss and decoder use).
        reg_max: DFL bins per side.
    """

    box_logits: list[torch.Tensor]
    cls_logits: list[torch.Tensor]
    strides: tuple[int, ...]
    image_size: tuple[int, int]
    reg_max: int

    @property
    def batch_size(self) -> int:
        return int(self.cls_logits[0].shape[0])

    def flat(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Levels concatenated: box logits ``(B, A, 4 * reg_max)`` and class logits ``(B, A, num_classes)``."""
        box = torch.cat([t.flatten(2) for t in self.box_logits], dim=2).transpose(1, 2)  # (B, A, 4R)
        cls = torch.cat([t.flatten(2) for t in self.cls_logits], dim=2).transpose(1, 2)  # (B, A, nc)
        return box, cls

    def anchors(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Anchor points ``(A, 2)`` px and strides ``(A, 1)`` matching :meth:`flat` (see ``heads.make_anchors``)."""
        ref = self.cls_logits[0]
        shapes = [(int(t.shape[2]), int(t.shape[3])) for t in self.cls_logits]
        return make_anchors(shapes, self.strides, torch.float32, ref.device)


class HSVDet(nn.Module):
    """HSV-DET detector. ``forward(images)`` with ``images (B, 3, H, W)`` float RGB in [0, 1] -> :class:`HSVDetOutput`.

    ``H`` and ``W`` are free (padded to a multiple of 32 inside); training uses ``config.input_height/width``.
    """

    def __init__(self, config: HSVDetConfig) -> None:
        super().__init__()
        self.config = config
        c = config.widths
        n3, n6 = config.repeats(3), config.repeats(6)
        self.stem = ConvBNAct(3, c[0], 3, 2)
        self.stage2 = nn.Sequential(ConvBNAct(c[0], c[1], 3, 2), C2f(c[1], c[1], n3, shortcut=True))
        self.stage3 = nn.Sequential(ConvBNAct(c[1], c[2], 3, 2), C2f(c[2], c[2], n6, shortcut=True))
        self.stage4 = nn.Sequential(ConvBNAct(c[2], c[3], 3, 2), C2f(c[3], c[3], n6, shortcut=True))
        self.stage5 = nn.Sequential(ConvBNAct(c[3], c[4], 3, 2), C2f(c[4], c[4], n3, shortcut=True),
                                    SPPF(c[4], c[4], 5))
        self.top_down4 = C2f(c[4] + c[3], c[3], n3)
        self.top_down3 = C2f(c[3] + c[2], c[2], n3)
        self.down3 = ConvBNAct(c[2], c[2], 3, 2)
        self.bottom_up4 = C2f(c[2] + c[3], c[3], n3)
        self.down4 = ConvBNAct(c[3], c[3], 3, 2)
        self.bottom_up5 = C2f(c[3] + c[4], c[4], n3)
        chans = config.level_channels
        self.sgb = nn.ModuleDict({
            f"P{lv}": SparseGlobalLayer(chans[lv], config.sgb_heads, config.sgb_topk, config.selection, config.gating,
                                        config.gate_value, config.sgb_backend)
            for lv in sorted(config.sgb_levels)})
        self.head = DetectHead((chans[3], chans[4], chans[5]), config.num_classes, config.reg_max, config.strides)

    def param_groups(self, weight_decay: float) -> list[dict]:
        """Optimiser groups: weight decay on conv and linear weights only; none on biases, norms and SGB gates
        (decay would pull the zero-initialised gates back towards a closed block, and BN scales towards zero)."""
        decay, no_decay = [], []
        for name, p in self.named_parameters():
            if not p.requires_grad:
                continue
            (decay if p.ndim > 1 and not name.endswith(".alpha") else no_decay).append(p)
        return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]

    def pad(self, images: torch.Tensor) -> torch.Tensor:
        """Pad ``(B, 3, H, W)`` at the bottom/right to multiples of the largest stride with ``config.pad_value``."""
        s = max(self.config.strides)
        h, w = images.shape[-2:]
        ph, pw = (-h) % s, (-w) % s
        if ph == 0 and pw == 0:
            return images
        return F.pad(images, (0, pw, 0, ph), value=self.config.pad_value)

    def features(self, images: torch.Tensor) -> list[torch.Tensor]:
        """Neck outputs (after the SGBs of either placement): ``[(B, C3, H/8, W/8), (B, C4, H/16, W/16),
        (B, C5, H/32, W/32)]``."""
        backbone = self.config.sgb_placement == "backbone"
        x = self.stage2(self.stem(self.pad(images)))
        p3 = self._sgb(3, self.stage3(x), backbone)
        p4 = self._sgb(4, self.stage4(p3), backbone)
        p5 = self._sgb(5, self.stage5(p4), backbone)
        t4 = self.top_down4(torch.cat([F.interpolate(p5, scale_factor=2.0, mode="nearest"), p4], 1))
        n3 = self.top_down3(torch.cat([F.interpolate(t4, scale_factor=2.0, mode="nearest"), p3], 1))
        n4 = self.bottom_up4(torch.cat([self.down3(n3), t4], 1))
        n5 = self.bottom_up5(torch.cat([self.down4(n4), p5], 1))
        return [self._sgb(lv, f, not backbone) for lv, f in zip((3, 4, 5), (n3, n4, n5), strict=True)]

    def _sgb(self, level: int, x: torch.Tensor, here: bool) -> torch.Tensor:
        """``x`` through the level's sparse global block when it has one and ``here`` is its placement."""
        key = f"P{level}"
        return self.sgb[key](x) if here and key in self.sgb else x  # the gated residual is inside the block

    def forward(self, images: torch.Tensor) -> HSVDetOutput:
        if images.dim() != 4 or images.shape[1] != 3:
            raise ValueError(f"HSVDet expects images (B, 3, H, W), got {tuple(images.shape)}")
        box, cls = self.head(self.features(images))
        return HSVDetOutput(box, cls, self.config.strides, (int(images.shape[-2]), int(images.shape[-1])),
                            self.config.reg_max)
