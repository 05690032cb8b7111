"""Vision token layout for NSA: each camera's patch grid ordered tile by tile.

One attention block of ``block_size = tile**2`` tokens is one ``tile x tile`` patch tile of one camera
(DESIGN.md §4: 64-token blocks are 8x8 tiles). Token order, outermost first::

    camera -> tile row -> tile column -> patch row inside the tile -> patch column inside the tile

so block ``j = (cam * tiles_h + ty) * tiles_w + tx`` holds the tokens ``j * block_size ... (j + 1) * block_size - 1``.
A patch grid whose height or width is not a multiple of ``tile`` is zero-padded at the bottom and right before
ordering (as Swin pads its windows); the padding tokens take part in attention like any other token and are
cropped again by :func:`from_tile_order`. The padding is the caller's token values (zeros before projection),
so a model sees it as a fixed border it can learn to ignore.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class TileLayout:
    """Token layout of ``cams`` cameras with an ``hp x wp`` patch grid each, cut into ``tile x tile`` tiles."""

    cams: int  # number of cameras in the joint sequence
    hp: int  # patch rows per camera (image height / patch size)
    wp: int  # patch columns per camera
    tile: int = 8  # tile side in patches; block_size = tile**2 tokens (64 by default)

    def __post_init__(self) -> None:
        for name in ("cams", "hp", "wp", "tile"):
            if getattr(self, name) < 1:
                raise ValueError(f"TileLayout.{name}={getattr(self, name)}: expected >= 1")

    @property
    def tiles_h(self) -> int:
        return math.ceil(self.hp / self.tile)

    @property
    def tiles_w(self) -> int:
        return math.ceil(self.wp / self.tile)

    @property
    def block_size(self) -> int:
        return self.tile * self.tile

    @property
    def n_blocks(self) -> int:
        return self.cams * self.tiles_h * self.tiles_w

    @property
    def n_tokens(self) -> int:
        """Sequence length after padding: ``n_blocks * block_size``."""
        return self.n_blocks * self.block_size


def to_tile_order(x: torch.Tensor, tile: int = 8) -> tuple[torch.Tensor, TileLayout]:
    """Permute a patch grid ``x (B, cams, Hp, Wp, C)`` into tile order: returns ``(B, layout.n_tokens, C)``."""
    if x.dim() != 5:
        raise ValueError(f"x has shape {tuple(x.shape)}: expected (B, cams, Hp, Wp, C)")
    b, cams, hp, wp, c = x.shape
    layout = TileLayout(cams, hp, wp, tile)
    th, tw = layout.tiles_h, layout.tiles_w
    x = F.pad(x, (0, 0, 0, tw * tile - wp, 0, th * tile - hp))  # (B, cams, th*tile, tw*tile, C)
    x = x.view(b, cams, th, tile, tw, tile, c).permute(0, 1, 2, 4, 3, 5, 6)  # (B, cams, th, tw, tile, tile, C)
    return x.reshape(b, layout.n_tokens, c), layout


def from_tile_order(tokens: torch.Tensor, layout: TileLayout) -> torch.Tensor:
    """Inverse of :func:`to_tile_order`: ``(B, layout.n_tokens, C)`` -> ``(B, cams, Hp, Wp, C)``, padding cropped."""
    b, n, c = tokens.shape
    if n != layout.n_tokens:
        raise ValueError(f"tokens have N={n}, layout {layout} needs N={layout.n_tokens}")
    t, th, tw = layout.tile, layout.tiles_h, layout.tiles_w
    x = tokens.view(b, layout.cams, th, tw, t, t, c).permute(0, 1, 2, 4, 3, 5, 6)  # (B, cams, th, t, tw, t, C)
    x = x.reshape(b, layout.cams, th * t, tw * t, c)
    return x[:, :, : layout.hp, : layout.wp]


def local_block_idx(layout: TileLayout, radius: int = 1, device: torch.device | str | None = None) -> torch.Tensor:
    """KV blocks of the ``(2r+1) x (2r+1)`` tile neighbourhood of every tile, within its own camera.

    Returns int32 ``(n_blocks, (2 * radius + 1) ** 2)``; row ``j`` lists block ids in row-major neighbourhood
    order (the tile itself in the centre), ``-1`` where the neighbour falls outside the camera's tile grid.
    """
    if radius < 0:
        raise ValueError(f"radius={radius}: expected >= 0")
    th, tw = layout.tiles_h, layout.tiles_w
    cam = torch.arange(layout.cams, device=device).view(-1, 1, 1, 1)
    ty = torch.arange(th, device=device).view(1, -1, 1, 1)
    tx = torch.arange(tw, device=device).view(1, 1, -1, 1)
    d = torch.arange(-radius, radius + 1, device=device)
    dy = d.repeat_interleave(2 * radius + 1).view(1, 1, 1, -1)  # neighbourhood in row-major order
    dx = d.repeat(2 * radius + 1).view(1, 1, 1, -1)
    ny, nx = ty + dy, tx + dx  # (cams, th, tw, K)
    inside = (ny >= 0) & (ny < th) & (nx >= 0) & (nx < tw)
    ids = (cam * th + ny) * tw + nx
    return torch.where(inside, ids, -1).reshape(layout.n_blocks, -1).to(torch.int32)
