"""Mixture-of-Experts feed-forward layer: top-k routed experts plus an always-on shared expert (DESIGN.md §4).

Routing (per token ``x``): ``p = softmax(router_t(x))`` over ``num_experts``; the ``top_k`` experts with the
largest ``p`` process the token and their outputs are summed with weights ``p`` renormalised over the chosen
``k`` (Mixtral). A shared expert (DeepSeekMoE) processes every token and is added unweighted. No capacity limit:
no token is ever dropped, whatever the imbalance (an expert simply gets more rows).

Task-conditioned routing (M3ViT, Fan et al. 2022): with ``num_tasks > 1`` each task has its own router over the
same experts, so depth tokens and tracking tokens can specialise experts while sharing them.

Load balance (Switch Transformer, Fedus et al. 2022, with top-k counting as in GShard):
``aux = E * sum_e f_e * P_e``, ``f_e`` = fraction of the ``T * k`` assignments that went to expert ``e``,
``P_e`` = mean router probability of ``e``. It is 1 for perfectly uniform routing (its minimum when ``f = P``)
and grows to ``E / k`` as routing collapses; the caller weights it into the loss.

Compute: assignments are sorted by expert so that each expert's rows are contiguous, then one grouped matmul
(``torch._grouped_mm``: CUDA, bf16, sm90+) or a loop of dense matmuls over the contiguous segments (everywhere
else). Every expert runs on every step even with zero rows, so all parameters are in the graph (DDP needs that).
:meth:`MoEFFN.reference_forward` is the per-token loop the fast path is tested against.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["MoEConfig", "MoEFFN", "MoEOutput", "load_balance_loss"]

GROUPED = ("auto", "grouped", "loop")


@dataclass(frozen=True)
class MoEConfig:
    """One MoE feed-forward layer."""

    dim: int = 96  # token width
    hidden: int = 192  # hidden width of each routed expert
    num_experts: int = 4  # routed experts, >= 1
    top_k: int = 2  # experts per token, in [1, num_experts]
    shared_hidden: int = 192  # hidden width of the shared expert; 0 = no shared expert
    num_tasks: int = 1  # routers: 1 = one for all tokens; > 1 = one per task (M3ViT task-conditioned routing)
    grouped: str = "auto"  # expert matmuls: auto (grouped on CUDA bf16 sm90+, else loop) | grouped | loop

    def __post_init__(self) -> None:
        for name, lo in (("dim", 1), ("hidden", 1), ("num_experts", 1), ("top_k", 1), ("shared_hidden", 0),
                         ("num_tasks", 1)):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < lo:
                raise ValueError(f"MoEConfig.{name}={v!r}: expected an integer >= {lo}")
        if self.top_k > self.num_experts:
            raise ValueError(f"MoEConfig.top_k={self.top_k} must be <= num_experts={self.num_experts}")
        if self.grouped not in GROUPED:
            raise ValueError(f"MoEConfig.grouped={self.grouped!r}: expected one of {GROUPED}")


class MoEOutput(NamedTuple):
    """``y`` (B, N, C) like the input; ``aux_loss`` scalar load-balance loss; ``expert_ids`` (T, k) int64 and
    ``weights`` (T, k) of every token's chosen experts (T = B * N, row-major)."""

    y: torch.Tensor
    aux_loss: torch.Tensor
    expert_ids: torch.Tensor
    weights: torch.Tensor


def load_balance_loss(probs: torch.Tensor, expert_ids: torch.Tensor, num_experts: int) -> torch.Tensor:
    """``E * sum_e f_e P_e`` from router ``probs (T, E)`` and chosen ``expert_ids (T, k)`` (see module docstring)."""
    counts = torch.bincount(expert_ids.flatten(), minlength=num_experts).to(probs.dtype)  # (E,)
    f = counts / max(expert_ids.numel(), 1)
    return num_experts * (f * probs.mean(0)).sum()


def _grouped_supported(x: torch.Tensor, dim: int, hidden: int) -> bool:
    if not (x.is_cuda and hasattr(torch, "_grouped_mm")):
        return False
    # _grouped_mm wants bf16 and 16-byte aligned strides (multiples of 8 elements) on Hopper or newer.
    return torch.cuda.get_device_capability(x.device) >= (9, 0) and dim % 8 == 0 and hidden % 8 == 0


class MoEFFN(nn.Module):
    """``forward(x (B, N, C), task: int = 0) -> MoEOutput``. Experts are two-layer GELU MLPs."""

    def __init__(self, config: MoEConfig) -> None:
        super().__init__()
        self.config = config
        e, c, hd = config.num_experts, config.dim, config.hidden
        self.routers = nn.ModuleList(nn.Linear(c, e, bias=False) for _ in range(config.num_tasks))
        # Expert weights stacked (E, in, out) so that a grouped matmul can take them in one call.
        self.w1 = nn.Parameter(torch.empty(e, c, hd))
        self.b1 = nn.Parameter(torch.zeros(e, hd))
        self.w2 = nn.Parameter(torch.empty(e, hd, c))
        self.b2 = nn.Parameter(torch.zeros(e, c))
        for w, fan_in in ((self.w1, c), (self.w2, hd)):
            nn.init.trunc_normal_(w, std=1.0 / math.sqrt(fan_in))
        for r in self.routers:
            nn.init.normal_(r.weight, std=0.02)  # near-uniform routing at init
        sh = config.shared_hidden
        self.shared = nn.Sequential(nn.Linear(c, sh), nn.GELU(), nn.Linear(sh, c)) if sh else None

    def route(self, x2: torch.Tensor, task: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Router ``probs (T, E)`` (fp32), chosen ``expert_ids (T, k)`` and renormalised ``weights (T, k)``."""
        if not 0 <= task < len(self.routers):
            raise ValueError(f"task={task}: this MoE layer has {len(self.routers)} router(s)")
        probs = torch.softmax(self.routers[task](x2).float(), dim=-1)  # (T, E)
        top_p, ids = torch.topk(probs, self.config.top_k, dim=-1)  # (T, k)
        return probs, ids, top_p / top_p.sum(-1, keepdim=True)

    def _experts_sorted(self, xs: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
        """Expert MLPs over rows ``xs (A, C)`` sorted by expert, ``counts (E,)`` rows per expert -> ``(A, C)``."""
        cfg = self.config
        mode = cfg.grouped
        if mode == "auto":
            mode = "grouped" if _grouped_supported(xs, cfg.dim, cfg.hidden) else "loop"
        if mode == "grouped":
            offs = torch.cumsum(counts, 0).to(torch.int32)  # (E,) end row of each expert's segment
            dt = torch.bfloat16 if xs.is_cuda else xs.dtype
            h = torch._grouped_mm(xs.to(dt), self.w1.to(dt), offs=offs)  # (A, hidden)
            eid = torch.repeat_interleave(torch.arange(cfg.num_experts, device=xs.device), counts)  # (A,)
            h = F.gelu(h.float() + self.b1[eid])
            y = torch._grouped_mm(h.to(dt), self.w2.to(dt), offs=offs)  # (A, C)
            return y.float() + self.b2[eid]
        outs = []
        for e, seg in enumerate(torch.split(xs, counts.tolist())):  # one host sync per layer for the sizes
            outs.append(F.gelu(seg @ self.w1[e] + self.b1[e]) @ self.w2[e] + self.b2[e])  # (n_e, C)
        return torch.cat(outs, 0)

    def forward(self, x: torch.Tensor, task: int = 0) -> MoEOutput:
        b, n, c = x.shape
        x2 = x.reshape(b * n, c)  # (T, C)
        probs, ids, w = self.route(x2, task)
        k = self.config.top_k
        flat = ids.flatten()  # (T*k,) assignment a belongs to token a // k
        order = torch.argsort(flat, stable=True)  # assignments grouped by expert
        token = order // k  # (T*k,) source token of each sorted assignment
        counts = torch.bincount(flat, minlength=self.config.num_experts)  # (E,)
        ys = self._experts_sorted(x2[token], counts)  # (T*k, C) in sorted order
        ys = ys * w.flatten()[order].unsqueeze(1).to(ys.dtype)
        y = torch.zeros(b * n, c, device=x.device, dtype=ys.dtype).index_add_(0, token, ys)  # (T, C)
        if self.shared is not None:
            y = y + self.shared(x2)
        aux = load_balance_loss(probs, ids, self.config.num_experts)
        return MoEOutput(y.to(x.dtype).view(b, n, c), aux, ids, w)

    @torch.no_grad()
    def reference_forward(self, x: torch.Tensor, task: int = 0) -> torch.Tensor:
        """Per-token loop with the same routing (slow; tests only): ``(B, N, C)`` -> ``(B, N, C)``."""
        b, n, c = x.shape
        x2 = x.reshape(b * n, c)
        _, ids, w = self.route(x2, task)
        out = torch.zeros_like(x2)
        for t in range(x2.shape[0]):
            for j in range(self.config.top_k):
                e = int(ids[t, j])
                out[t] += w[t, j] * (F.gelu(x2[t] @ self.w1[e] + self.b1[e]) @ self.w2[e] + self.b2[e])
            if self.shared is not None:
                out[t] += self.shared(x2[t])
        return out.view(b, n, c)
