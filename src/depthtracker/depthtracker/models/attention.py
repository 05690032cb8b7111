"""Token mixers with a selectable attention kind: ``mha | mqa | gqa | nsa`` (DESIGN.md §4).

All four share one module, :class:`Attention`, so an ablation changes a config string and nothing else:

* ``mha``: ``heads`` key/value heads (multi-head attention, Vaswani et al. 2017);
* ``mqa``: one key/value head shared by every query head (Shazeer 2019);
* ``gqa``: ``kv_heads`` key/value heads, each shared by ``heads / kv_heads`` query heads (Ainslie et al. 2023);
* ``nsa``: vision Native Sparse Attention through :func:`depthtracker.kernels.nsa.vision_nsa` (compressed,
  selected and local branches mixed by per-token, per-head sigmoid gates as in NSA, Yuan et al. 2025), with
  ``kv_heads`` key/value heads. ``backend="auto"`` runs the Triton kernels on CUDA and their naive PyTorch twins
  on CPU. NSA needs the tokens in tile order (:func:`~depthtracker.kernels.nsa.to_tile_order`) and their
  :class:`~depthtracker.kernels.nsa.TileLayout`; a sequence without a layout (the short template + search
  sequence of the tracking head) and any sequence shorter than ``dense_below`` runs dense attention.

The dense kinds use ``F.scaled_dot_product_attention`` (the fused path); :func:`reference_attention` is the
readable explicit-softmax twin the tests compare against.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from depthtracker.kernels.nsa import TileLayout, vision_nsa

__all__ = ["ATTENTION_KINDS", "AttentionConfig", "Attention", "reference_attention"]

ATTENTION_KINDS = ("mha", "mqa", "gqa", "nsa")


@dataclass(frozen=True)
class AttentionConfig:
    """One attention layer. ``kv_heads`` is used by ``gqa`` and ``nsa`` (``mha`` forces ``heads``, ``mqa`` 1)."""

    dim: int = 96  # token width, divisible by heads
    heads: int = 3  # query heads, >= 1
    kind: str = "mha"  # mha | mqa | gqa | nsa
    kv_heads: int = 1  # key/value heads of gqa and nsa; must divide heads
    qk_norm: bool = True  # LayerNorm on q and k per head (stabilises mixed-precision training; ViT-22B)
    nsa_n_select: int = 4  # nsa: KV blocks each query block attends in the selected branch (itself included)
    nsa_tile: int = 8  # nsa: tile side in patches; a block is tile**2 tokens
    nsa_dense_below: int = 1024  # nsa: sequences shorter than this run dense attention (faster at small N)
    backend: str = "auto"  # nsa kernels: auto (Triton on CUDA, naive on CPU) | triton | naive

    def __post_init__(self) -> None:
        if self.kind not in ATTENTION_KINDS:
            raise ValueError(f"AttentionConfig.kind={self.kind!r}: expected one of {ATTENTION_KINDS}")
        for name in ("dim", "heads", "kv_heads", "nsa_n_select", "nsa_tile"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"AttentionConfig.{name}={v!r}: expected an integer >= 1")
        if self.dim % self.heads:
            raise ValueError(f"AttentionConfig.dim={self.dim} must be divisible by heads={self.heads}")
        if self.kind in ("gqa", "nsa") and self.heads % self.kv_heads:
            raise ValueError(f"AttentionConfig.kv_heads={self.kv_heads} must divide heads={self.heads}")
        if self.nsa_dense_below < 0:
            raise ValueError(f"AttentionConfig.nsa_dense_below={self.nsa_dense_below}: expected >= 0")
        if self.backend not in ("auto", "triton", "naive"):
            raise ValueError(f"AttentionConfig.backend={self.backend!r}: expected auto, triton or naive")

    @property
    def n_kv_heads(self) -> int:
        """Key/value heads actually used by ``kind``."""
        return {"mha": self.heads, "mqa": 1}.get(self.kind, self.kv_heads)


def reference_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Explicit non-causal attention in fp32: ``q (B,H,N,D)``, ``k, v (B,Hkv,N,D)`` -> ``(B,H,N,D)`` in q's dtype."""
    g = q.shape[1] // k.shape[1]
    kk = k.float().repeat_interleave(g, dim=1)  # (B, H, N, D): each KV head serves g query heads
    vv = v.float().repeat_interleave(g, dim=1)
    p = torch.softmax(q.float() @ kk.transpose(-1, -2) / math.sqrt(q.shape[-1]), dim=-1)  # (B, H, N, N)
    return (p @ vv).to(q.dtype)


class Attention(nn.Module):
    """Self-attention over ``x (B, N, C)`` -> ``(B, N, C)``; see the module docstring for the kinds.

    ``layout`` (NSA only) describes the token order of ``x``; other kinds ignore it.
    """

    def __init__(self, config: AttentionConfig) -> None:
        super().__init__()
        self.config = config
        c, h, hk = config.dim, config.heads, config.n_kv_heads
        self.head_dim = c // h
        self.q = nn.Linear(c, c)
        self.kv = nn.Linear(c, 2 * hk * self.head_dim)  # fewer KV heads = a smaller projection (the MQA/GQA saving)
        self.proj = nn.Linear(c, c)
        self.q_norm = nn.LayerNorm(self.head_dim) if config.qk_norm else nn.Identity()
        self.k_norm = nn.LayerNorm(self.head_dim) if config.qk_norm else nn.Identity()
        # NSA branch gates per token and head (compressed, selected, local); sigmoid(0) = 0.5 at init.
        self.gate = nn.Linear(c, 3 * h) if config.kind == "nsa" else None

    def forward(self, x: torch.Tensor, layout: TileLayout | None = None) -> torch.Tensor:
        cfg = self.config
        b, n, c = x.shape
        h, hk, d = cfg.heads, cfg.n_kv_heads, self.head_dim
        q = self.q_norm(self.q(x).view(b, n, h, d)).transpose(1, 2)  # (B, H, N, D)
        kv = self.kv(x).view(b, n, 2, hk, d)  # (B, N, 2, Hkv, D)
        k = self.k_norm(kv[:, :, 0]).transpose(1, 2)  # (B, Hkv, N, D)
        v = kv[:, :, 1].transpose(1, 2)  # (B, Hkv, N, D)
        # autocast runs LayerNorm in fp32 while v stays in the autocast dtype: the Triton kernels take one dtype
        q, k = q.to(v.dtype), k.to(v.dtype)
        if self.gate is not None and layout is not None and n >= cfg.nsa_dense_below:
            gates = torch.sigmoid(self.gate(x)).view(b, n, h, 3).transpose(1, 2)  # (B, H, N, 3)
            o = vision_nsa(q, k, v, gates, layout, n_select=cfg.nsa_n_select, dense_below=cfg.nsa_dense_below,
                           backend=cfg.backend)
        else:
            o = F.scaled_dot_product_attention(q, k, v, enable_gqa=hk != h)  # (B, H, N, D)
            if self.gate is not None and self.training:
                # Dense fallback leaves the NSA gate unused; a zero-weighted term keeps it in the graph so that
                # DDP (find_unused_parameters=False) sees a gradient for every parameter on every step.
                o = o + 0.0 * self.gate.weight.sum() + 0.0 * self.gate.bias.sum()
        return self.proj(o.transpose(1, 2).reshape(b, n, c))  # (B, H, N, D) -> (B, N, C)
