"""Plain-PyTorch twin of the sparse global block (loops over the batch, fp32 upcast): reference and CPU path."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def _upcast(dtype: torch.dtype) -> torch.dtype:
    return torch.float64 if dtype == torch.float64 else torch.float32


def sparse_global_math(x: torch.Tensor, w_qkv: torch.Tensor, b_qkv: torch.Tensor | None, w_out: torch.Tensor,
                       b_out: torch.Tensor | None, ln_q_weight: torch.Tensor, ln_q_bias: torch.Tensor,
                       ln_k_weight: torch.Tensor, ln_k_bias: torch.Tensor, alpha: torch.Tensor, topk: int, heads: int,
                       eps: float, compute_dtype: torch.dtype) -> torch.Tensor:
    """The block computed in ``compute_dtype``, one image at a time; token energies always in >= fp32."""
    b, n, c = x.shape
    hd = c // heads
    kk = min(topk, n)
    cast = [None if t is None else t.to(compute_dtype) for t in (w_qkv, b_qkv, w_out, b_out, ln_q_weight, ln_q_bias,
                                                                 ln_k_weight, ln_k_bias, alpha)]
    w_qkv, b_qkv, w_out, b_out, lqw, lqb, lkw, lkb, alpha = cast
    outs = []
    for bi in range(b):
        xb = x[bi].to(compute_dtype)  # (N, C)
        energy = xb.detach().to(_upcast(compute_dtype)).square().sum(-1)  # squared L2 norm per token
        idx = torch.topk(energy, kk).indices  # (k,)
        qkv = F.linear(xb[idx], w_qkv, b_qkv).view(kk, 3, heads, hd).permute(1, 2, 0, 3)  # (3, heads, k, hd)
        q = F.layer_norm(qkv[0], (hd,), lqw, lqb, eps)
        k = F.layer_norm(qkv[1], (hd,), lkw, lkb, eps)
        p = torch.softmax(q @ k.transpose(-1, -2) * hd ** -0.5, dim=-1)  # (heads, k, k)
        o = (p @ qkv[2]).transpose(0, 1).reshape(kk, c)  # (k, C)
        y = F.linear(o, w_out, b_out)
        outs.append(xb.index_add(0, idx, alpha * y))  # x + alpha * block(x) on the selected tokens only
    return torch.stack(outs)


def naive_sparse_global_attention(x: torch.Tensor, w_qkv: torch.Tensor, b_qkv: torch.Tensor | None,
                                  w_out: torch.Tensor, b_out: torch.Tensor | None, ln_q_weight: torch.Tensor,
                                  ln_q_bias: torch.Tensor, ln_k_weight: torch.Tensor, ln_k_bias: torch.Tensor,
                                  alpha: torch.Tensor, topk: int, heads: int, eps: float = 1e-5) -> torch.Tensor:
    """Reference :func:`~depthtracker.kernels.sparse_global.sparse_global_attention` (fp32 compute)."""
    return sparse_global_math(x, w_qkv, b_qkv, w_out, b_out, ln_q_weight, ln_q_bias, ln_k_weight, ln_k_bias, alpha,
                              topk, heads, eps, _upcast(x.dtype)).to(x.dtype)
