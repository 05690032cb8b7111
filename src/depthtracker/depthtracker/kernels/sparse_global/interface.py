"""Public sparse global block (DESIGN.md §4): the function with backend dispatch and the gated module.

Per image: pick the ``topk`` tokens of largest squared L2 norm, attend among them (LayerNorm on q and k in fp32,
softmax in fp32), project, and add back at the same positions: ``out = x + alpha * block(x)``, where
``block(x)`` is zero on the tokens that were not selected. ``alpha = 0`` makes the block an exact identity.

Triton path: token energies in a Triton kernel (one read of x, fp32); top-k, gather, projections, the fp32
LayerNorm of q and k and the scatter-add in PyTorch (cuBLAS GEMMs and single small kernels: nothing to win by
fusing them); attention among the selected tokens through the Triton selected-attention kernels with every
block listed (fp32 online softmax, forward and backward). Fusing the q/k LayerNorm into the attention kernel's
loads is not done yet (TODO issue 4: measure first whether launches dominate at P5).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from depthtracker.kernels._dispatch import resolve_backend
from depthtracker.kernels.nsa.interface import SelectedAttentionFn, dense_block_index
from depthtracker.kernels.sparse_global.naive import naive_sparse_global_attention

_ATTN_BLOCK = 64  # query/key block of the attention kernel among the selected tokens


def sparse_global_attention(x: torch.Tensor, w_qkv: torch.Tensor, b_qkv: torch.Tensor | None, w_out: torch.Tensor,
                            b_out: torch.Tensor | None, ln_q_weight: torch.Tensor, ln_q_bias: torch.Tensor,
                            ln_k_weight: torch.Tensor, ln_k_bias: torch.Tensor, alpha: torch.Tensor, topk: int,
                            heads: int, eps: float = 1e-5, *, backend: str = "auto") -> torch.Tensor:
    """Gated sparse global attention over the ``topk`` highest-energy tokens.

    Args:
        x: ``(B, N, C)`` tokens (a flattened feature map), fp16/bf16/fp32.
        w_qkv, b_qkv: ``(3C, C)`` and ``(3C,)`` or None: the q, k, v projections, heads interleaved as
            ``(3, heads, C // heads)`` along the output dim.
        w_out, b_out: ``(C, C)`` and ``(C,)`` or None: the output projection.
        ln_q_weight, ln_q_bias, ln_k_weight, ln_k_bias: ``(C // heads,)``: LayerNorm of q and of k per head,
            computed in fp32.
        alpha: gate, scalar or ``(C,)``: ``out = x + alpha * block(x)``.
        topk: tokens selected per image by squared L2 norm (all N when ``topk >= N``). Not differentiable.
        heads: attention heads; ``C % heads == 0``.

    Returns:
        ``(B, N, C)`` in x's dtype, differentiable in x and every weight.
    """
    b, n, c = x.shape
    if c % heads or w_qkv.shape != (3 * c, c) or w_out.shape != (c, c) or topk < 1:
        raise ValueError(f"x {tuple(x.shape)}, heads={heads}, w_qkv {tuple(w_qkv.shape)}, w_out "
                         f"{tuple(w_out.shape)}, topk={topk}: need C % heads == 0, (3C, C), (C, C), topk >= 1")
    if resolve_backend(backend, x, op="sparse_global_attention") == "naive":
        return naive_sparse_global_attention(x, w_qkv, b_qkv, w_out, b_out, ln_q_weight, ln_q_bias, ln_k_weight,
                                             ln_k_bias, alpha, topk, heads, eps)
    from depthtracker.kernels.sparse_global.triton import token_energy  # lazy: Triton only when it runs

    hd = c // heads
    kk = min(topk, n)
    idx = torch.topk(token_energy(x.detach().contiguous()), kk, dim=1).indices  # (B, k)
    idx_c = idx.unsqueeze(-1).expand(b, kk, c)
    xs = torch.gather(x, 1, idx_c)  # (B, k, C)
    qkv = F.linear(xs, w_qkv, b_qkv).view(b, kk, 3, heads, hd).permute(2, 0, 3, 1, 4)  # (3, B, heads, k, hd)
    q = F.layer_norm(qkv[0].float(), (hd,), ln_q_weight.float(), ln_q_bias.float(), eps).to(x.dtype)
    k = F.layer_norm(qkv[1].float(), (hd,), ln_k_weight.float(), ln_k_bias.float(), eps).to(x.dtype)
    every, inverse = dense_block_index(b, heads, kk, _ATTN_BLOCK, x.device)  # dense: every block, no sorts
    q, k, v = q.contiguous(), k.contiguous(), qkv[2].contiguous()  # (B, heads, k, hd) each
    o = SelectedAttentionFn.apply(q, k, v, every, _ATTN_BLOCK, hd ** -0.5, inverse)  # (B, heads, k, hd)
    y = F.linear(o.transpose(1, 2).reshape(b, kk, c), w_out, b_out)  # (B, k, C)
    return x.scatter_add(1, idx_c, (alpha * y).to(x.dtype))  # topk indices are distinct: one add per token


@dataclass(frozen=True)
class SparseGlobalConfig:
    """Configuration of :class:`SparseGlobalBlockGated`."""

    dim: int  # channels C of the feature map
    heads: int = 8  # attention heads; dim % heads == 0
    topk: int = 512  # tokens attended per image (by squared L2 norm); more = closer to dense, slower
    qkv_bias: bool = True  # bias on the q, k, v projections
    eps: float = 1e-5  # LayerNorm epsilon on q and k

    def __post_init__(self) -> None:
        if self.dim < 1 or self.heads < 1 or self.dim % self.heads:
            raise ValueError(f"dim={self.dim}, heads={self.heads}: need dim >= 1, heads >= 1, dim % heads == 0")
        if self.topk < 1:
            raise ValueError(f"topk={self.topk}: expected >= 1")
        if not 0 < self.eps < 1:
            raise ValueError(f"eps={self.eps}: expected in (0, 1)")


class SparseGlobalBlockGated(nn.Module):
    """HSV-DET's sparse global block: ``x + alpha * block(x)``, ``alpha`` (per channel) zero at init.

    ``forward(x)``: ``x (B, C, H, W)`` feature map or ``(B, N, C)`` tokens -> same shape and dtype.
    """

    def __init__(self, config: SparseGlobalConfig, backend: str = "auto") -> None:
        super().__init__()
        self.config = config
        self.backend = backend
        c, hd = config.dim, config.dim // config.heads
        self.qkv = nn.Linear(c, 3 * c, bias=config.qkv_bias)
        self.proj = nn.Linear(c, c)
        self.q_norm = nn.LayerNorm(hd, eps=config.eps)
        self.k_norm = nn.LayerNorm(hd, eps=config.eps)
        self.alpha = nn.Parameter(torch.zeros(c))  # the block starts as the identity

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        spatial = x.dim() == 4
        if spatial:
            b, c, h, w = x.shape
            x = x.flatten(2).transpose(1, 2)  # (B, H*W, C)
        cfg = self.config
        out = sparse_global_attention(x, self.qkv.weight, self.qkv.bias, self.proj.weight, self.proj.bias,
                                      self.q_norm.weight, self.q_norm.bias, self.k_norm.weight, self.k_norm.bias,
                                      self.alpha, cfg.topk, cfg.heads, cfg.eps, backend=self.backend)
        if spatial:
            out = out.transpose(1, 2).reshape(b, c, h, w)  # (B, C, H, W)
        return out
