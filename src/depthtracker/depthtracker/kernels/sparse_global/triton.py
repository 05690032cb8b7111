"""Triton kernel of the sparse global block: per-token squared-L2 energy in one read of x, fp32 accumulation.

The attention among the selected tokens reuses the selected-attention kernels of :mod:`depthtracker.kernels.nsa`
with every block listed (a flash-style dense attention with an fp32 online softmax, forward and backward).
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl


@triton.jit
def _energy_kernel(X, E, sxb, sxn, sxc, N, C, BN: tl.constexpr, BC: tl.constexpr):
    pid = tl.program_id(0)
    b = tl.program_id(1)
    offs_n = pid * BN + tl.arange(0, BN)
    offs_c = tl.arange(0, BC)
    acc = tl.zeros([BN], dtype=tl.float32)
    for c0 in range(0, C, BC):
        mask = (offs_n < N)[:, None] & ((c0 + offs_c) < C)[None, :]
        x = tl.load(X + b * sxb + offs_n[:, None] * sxn + (c0 + offs_c)[None, :] * sxc, mask=mask, other=0.0)
        x = x.to(tl.float32)
        acc += tl.sum(x * x, 1)
    tl.store(E + b * N + offs_n, acc, mask=offs_n < N)


def token_energy(x: torch.Tensor) -> torch.Tensor:
    """Squared L2 norm of every token: ``x (B, N, C)`` fp16/bf16/fp32 -> fp32 ``(B, N)``."""
    if x.dim() != 3 or x.dtype not in (torch.float16, torch.bfloat16, torch.float32):
        raise ValueError(f"x {tuple(x.shape)} {x.dtype}: expected (B, N, C) fp16, bf16 or fp32")
    b, n, c = x.shape
    e = torch.empty((b, n), device=x.device, dtype=torch.float32)
    bn, bc = 32, min(128, max(16, triton.next_power_of_2(c)))
    _energy_kernel[(triton.cdiv(n, bn), b)](x, e, *x.stride(), n, c, BN=bn, BC=bc, num_warps=4)
    return e
