"""HSV-DET's sparse global block with the seed's ablation switches, on top of ``kernels.sparse_global``.

:class:`SparseGlobalLayer` subclasses the kernel package's ``SparseGlobalBlockGated`` (same parameters and names:
``qkv``, ``proj``, ``q_norm``, ``k_norm``, ``alpha``) and adds:

* **selection** of the top-k tokens: ``sq_l2`` (squared L2 norm, the seed's rule and the kernel's), ``l2`` (L2 norm;
  the square root is monotonic, so it ranks tokens exactly as ``sq_l2`` does: kept as the seed lists it, an ablation
  row that must match ``sq_l2``), ``random`` (uniform; seeded per call in eval mode so inference is repeatable);
* **gating**: ``learnable`` (per-channel ``alpha``, zero at init: the block starts as the identity), ``fixed``
  (constant ``gate_value``), ``none`` (``x + block(x)``).

The residual is added once, inside the block: ``out = x + g * block(x)`` with ``block(x)`` zero on unselected tokens.

Paths: ``backend="auto"`` runs the fused Triton kernel (``sparse_global_attention``) on CUDA for the norm-based
selections, and otherwise :meth:`SparseGlobalLayer.batched`, a vectorised PyTorch path with the same math as the
kernel package's ``naive_sparse_global_attention`` (which loops over images; a test checks the two agree). The batched
path is also what ONNX export traces (TopK, GatherElements, ScatterElements, no Python loop over the batch).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from depthtracker.kernels.sparse_global import SparseGlobalBlockGated, SparseGlobalConfig, sparse_global_attention

__all__ = ["SparseGlobalLayer"]

_RANDOM_EVAL_SEED = 0  # eval-mode random selection draws from this seed on every call (repeatable inference)


class SparseGlobalLayer(SparseGlobalBlockGated):
    """Gated sparse global attention over a ``(B, C, H, W)`` feature map -> same shape and dtype.

    Args:
        dim: channels C; heads: attention heads (``dim % heads == 0``).
        topk: tokens attended per image; None = all tokens (no selection, dense attention among all).
        selection: ``"random" | "l2" | "sq_l2"``; gating: ``"none" | "fixed" | "learnable"``.
        gate_value: the constant gate of ``gating="fixed"``.
        backend: ``"auto"`` (Triton on CUDA, batched PyTorch elsewhere), ``"triton"`` or ``"naive"`` (batched).
    """

    def __init__(self, dim: int, heads: int, topk: int | None, selection: str = "sq_l2", gating: str = "learnable",
                 gate_value: float = 0.5, backend: str = "auto") -> None:
        # the kernel config needs an int: "all tokens" is resolved per call (topk_all) and never selects
        super().__init__(SparseGlobalConfig(dim=dim, heads=heads, topk=topk or 1), backend=backend)
        self.topk_all = topk is None
        self.selection = selection
        self.gating = gating
        if gating != "learnable":
            # a constant gate is a buffer: the same alpha tensor feeds every path, but the optimiser never sees it
            del self.alpha
            self.register_buffer("alpha", torch.full((dim,), 1.0 if gating == "none" else gate_value),
                                 persistent=False)

    def num_selected(self, n: int) -> int:
        return n if self.topk_all else min(self.config.topk, n)

    def select(self, x: torch.Tensor, k: int) -> torch.Tensor:
        """Indices ``(B, k)`` int64 of the selected tokens of ``x (B, N, C)`` (not differentiable)."""
        xd = x.detach().float()
        if self.selection == "random":
            if self.training:
                score = torch.rand(xd.shape[:2], device=x.device)  # (B, N)
            else:
                gen = torch.Generator(device=x.device).manual_seed(_RANDOM_EVAL_SEED)
                score = torch.rand(xd.shape[:2], device=x.device, generator=gen)
        elif self.selection == "l2":
            score = xd.norm(dim=-1)  # (B, N)
        else:
            score = xd.square().sum(-1)  # (B, N) squared L2 norm (the kernel's token energy)
        return torch.topk(score, k, dim=1).indices  # (B, k)

    def batched(self, x: torch.Tensor) -> torch.Tensor:
        """Vectorised PyTorch path: ``x (B, N, C)`` tokens -> ``(B, N, C)``; fp32 LayerNorm on q and k."""
        b, n, c = x.shape
        heads, hd = self.config.heads, c // self.config.heads
        k = self.num_selected(n)
        if k == n:
            xs, idx_c = x, None  # every token selected: skip the gather/scatter (attention is permutation-equivariant)
        else:
            idx_c = self.select(x, k).unsqueeze(-1).expand(b, k, c)  # (B, k, C)
            xs = torch.gather(x, 1, idx_c)  # (B, k, C)
        qkv = F.linear(xs, self.qkv.weight, self.qkv.bias).view(b, k, 3, heads, hd)
        qkv = qkv.permute(2, 0, 3, 1, 4)  # (3, B, heads, k, hd)
        q = self.q_norm(qkv[0].float())  # fp32 LayerNorm, as the kernel
        kk = self.k_norm(qkv[1].float())
        o = F.scaled_dot_product_attention(q, kk, qkv[2].float())  # (B, heads, k, hd), scale hd^-0.5
        y = self.proj(o.to(x.dtype).transpose(1, 2).reshape(b, k, c))  # (B, k, C)
        gated = (self.alpha * y).to(x.dtype)
        if idx_c is None:
            return x + gated
        # selected indices are distinct, so writing x_sel + g*y at them equals the kernel's scatter_add and exports
        # as a plain ScatterElements
        return x.scatter(1, idx_c, xs + gated)  # (B, N, C)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        tokens = x.flatten(2).transpose(1, 2)  # (B, H*W, C)
        exporting = torch.onnx.is_in_onnx_export() or torch.jit.is_tracing()
        fused = (not exporting and self.selection != "random" and not self.topk_all
                 and (self.backend == "triton" or (self.backend == "auto" and x.is_cuda)))
        if fused:
            out = sparse_global_attention(tokens, self.qkv.weight, self.qkv.bias, self.proj.weight, self.proj.bias,
                                          self.q_norm.weight, self.q_norm.bias, self.k_norm.weight, self.k_norm.bias,
                                          self.alpha, self.config.topk, self.config.heads, self.config.eps,
                                          backend=self.backend)
        else:
            out = self.batched(tokens)
        # contiguous NCHW again: a channels-last view would send the next convolutions down other kernels (and
        # break the bit-exact identity at alpha = 0)
        return out.transpose(1, 2).reshape(b, c, h, w).contiguous()  # (B, C, H, W)
