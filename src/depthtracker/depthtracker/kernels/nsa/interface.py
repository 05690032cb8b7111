"""Public NSA ops: ``autograd.Function`` around the Triton launchers and functions that dispatch by backend.

``backend="auto"`` runs Triton on CUDA tensors and the naive
PyTorch twin otherwise; see :func:`depthtracker.kernels.resolve_backend`.
"""

from __future__ import annotations

import functools
import math

import torch
import torch.nn.functional as F

from depthtracker.kernels._dispatch import resolve_backend
from depthtracker.kernels.nsa import naive
from depthtracker.kernels.nsa.compose import compose_vision_nsa
from depthtracker.kernels.nsa.index import inverse_block_index, normalize_block_idx, select_blocks
from depthtracker.kernels.nsa.layout import TileLayout


def _kernels():
    # Imported on first use so that the package imports where Triton is absent (CPU installs use the naive path).
    from depthtracker.kernels.nsa import triton as kernels

    return kernels


def _scale(d: int, scale: float | None) -> float:
    return 1.0 / math.sqrt(d) if scale is None else float(scale)


class SelectedAttentionFn(torch.autograd.Function):
    """Triton selected attention; ``block_idx`` is canonicalised once and reused by the backward pass.

    ``inverse``: optional precomputed ``(offsets, qblocks)`` of :func:`inverse_block_index`; when given,
    ``block_idx`` must already be canonical (callers with a fixed pattern skip the sorts, e.g. a dense list).
    """

    @staticmethod
    def forward(ctx, q, k, v, block_idx, block_size: int, scale: float, inverse=None):
        nb = math.ceil(q.shape[2] / block_size)
        if block_idx.device != q.device:
            raise ValueError(f"block_idx is on {block_idx.device}, q on {q.device}")
        idx = normalize_block_idx(block_idx, nb) if inverse is None else block_idx
        o, lse = _kernels().selected_fwd(q, k, v, idx, block_size, scale)
        ctx.save_for_backward(q, k, v, o, lse, idx)
        ctx.block_size, ctx.scale, ctx.inverse = block_size, scale, inverse
        return o

    @staticmethod
    def backward(ctx, do):
        q, k, v, o, lse, idx = ctx.saved_tensors
        offsets, qblocks = ctx.inverse or inverse_block_index(idx, idx.shape[2])
        dq, dk, dv = _kernels().selected_bwd(q, k, v, o, lse, do.contiguous(), idx, offsets, qblocks,
                                             ctx.block_size, ctx.scale)
        return dq, dk, dv, None, None, None, None


def dense_block_index(b: int, h: int, n: int, block_size: int, device) -> tuple[torch.Tensor, tuple]:
    """Canonical ``block_idx`` listing every block, with its inverse index built directly (no sorts)."""
    nb = math.ceil(n / block_size)
    ar = torch.arange(nb, device=device, dtype=torch.int32)
    idx = ar.expand(b, h, nb, nb)
    offsets = torch.arange(b * h * nb + 1, device=device, dtype=torch.int32) * nb
    return idx, (offsets, ar.repeat(b * h * nb))


def selected_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, block_idx: torch.Tensor,
                       block_size: int = 64, scale: float | None = None, *, backend: str = "auto") -> torch.Tensor:
    """Non-causal block-sparse attention over listed KV blocks (DESIGN.md §3).

    Args:
        q: ``(B, H, N, D)``; k, v: ``(B, Hkv, N, D)`` with ``H % Hkv == 0`` (query head ``h`` uses KV head
            ``h // (H // Hkv)``); fp16, bf16 or fp32 (the Triton path; the naive path takes any float).
        block_idx: int ``(B, Hkv, ceil(N / block_size), S)``: for every query block (``block_size`` consecutive
            tokens; the last one partial when ``block_size`` does not divide N) the KV block ids it attends to,
            shared by its queries and by the query heads of the KV head. ``-1`` is an empty slot; ids outside
            ``[0, ceil(N / block_size))`` count as empty; a duplicated id is attended once (the list is a set).
            The last KV block is partial when N is ragged; its missing keys are masked.
        block_size: tokens per block (Triton: a power of two >= 16).
        scale: softmax scale, default ``1 / sqrt(D)``.
        backend: ``"auto" | "triton" | "naive"``.

    Returns:
        ``(B, H, N, D)`` in q's dtype; a query block with no valid block gets zeros. Differentiable in q, k, v.
    """
    if resolve_backend(backend, q, k, v, op="selected_attention") == "naive":
        return naive.naive_selected_attention(q, k, v, block_idx, block_size, scale)
    return SelectedAttentionFn.apply(q.contiguous(), k.contiguous(), v.contiguous(), block_idx, block_size,
                                     _scale(q.shape[-1], scale))


def compressed_attention(q: torch.Tensor, k_cmp: torch.Tensor, v_cmp: torch.Tensor, block_size: int = 64,
                         scale: float | None = None, *, backend: str = "auto") -> tuple[torch.Tensor, torch.Tensor]:
    """Queries against one compressed key/value per block, plus the block scores that drive selection.

    Args:
        q: ``(B, H, N, D)``; k_cmp, v_cmp: ``(B, Hkv, M, D)``, one key/value per KV block (e.g.
            :func:`~depthtracker.kernels.nsa.compose.compress_blocks`), ``H % Hkv == 0``.
        block_size: query block size for the scores.

    Returns:
        ``out (B, H, N, D)`` (differentiable in q, k_cmp, v_cmp) and fp32 ``block_scores (B, Hkv, ceil(N /
        block_size), M)``: the softmax mass that query block i puts on compressed block j, summed over the
        block's queries and the query heads of the KV head (not differentiable).

    Triton path: ``out`` through ``F.scaled_dot_product_attention`` (M is N / block_size keys, so the fused
    PyTorch kernels and their backward already pay); the block scores through a Triton kernel that never
    writes the (N, M) probability matrix.
    """
    if resolve_backend(backend, q, k_cmp, v_cmp, op="compressed_attention") == "naive":
        return naive.naive_compressed_attention(q, k_cmp, v_cmp, block_size, scale)
    sm = _scale(q.shape[-1], scale)
    scores = _kernels().compressed_block_scores(q.detach().contiguous(), k_cmp.detach().contiguous(), block_size, sm)
    out = F.scaled_dot_product_attention(q, k_cmp, v_cmp, scale=sm, enable_gqa=q.shape[1] != k_cmp.shape[1])
    return out, scores


def vision_nsa(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, gates: torch.Tensor, layout: TileLayout,
               n_select: int = 16, k_cmp: torch.Tensor | None = None, v_cmp: torch.Tensor | None = None,
               scale: float | None = None, dense_below: int = 4096, *, backend: str = "auto") -> torch.Tensor:
    """Vision Native Sparse Attention: gated compressed + selected + local branches (DESIGN.md §4).

    Args:
        q: ``(B, H, N, D)``; k, v: ``(B, Hkv, N, D)``, tokens in :mod:`~depthtracker.kernels.nsa.layout` tile
            order with ``N == layout.n_tokens`` (use :func:`~depthtracker.kernels.nsa.to_tile_order`).
        gates: broadcastable to ``(B, H, N, 3)``: weights of the compressed, selected and local branches (e.g. a
            sigmoid of a per-token linear, or per-head constants ``(1, H, 1, 3)``).
        layout: the token layout; ``block_size = layout.tile ** 2``.
        n_select: KV blocks per query block in the selected branch (the block itself included).
        k_cmp, v_cmp: compressed keys/values ``(B, Hkv, layout.n_blocks, D)``; default: block means of k, v.
        dense_below: below this many tokens, dense SDPA over all tokens replaces the three branches.

    Returns:
        ``(B, H, N, D)`` in q's dtype. Differentiable in q, k, v, gates (and k_cmp, v_cmp); selection is not.
    """
    path = resolve_backend(backend, q, k, v, op="vision_nsa")
    if path == "naive":
        return naive.naive_vision_nsa(q, k, v, gates, layout, n_select, k_cmp, v_cmp, scale, dense_below)
    out = compose_vision_nsa(
        q, k, v, gates, layout, n_select, k_cmp, v_cmp, scale, dense_below,
        dense=lambda q_, k_, v_: F.scaled_dot_product_attention(q_, k_, v_, scale=scale,
                                                                enable_gqa=q_.shape[1] != k_.shape[1]),
        compressed=functools.partial(compressed_attention, backend=path),
        select=select_blocks, selected=functools.partial(selected_attention, backend=path))
    return out.to(q.dtype)
