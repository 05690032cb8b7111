"""Block-index plumbing for selected attention: canonical form, the block -> queries inverse index, top-n.

``block_idx (B, Hkv, NQB, S)`` int lists, per query block, the KV blocks its queries attend to. Canonical form
(:func:`normalize_block_idx`): ids outside ``[0, NKB)`` become ``-1`` (empty slot), duplicates are dropped (a
block listed twice is attended once: the list is a set), each row's valid ids ascending, then the empty slots.
"""

from __future__ import annotations

import torch


def normalize_block_idx(block_idx: torch.Tensor, n_kv_blocks: int) -> torch.Tensor:
    """Canonical int32 copy of ``block_idx``: out-of-range ids and duplicates -> -1, valid ids first, ascending."""
    idx = block_idx.to(torch.int32)
    idx = torch.where((idx >= 0) & (idx < n_kv_blocks), idx, -1)
    idx, _ = torch.sort(idx, dim=-1)  # duplicates become neighbours
    dup = torch.zeros_like(idx, dtype=torch.bool)
    dup[..., 1:] = idx[..., 1:] == idx[..., :-1]
    idx = torch.where(dup | (idx < 0), n_kv_blocks, idx)
    idx, _ = torch.sort(idx, dim=-1)  # valid ids first, ascending; empty slots last
    return torch.where(idx == n_kv_blocks, -1, idx).contiguous()


def inverse_block_index(block_idx: torch.Tensor, n_kv_blocks: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Block -> query-blocks index of a canonical ``block_idx (B, Hkv, NQB, S)``, in CSR form.

    Returns ``(offsets, qblocks)``: int32 ``offsets (B * Hkv * NKB + 1,)`` and int32 ``qblocks (B*Hkv*NQB*S,)``;
    the query blocks that attend KV block ``j`` of batch ``b``, head ``h`` are
    ``qblocks[offsets[r]:offsets[r + 1]]`` with ``r = (b * Hkv + h) * NKB + j``, ascending. Built with a sort
    and a searchsorted on the device (no host sync), so the dK/dV kernel needs no atomics.
    """
    b, hk, nqb, s = block_idx.shape
    dev = block_idx.device
    idx = block_idx.long()
    row = torch.arange(b * hk, device=dev).view(b, hk, 1, 1)
    qb = torch.arange(nqb, device=dev).view(1, 1, nqb, 1)
    sentinel = b * hk * n_kv_blocks * nqb
    key = torch.where(idx >= 0, (row * n_kv_blocks + idx) * nqb + qb, sentinel)  # (B, Hkv, NQB, S)
    key, _ = torch.sort(key.flatten())
    bounds = torch.arange(b * hk * n_kv_blocks + 1, device=dev) * nqb
    offsets = torch.searchsorted(key, bounds).to(torch.int32)
    return offsets, (key % nqb).to(torch.int32)


def select_blocks(block_scores: torch.Tensor, n_select: int) -> torch.Tensor:
    """Top-``n_select`` KV blocks per query block from compressed-attention block scores.

    ``block_scores (B, Hkv, NQB, NKB)`` (NQB == NKB: self-attention over one token sequence, query block ``i``
    and KV block ``i`` are the same tile). The query block itself is always selected. Returns int32
    ``(B, Hkv, NQB, n_select)``: ids ascending, ``-1`` padding when ``n_select > NKB``. Not differentiable.
    """
    b, hk, nqb, nkb = block_scores.shape
    if nqb != nkb:
        raise ValueError(f"block_scores has {nqb} query blocks and {nkb} KV blocks: expected equal counts")
    if n_select < 1:
        raise ValueError(f"n_select={n_select}: expected >= 1")
    scores = block_scores.detach().float().clone()
    diag = torch.arange(nqb, device=scores.device)
    scores[..., diag, diag] = float("inf")  # the query block itself always wins
    n = min(n_select, nkb)
    ids = torch.topk(scores, n, dim=-1).indices.to(torch.int32)
    ids, _ = torch.sort(ids, dim=-1)
    if n < n_select:
        ids = torch.cat([ids, ids.new_full((b, hk, nqb, n_select - n), -1)], dim=-1)
    return ids.contiguous()
