"""Vision NSA composition (DESIGN.md §4), shared by the fast and naive paths: they differ only in the branch ops.

Three branches over one token sequence in :mod:`.layout` tile order, mixed by per-head gates:
(1) compressed: every query against one mean-pooled key/value per block (unless ``k_cmp``/``v_cmp`` given);
(2) selected: each query block attends to its top-``n_select`` blocks by compressed attention mass, shared by
the block's queries and by the query heads of a KV head (the query block itself always among them);
(3) local: the 3x3 tile neighbourhood in the same camera. Below ``dense_below`` tokens: dense attention.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F

from depthtracker.kernels.nsa.layout import TileLayout, local_block_idx


def compress_blocks(x: torch.Tensor, block_size: int) -> torch.Tensor:
    """Mean of each block's tokens: ``(B, h, N, D)`` -> ``(B, h, ceil(N / block_size), D)``; the ragged last
    block averages its valid tokens only. Differentiable."""
    b, h, n, d = x.shape
    nb = math.ceil(n / block_size)
    pad = nb * block_size - n
    sums = F.pad(x.float(), (0, 0, 0, pad)).view(b, h, nb, block_size, d).sum(3)  # (B, h, nb, D)
    counts = torch.full((nb,), float(block_size), device=x.device)
    counts[-1] = block_size - pad
    return (sums / counts.view(1, 1, nb, 1)).to(x.dtype)


def compose_vision_nsa(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, gates: torch.Tensor, layout: TileLayout,
                       n_select: int, k_cmp: torch.Tensor | None, v_cmp: torch.Tensor | None, scale: float | None,
                       dense_below: int, *, dense: Callable, compressed: Callable, select: Callable,
                       selected: Callable) -> torch.Tensor:
    """``q (B,H,N,D)``, ``k, v (B,Hkv,N,D)``, ``gates`` broadcastable to ``(B,H,N,3)`` (compressed, selected,
    local) -> ``(B,H,N,D)``. Dense attention (gates unused) when ``N < dense_below``."""
    b, h, n, d = q.shape
    hk = k.shape[1]
    if n != layout.n_tokens:
        raise ValueError(f"N={n} tokens, but layout {layout} has {layout.n_tokens} (see to_tile_order)")
    if gates.shape[-1] != 3:
        raise ValueError(f"gates {tuple(gates.shape)}: expected last dim 3 (compressed, selected, local)")
    if n < dense_below:
        return dense(q, k, v)
    bs = layout.block_size
    if (k_cmp is None) != (v_cmp is None):
        raise ValueError("give both k_cmp and v_cmp, or neither (mean-pooled blocks)")
    if k_cmp is None:
        k_cmp, v_cmp = compress_blocks(k, bs), compress_blocks(v, bs)
    o_cmp, scores = compressed(q, k_cmp, v_cmp, bs, scale)
    o_sel = selected(q, k, v, select(scores, n_select), bs, scale)
    nb = layout.n_blocks
    loc = local_block_idx(layout, device=q.device)
    o_loc = selected(q, k, v, loc.view(1, 1, nb, -1).expand(b, hk, nb, loc.shape[1]).contiguous(), bs, scale)
    gates = gates.to(o_cmp.dtype)
    return gates[..., 0:1] * o_cmp + gates[..., 1:2] * o_sel + gates[..., 2:3] * o_loc
