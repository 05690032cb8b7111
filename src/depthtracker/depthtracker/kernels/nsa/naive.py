"""Plain-PyTorch twins of the NSA ops: the reference for tests and the CPU path. Loops, fp32 upcast.

Each ``naive_*`` function has the signature of its fast twin in :mod:`.interface` (less ``backend``). The
``*_math`` functions take the compute dtype explicitly: tests run them in fp64 (reference) and in the input
dtype (the "plain PyTorch" error that the 2x tolerance rule scales).
"""

from __future__ import annotations

import math

import torch

from depthtracker.kernels.nsa.compose import compose_vision_nsa
from depthtracker.kernels.nsa.layout import TileLayout


def _upcast(dtype: torch.dtype) -> torch.dtype:
    return torch.float64 if dtype == torch.float64 else torch.float32


def _scale(d: int, scale: float | None) -> float:
    return 1.0 / math.sqrt(d) if scale is None else float(scale)


def selected_attention_math(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, block_idx: torch.Tensor,
                            block_size: int, scale: float | None, compute_dtype: torch.dtype) -> torch.Tensor:
    """Selected attention by explicit loops over (batch, KV head, query block), computed in ``compute_dtype``."""
    b, h, n, d = q.shape
    hk = k.shape[1]
    if h % hk or k.shape != (b, hk, n, d) or v.shape != k.shape:
        raise ValueError(f"q {tuple(q.shape)}, k {tuple(k.shape)}, v {tuple(v.shape)}: need H % Hkv == 0")
    g = h // hk
    nb = math.ceil(n / block_size)
    if tuple(block_idx.shape[:3]) != (b, hk, nb):
        raise ValueError(f"block_idx {tuple(block_idx.shape)}: expected ({b}, {hk}, {nb}, S)")
    sm = _scale(d, scale)
    ids_all = block_idx.tolist()
    per_batch = []
    for bi in range(b):
        per_head = []
        for hi in range(hk):
            qg = q[bi, hi * g:(hi + 1) * g].to(compute_dtype)  # (G, N, D)
            kk = k[bi, hi].to(compute_dtype)  # (N, D)
            vv = v[bi, hi].to(compute_dtype)
            rows = []
            for i in range(nb):
                qi = qg[:, i * block_size:(i + 1) * block_size]  # (G, <=bs, D)
                ids = sorted({j for j in ids_all[bi][hi][i] if 0 <= j < nb})  # a set: duplicates and -1 dropped
                if not ids:
                    rows.append(torch.zeros_like(qi))  # no valid block: zeros, not NaN
                    continue
                tok = torch.cat([torch.arange(j * block_size, min((j + 1) * block_size, n)) for j in ids])
                p = torch.softmax(qi @ kk[tok].T * sm, dim=-1)  # (G, <=bs, T)
                rows.append(p @ vv[tok])
            per_head.append(torch.cat(rows, dim=1))  # (G, N, D)
        per_batch.append(torch.cat(per_head, dim=0))  # (H, N, D)
    return torch.stack(per_batch)  # (B, H, N, D)


def naive_selected_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, block_idx: torch.Tensor,
                             block_size: int = 64, scale: float | None = None) -> torch.Tensor:
    """Reference :func:`~depthtracker.kernels.nsa.selected_attention` (fp32 compute, output in q's dtype)."""
    return selected_attention_math(q, k, v, block_idx, block_size, scale, _upcast(q.dtype)).to(q.dtype)


def compressed_attention_math(q: torch.Tensor, k_cmp: torch.Tensor, v_cmp: torch.Tensor, block_size: int,
                              scale: float | None, compute_dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """Queries against compressed keys, explicit softmax in ``compute_dtype``; returns (out, fp32 block scores)."""
    b, h, n, d = q.shape
    hk, m = k_cmp.shape[1], k_cmp.shape[2]
    if h % hk or k_cmp.shape != (b, hk, m, d) or v_cmp.shape != k_cmp.shape:
        raise ValueError(f"q {tuple(q.shape)}, k_cmp {tuple(k_cmp.shape)}, v_cmp {tuple(v_cmp.shape)} do not match")
    g = h // hk
    kc = k_cmp.to(compute_dtype).repeat_interleave(g, dim=1)  # (B, H, M, D)
    vc = v_cmp.to(compute_dtype).repeat_interleave(g, dim=1)
    p = torch.softmax(q.to(compute_dtype) @ kc.transpose(-1, -2) * _scale(d, scale), dim=-1)  # (B, H, N, M)
    out = p @ vc
    nb = math.ceil(n / block_size)
    scores = torch.zeros(b, hk, nb, m, dtype=torch.float32, device=q.device)
    pd = p.detach().float().view(b, hk, g, n, m)
    for i in range(nb):
        scores[:, :, i] = pd[:, :, :, i * block_size:(i + 1) * block_size].sum(dim=(2, 3))
    return out, scores


def naive_compressed_attention(q: torch.Tensor, k_cmp: torch.Tensor, v_cmp: torch.Tensor, block_size: int = 64,
                               scale: float | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Reference :func:`~depthtracker.kernels.nsa.compressed_attention`."""
    out, scores = compressed_attention_math(q, k_cmp, v_cmp, block_size, scale, _upcast(q.dtype))
    return out.to(q.dtype), scores


def naive_select_blocks(block_scores: torch.Tensor, n_select: int) -> torch.Tensor:
    """Reference :func:`~depthtracker.kernels.nsa.select_blocks`: per-row sort, ties to the lower block id."""
    b, hk, nqb, nkb = block_scores.shape
    if nqb != nkb or n_select < 1:
        raise ValueError(f"block_scores {tuple(block_scores.shape)}, n_select={n_select}: need NQB == NKB, n >= 1")
    sc = block_scores.detach().float().tolist()
    out = torch.full((b, hk, nqb, n_select), -1, dtype=torch.int32)
    for bi in range(b):
        for hi in range(hk):
            for i in range(nqb):
                order = sorted(range(nkb), key=lambda j, row=sc[bi][hi][i], i=i: (j != i, -row[j], j))
                ids = sorted(order[:n_select])
                out[bi, hi, i, : len(ids)] = torch.tensor(ids, dtype=torch.int32)
    return out.to(block_scores.device)


def dense_attention_math(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, scale: float | None,
                         compute_dtype: torch.dtype) -> torch.Tensor:
    """Full non-causal attention with GQA, explicit softmax in ``compute_dtype``."""
    g = q.shape[1] // k.shape[1]
    kk = k.to(compute_dtype).repeat_interleave(g, dim=1)
    vv = v.to(compute_dtype).repeat_interleave(g, dim=1)
    p = torch.softmax(q.to(compute_dtype) @ kk.transpose(-1, -2) * _scale(q.shape[-1], scale), dim=-1)
    return p @ vv


def naive_vision_nsa(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, gates: torch.Tensor, layout: TileLayout,
                     n_select: int = 16, k_cmp: torch.Tensor | None = None, v_cmp: torch.Tensor | None = None,
                     scale: float | None = None, dense_below: int = 4096) -> torch.Tensor:
    """Reference :func:`~depthtracker.kernels.nsa.vision_nsa`, composed from the naive branches."""
    ct = _upcast(q.dtype)
    out = compose_vision_nsa(
        q, k, v, gates, layout, n_select, k_cmp, v_cmp, scale, dense_below,
        dense=lambda q_, k_, v_: dense_attention_math(q_, k_, v_, scale, ct),
        compressed=naive_compressed_attention, select=naive_select_blocks, selected=naive_selected_attention)
    return out.to(q.dtype)
