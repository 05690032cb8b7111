"""DepthTrack: a multi-camera Mixture-of-Experts transformer with depth and single-target heads (DESIGN.md §4).

Two token sequences share one backbone (pre-norm blocks: attention of the configured kind, then a MoE FFN):

* **depth**: the patch tokens of all V cameras of a rig in one sequence, each token carrying its camera
  embedding (per-patch rays, :mod:`.embed`), so attention can relate views (stereo parallax, overlap). With
  ``attention="nsa"`` the sequence is in NSA tile order (one block = one ``tile x tile`` patch tile of one
  camera); otherwise camera-major row-major. The MoE routes with the depth router.
* **single target** (one-stream, as OSTrack): template tokens joined to search tokens, each with a learned
  segment embedding; the MoE routes with the tracking router (task-conditioned routing, M3ViT).

Usage::

    model = DepthTrack(DepthTrackConfig.from_preset("edge"))
    out = model(images, intrinsics, extrinsics, template=t, search=s)
    out.log_depth   # (B, V, H, W) natural log of metric depth (metres), network-input resolution
    out.sot         # SOTMaps over the search crop (see heads.SOTMaps)
    out.aux_loss    # scalar MoE load-balance loss summed over layers and sequences
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn

from depthtracker.kernels.nsa import TileLayout, from_tile_order, to_tile_order
from depthtracker.models.attention import Attention
from depthtracker.models.depthtrack.config import TASK_DEPTH, TASK_SOT, DepthTrackConfig
from depthtracker.models.depthtrack.embed import CameraEmbed, PatchEmbed, check_cameras, patch_rays
from depthtracker.models.depthtrack.heads import DepthHead, SOTHead, SOTMaps
from depthtracker.models.moe import MoEFFN

__all__ = ["Block", "DepthTrack", "DepthTrackOutput"]


class DepthTrackOutput(NamedTuple):
    """``log_depth`` (B, V, H, W) float32 log-metres or None; ``sot`` :class:`SOTMaps` or None; ``aux_loss``
    scalar. ``depth`` is ``exp(log_depth)`` in metres."""

    log_depth: torch.Tensor | None
    sot: SOTMaps | None
    aux_loss: torch.Tensor

    @property
    def depth(self) -> torch.Tensor | None:
        return None if self.log_depth is None else self.log_depth.exp()


class Block(nn.Module):
    """Pre-norm transformer block: ``x + attn(norm(x))``, then ``x + moe(norm(x))``. Returns ``(x, aux_loss)``."""

    def __init__(self, config: DepthTrackConfig) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(config.dim)
        self.attn = Attention(config.attention_config())
        self.norm2 = nn.LayerNorm(config.dim)
        self.moe = MoEFFN(config.moe_config())

    def forward(self, x: torch.Tensor, layout: TileLayout | None, task: int) -> tuple[torch.Tensor, torch.Tensor]:
        x = x + self.attn(self.norm1(x), layout)
        m = self.moe(self.norm2(x), task)
        return x + m.y, m.aux_loss


class DepthTrack(nn.Module):
    """See the module docstring. ``config`` rebuilds it (checkpoints store it in their sidecar)."""

    def __init__(self, config: DepthTrackConfig | None = None) -> None:
        super().__init__()
        self.config = config = config if config is not None else DepthTrackConfig()
        self.patch_embed = PatchEmbed(config.dim, config.patch)
        self.camera_embed = CameraEmbed(config.dim)
        self.segment = nn.Parameter(torch.zeros(2, config.dim))  # template, search
        nn.init.normal_(self.segment, std=0.02)
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.depth))
        self.norm = nn.LayerNorm(config.dim)
        self.depth_head = DepthHead(config.dim, config.patch, config.refine_channels, config.min_depth,
                                    config.max_depth)
        self.sot_head = SOTHead(config.dim, config.head_channels)

    def _task(self, task: int) -> int:
        return task if self.config.task_routers else 0

    def _backbone(self, x: torch.Tensor, layout: TileLayout | None, task: int) -> tuple[torch.Tensor, torch.Tensor]:
        aux = x.new_zeros((), dtype=torch.float32)
        for blk in self.blocks:
            x, a = blk(x, layout, self._task(task))
            aux = aux + a
        return self.norm(x), aux

    def forward_depth(self, images: torch.Tensor, intrinsics: torch.Tensor,
                      extrinsics: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``images (B, V, 3, H, W)`` float RGB in [0, 1]; ``intrinsics (B, V, 3, 3)`` in input pixels;
        ``extrinsics (B, V, 4, 4)`` T_world_cam. Returns ``(log_depth (B, V, H, W), aux_loss)``."""
        check_cameras(images, intrinsics, extrinsics)
        b, v, _, h, w = images.shape
        p = self.config.patch
        flat = images.reshape(b * v, 3, h, w)
        grid = self.patch_embed(flat)  # (B*V, hp, wp, C)
        hp, wp, c = grid.shape[1:]
        grid = grid.view(b, v, hp, wp, c) + self.camera_embed(patch_rays(intrinsics, extrinsics, hp, wp, p))
        layout = None
        if self.config.attention == "nsa":
            tokens, layout = to_tile_order(grid, self.config.nsa_tile)  # (B, layout.n_tokens, C)
        else:
            tokens = grid.reshape(b, v * hp * wp, c)  # camera-major, row-major
        tokens, aux = self._backbone(tokens, layout, TASK_DEPTH)
        grid = from_tile_order(tokens, layout) if layout is not None else tokens.view(b, v, hp, wp, c)
        log_depth = self.depth_head(grid.reshape(b * v, hp, wp, c), flat)  # (B*V, 1, H, W)
        return log_depth.view(b, v, h, w), aux

    def forward_sot(self, template: torch.Tensor, search: torch.Tensor) -> tuple[SOTMaps, torch.Tensor]:
        """``template (B, 3, St, St)``, ``search (B, 3, Ss, Ss)`` float RGB in [0, 1] -> ``(SOTMaps, aux_loss)``."""
        if template.dim() != 4 or search.dim() != 4 or template.shape[0] != search.shape[0]:
            raise ValueError(f"template {tuple(template.shape)} and search {tuple(search.shape)} must be "
                             "(B, 3, H, W) with the same B")
        t = self.patch_embed(template) + self.segment[0]  # (B, th, tw, C)
        s = self.patch_embed(search) + self.segment[1]  # (B, sh, sw, C)
        b, sh, sw, c = s.shape
        seq = torch.cat([t.reshape(b, -1, c), s.reshape(b, -1, c)], dim=1)  # (B, Nt + Ns, C)
        seq, aux = self._backbone(seq, None, TASK_SOT)
        return self.sot_head(seq[:, -sh * sw:].reshape(b, sh, sw, c)), aux

    def forward(self, images: torch.Tensor | None = None, intrinsics: torch.Tensor | None = None,
                extrinsics: torch.Tensor | None = None, template: torch.Tensor | None = None,
                search: torch.Tensor | None = None) -> DepthTrackOutput:
        """Depth when ``images`` (with ``intrinsics``, ``extrinsics``) is given, tracking when ``template`` and
        ``search`` are; both in one call during training (one forward per step, as DDP requires)."""
        if images is None and template is None:
            raise ValueError("DepthTrack needs images (depth) and/or template + search (tracking)")
        aux = torch.zeros((), device=self.segment.device)
        log_depth = sot = None
        if images is not None:
            if intrinsics is None or extrinsics is None:
                raise ValueError("depth needs intrinsics and extrinsics beside the images")
            log_depth, a = self.forward_depth(images, intrinsics, extrinsics)
            aux = aux + a
        if template is not None:
            if search is None:
                raise ValueError("tracking needs a search crop beside the template")
            sot, a = self.forward_sot(template, search)
            aux = aux + a
        return DepthTrackOutput(log_depth, sot, aux)
