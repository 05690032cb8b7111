"""Triton kernels and launchers for non-causal block-sparse (selected) attention and compressed block scores.

Selected attention: query block ``i`` (``block_size`` consecutive tokens) attends to the union of the KV blocks
listed in ``block_idx[b, h // G, i]``. Forward is a flash-style online softmax in fp32 over the listed blocks,
saving the log-sum-exp (base 2). Backward is two kernels: dQ walks the same list; dK/dV walks the inverse
index (KV block -> query blocks that list it, see :func:`..index.inverse_block_index`) and sums over the G query
heads of its group in registers, so every dK/dV row is written by exactly one program: no atomics.

Kernels assume a canonical index (ids in ``[0, NKB)`` or ``-1``, no duplicates). The ragged last block (N not a
multiple of ``block_size``) is masked: padded query rows are neither computed into outputs nor stored, padded
keys get score ``-inf``. A query block with no valid block outputs zeros (and stores ``lse = +inf``).
"""

from __future__ import annotations

import math

import torch
import triton
import triton.language as tl

_LOG2E = 1.4426950408889634
_DTYPES = (torch.float16, torch.bfloat16, torch.float32)


def _precision(dtype: torch.dtype) -> str:
    # fp32 inputs get exact fp32 products (tests compare against fp32 PyTorch); 16-bit inputs use tensor cores.
    return "ieee" if dtype == torch.float32 else "tf32"


def _launch_opts(block_d: int) -> dict:
    return {"num_warps": 4 if block_d <= 64 else 8, "num_stages": 2}


@triton.jit
def _sel_fwd_kernel(Q, K, V, IDX, O, LSE,
                    sqb, sqh, sqn, sqd, skb, skh, skn, skd, svb, svh, svn, svd,
                    sib, sih, siq, sis, sob, soh, son, sod,
                    N, D, H, G, S, qk_scale,
                    BS: tl.constexpr, BD: tl.constexpr, PREC: tl.constexpr):
    qb = tl.program_id(0)
    bh = tl.program_id(1)
    b = (bh // H).to(tl.int64)  # batch offsets can pass 2**31 elements
    h = bh % H
    hk = h // G
    offs_m = qb * BS + tl.arange(0, BS)
    offs_n = tl.arange(0, BS)
    offs_d = tl.arange(0, BD)
    m_ok = offs_m < N
    d_ok = offs_d < D
    q = tl.load(Q + b * sqb + h * sqh + offs_m[:, None] * sqn + offs_d[None, :] * sqd,
                mask=m_ok[:, None] & d_ok[None, :], other=0.0)
    m_i = tl.full([BS], float("-inf"), dtype=tl.float32)
    l_i = tl.zeros([BS], dtype=tl.float32)
    acc = tl.zeros([BS, BD], dtype=tl.float32)
    for s in range(S):
        kb = tl.load(IDX + b * sib + hk * sih + qb * siq + s * sis)
        if kb >= 0:
            offs_k = kb * BS + offs_n
            k_ok = offs_k < N
            kv_mask = k_ok[:, None] & d_ok[None, :]
            k = tl.load(K + b * skb + hk * skh + offs_k[:, None] * skn + offs_d[None, :] * skd, mask=kv_mask, other=0.0)
            v = tl.load(V + b * svb + hk * svh + offs_k[:, None] * svn + offs_d[None, :] * svd, mask=kv_mask, other=0.0)
            sc = tl.dot(q, tl.trans(k), input_precision=PREC) * qk_scale  # (BS, BS), log2 units
            sc = tl.where(k_ok[None, :], sc, float("-inf"))
            m_new = tl.maximum(m_i, tl.max(sc, 1))
            alpha = tl.exp2(m_i - m_new)
            p = tl.exp2(sc - m_new[:, None])
            l_i = l_i * alpha + tl.sum(p, 1)
            acc = acc * alpha[:, None] + tl.dot(p.to(v.dtype), v, input_precision=PREC)
            m_i = m_new
    has = l_i > 0.0
    l_safe = tl.where(has, l_i, 1.0)
    out = acc / l_safe[:, None]
    lse = tl.where(has, m_i + tl.log2(l_safe), float("inf"))
    tl.store(O + b * sob + h * soh + offs_m[:, None] * son + offs_d[None, :] * sod, out.to(O.dtype.element_ty),
             mask=m_ok[:, None] & d_ok[None, :])
    tl.store(LSE + bh * N + offs_m, lse, mask=m_ok)


@triton.jit
def _delta_kernel(O, DO, DELTA, sob, soh, son, sod, sdb, sdh, sdn, sdd, N, D, H,
                  BM: tl.constexpr, BD: tl.constexpr):
    # delta = rowsum(dO * O) in fp32: the softmax-backward correction term, one read of O and dO.
    pid = tl.program_id(0)
    bh = tl.program_id(1)
    b = (bh // H).to(tl.int64)  # batch offsets can pass 2**31 elements
    h = bh % H
    offs_m = pid * BM + tl.arange(0, BM)
    offs_d = tl.arange(0, BD)
    mask = (offs_m < N)[:, None] & (offs_d < D)[None, :]
    o = tl.load(O + b * sob + h * soh + offs_m[:, None] * son + offs_d[None, :] * sod, mask=mask, other=0.0)
    do = tl.load(DO + b * sdb + h * sdh + offs_m[:, None] * sdn + offs_d[None, :] * sdd, mask=mask, other=0.0)
    tl.store(DELTA + bh * N + offs_m, tl.sum(o.to(tl.float32) * do.to(tl.float32), 1), mask=offs_m < N)


@triton.jit
def _sel_bwd_dq_kernel(Q, K, V, DO, LSE, DELTA, IDX, DQ,
                       sqb, sqh, sqn, sqd, skb, skh, skn, skd, svb, svh, svn, svd,
                       sdb, sdh, sdn, sdd, sib, sih, siq, sis,
                       N, D, H, G, S, qk_scale, sm_scale,
                       BS: tl.constexpr, BD: tl.constexpr, PREC: tl.constexpr):
    qb = tl.program_id(0)
    bh = tl.program_id(1)
    b = (bh // H).to(tl.int64)  # batch offsets can pass 2**31 elements
    h = bh % H
    hk = h // G
    offs_m = qb * BS + tl.arange(0, BS)
    offs_n = tl.arange(0, BS)
    offs_d = tl.arange(0, BD)
    m_ok = offs_m < N
    d_ok = offs_d < D
    q_mask = m_ok[:, None] & d_ok[None, :]
    q = tl.load(Q + b * sqb + h * sqh + offs_m[:, None] * sqn + offs_d[None, :] * sqd, mask=q_mask, other=0.0)
    do = tl.load(DO + b * sdb + h * sdh + offs_m[:, None] * sdn + offs_d[None, :] * sdd, mask=q_mask, other=0.0)
    lse = tl.load(LSE + bh * N + offs_m, mask=m_ok, other=0.0)
    delta = tl.load(DELTA + bh * N + offs_m, mask=m_ok, other=0.0)
    dq = tl.zeros([BS, BD], dtype=tl.float32)
    for s in range(S):
        kb = tl.load(IDX + b * sib + hk * sih + qb * siq + s * sis)
        if kb >= 0:
            offs_k = kb * BS + offs_n
            k_ok = offs_k < N
            kv_mask = k_ok[:, None] & d_ok[None, :]
            k = tl.load(K + b * skb + hk * skh + offs_k[:, None] * skn + offs_d[None, :] * skd, mask=kv_mask, other=0.0)
            v = tl.load(V + b * svb + hk * svh + offs_k[:, None] * svn + offs_d[None, :] * svd, mask=kv_mask, other=0.0)
            sc = tl.dot(q, tl.trans(k), input_precision=PREC) * qk_scale
            p = tl.where(k_ok[None, :] & m_ok[:, None], tl.exp2(sc - lse[:, None]), 0.0)
            dp = tl.dot(do, tl.trans(v), input_precision=PREC)
            ds = p * (dp - delta[:, None])
            dq += tl.dot(ds.to(k.dtype), k, input_precision=PREC)
    tl.store(DQ + b * sqb + h * sqh + offs_m[:, None] * sqn + offs_d[None, :] * sqd,
             (dq * sm_scale).to(DQ.dtype.element_ty), mask=q_mask)


@triton.jit
def _sel_bwd_dkv_kernel(Q, K, V, DO, LSE, DELTA, OFFS, QBLK, DK, DV,
                        sqb, sqh, sqn, sqd, skb, skh, skn, skd, svb, svh, svn, svd, sdb, sdh, sdn, sdd,
                        N, D, H, HK, G, NKB, qk_scale, sm_scale,
                        BS: tl.constexpr, BD: tl.constexpr, PREC: tl.constexpr):
    kb = tl.program_id(0)
    bhk = tl.program_id(1)
    b = (bhk // HK).to(tl.int64)
    hk = bhk % HK
    offs_k = kb * BS + tl.arange(0, BS)
    offs_m0 = tl.arange(0, BS)
    offs_d = tl.arange(0, BD)
    k_ok = offs_k < N
    d_ok = offs_d < D
    kv_mask = k_ok[:, None] & d_ok[None, :]
    k = tl.load(K + b * skb + hk * skh + offs_k[:, None] * skn + offs_d[None, :] * skd, mask=kv_mask, other=0.0)
    v = tl.load(V + b * svb + hk * svh + offs_k[:, None] * svn + offs_d[None, :] * svd, mask=kv_mask, other=0.0)
    dk = tl.zeros([BS, BD], dtype=tl.float32)
    dv = tl.zeros([BS, BD], dtype=tl.float32)
    start = tl.load(OFFS + bhk * NKB + kb)
    end = tl.load(OFFS + bhk * NKB + kb + 1)
    for i in range(start, end):
        qb = tl.load(QBLK + i)
        offs_m = qb * BS + offs_m0
        m_ok = offs_m < N
        q_mask = m_ok[:, None] & d_ok[None, :]
        for g in range(G):
            h = hk * G + g
            q = tl.load(Q + b * sqb + h * sqh + offs_m[:, None] * sqn + offs_d[None, :] * sqd, mask=q_mask, other=0.0)
            do = tl.load(DO + b * sdb + h * sdh + offs_m[:, None] * sdn + offs_d[None, :] * sdd, mask=q_mask,
                         other=0.0)
            lse = tl.load(LSE + (b * H + h) * N + offs_m, mask=m_ok, other=0.0)
            delta = tl.load(DELTA + (b * H + h) * N + offs_m, mask=m_ok, other=0.0)
            sc_t = tl.dot(k, tl.trans(q), input_precision=PREC) * qk_scale  # (BS keys, BS queries)
            p_t = tl.where(m_ok[None, :] & k_ok[:, None], tl.exp2(sc_t - lse[None, :]), 0.0)
            dv += tl.dot(p_t.to(do.dtype), do, input_precision=PREC)
            dp_t = tl.dot(v, tl.trans(do), input_precision=PREC)
            ds_t = p_t * (dp_t - delta[None, :])
            dk += tl.dot(ds_t.to(q.dtype), q, input_precision=PREC)
    tl.store(DK + b * skb + hk * skh + offs_k[:, None] * skn + offs_d[None, :] * skd,
             (dk * sm_scale).to(DK.dtype.element_ty), mask=kv_mask)
    tl.store(DV + b * svb + hk * svh + offs_k[:, None] * svn + offs_d[None, :] * svd,
             dv.to(DV.dtype.element_ty), mask=kv_mask)


def check_qkv(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, block_size: int) -> tuple[int, int, int, int, int]:
    """Validate the selected-attention operands; returns ``(B, H, Hkv, N, D)``."""
    if q.dim() != 4 or k.dim() != 4 or v.shape != k.shape:
        raise ValueError(f"q {tuple(q.shape)}, k {tuple(k.shape)}, v {tuple(v.shape)}: expected q (B,H,N,D), "
                         "k and v (B,Hkv,N,D)")
    b, h, n, d = q.shape
    if k.shape[0] != b or k.shape[2:] != (n, d) or h % k.shape[1]:
        raise ValueError(f"q {tuple(q.shape)} and k {tuple(k.shape)}: need the same B, N, D and H % Hkv == 0")
    if not (q.dtype == k.dtype == v.dtype) or q.dtype not in _DTYPES:
        raise ValueError(f"dtypes {q.dtype}, {k.dtype}, {v.dtype}: expected one of {_DTYPES}, all equal")
    if not (q.device == k.device == v.device):
        raise ValueError("q, k and v must be on one device")
    if block_size < 16 or block_size & (block_size - 1):
        raise ValueError(f"block_size={block_size}: the Triton path needs a power of two >= 16")
    if d > 256:
        raise ValueError(f"head dim D={d}: the Triton path supports D <= 256")
    return b, h, k.shape[1], n, d


def _check_idx(block_idx: torch.Tensor, b: int, hk: int, nqb: int) -> None:
    if block_idx.dim() != 4 or tuple(block_idx.shape[:3]) != (b, hk, nqb) or block_idx.dtype != torch.int32:
        raise ValueError(f"block_idx {tuple(block_idx.shape)} {block_idx.dtype}: expected int32 ({b}, {hk}, {nqb}, S)")


def selected_fwd(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, block_idx: torch.Tensor, block_size: int,
                 scale: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Forward launcher. ``block_idx`` canonical int32. Returns ``o (B,H,N,D)`` and ``lse (B,H,N)`` fp32, base 2."""
    b, h, hk, n, d = check_qkv(q, k, v, block_size)
    nqb = triton.cdiv(n, block_size)
    _check_idx(block_idx, b, hk, nqb)
    o = torch.empty_like(q)
    lse = torch.empty((b, h, n), device=q.device, dtype=torch.float32)
    bd = max(16, triton.next_power_of_2(d))
    _sel_fwd_kernel[(nqb, b * h)](
        q, k, v, block_idx, o, lse, *q.stride(), *k.stride(), *v.stride(), *block_idx.stride(), *o.stride(),
        n, d, h, h // hk, block_idx.shape[3], scale * _LOG2E,
        BS=block_size, BD=bd, PREC=_precision(q.dtype), **_launch_opts(bd))
    return o, lse


def selected_bwd(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, o: torch.Tensor, lse: torch.Tensor,
                 do: torch.Tensor, block_idx: torch.Tensor, offsets: torch.Tensor, qblocks: torch.Tensor,
                 block_size: int, scale: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Backward launcher: returns ``dq, dk, dv`` in the input dtype (fp32 accumulation)."""
    b, h, hk, n, d = check_qkv(q, k, v, block_size)
    nqb = triton.cdiv(n, block_size)
    _check_idx(block_idx, b, hk, nqb)
    if do.shape != q.shape or o.shape != q.shape or lse.shape != (b, h, n) or not lse.is_contiguous():
        raise ValueError(f"do {tuple(do.shape)}, o {tuple(o.shape)}, lse {tuple(lse.shape)} do not match q")
    if offsets.numel() != b * hk * nqb + 1 or offsets.dtype != torch.int32 or qblocks.dtype != torch.int32:
        raise ValueError("inverse index: expected int32 offsets of B*Hkv*NKB+1 entries and int32 query blocks")
    do = do.to(q.dtype)
    bd = max(16, triton.next_power_of_2(d))
    prec = _precision(q.dtype)
    delta = torch.empty((b, h, n), device=q.device, dtype=torch.float32)
    bm = 64
    _delta_kernel[(triton.cdiv(n, bm), b * h)](o, do, delta, *o.stride(), *do.stride(), n, d, h, BM=bm, BD=bd)
    dq = torch.empty_like(q)
    dk = torch.empty_like(k)
    dv = torch.empty_like(v)
    if dq.stride() != q.stride() or dk.stride() != k.stride() or dv.stride() != v.stride():
        raise ValueError("q, k and v must be contiguous: the kernels write gradients with the inputs' strides")
    qk_scale = scale * _LOG2E
    _sel_bwd_dq_kernel[(nqb, b * h)](
        q, k, v, do, lse, delta, block_idx, dq, *q.stride(), *k.stride(), *v.stride(), *do.stride(),
        *block_idx.stride(), n, d, h, h // hk, block_idx.shape[3], qk_scale, scale,
        BS=block_size, BD=bd, PREC=prec, **_launch_opts(bd))
    _sel_bwd_dkv_kernel[(nqb, b * hk)](
        q, k, v, do, lse, delta, offsets, qblocks, dk, dv, *q.stride(), *k.stride(), *v.stride(), *do.stride(),
        n, d, h, hk, h // hk, nqb, qk_scale, scale,
        BS=block_size, BD=bd, PREC=prec, **_launch_opts(bd))
    return dq, dk, dv


@triton.jit
def _block_scores_kernel(Q, KC, SC, sqb, sqh, sqn, sqd, skb, skh, skn, skd,
                         N, M, D, H, G, NQB, qk_scale,
                         BS: tl.constexpr, BM: tl.constexpr, BD: tl.constexpr, PREC: tl.constexpr):
    # Two passes over the compressed keys: (1) row max and normaliser, (2) normalised probabilities summed over
    # the block's queries. The (N, M) probability matrix never reaches memory.
    qb = tl.program_id(0)
    bh = tl.program_id(1)
    b = (bh // H).to(tl.int64)  # batch offsets can pass 2**31 elements
    h = bh % H
    hk = h // G
    offs_m = qb * BS + tl.arange(0, BS)
    offs_c = tl.arange(0, BM)
    offs_d = tl.arange(0, BD)
    m_ok = offs_m < N
    d_ok = offs_d < D
    q = tl.load(Q + b * sqb + h * sqh + offs_m[:, None] * sqn + offs_d[None, :] * sqd,
                mask=m_ok[:, None] & d_ok[None, :], other=0.0)
    m_i = tl.full([BS], float("-inf"), dtype=tl.float32)
    l_i = tl.zeros([BS], dtype=tl.float32)
    for c0 in range(0, M, BM):
        c_ok = (c0 + offs_c) < M
        kc = tl.load(KC + b * skb + hk * skh + (c0 + offs_c)[:, None] * skn + offs_d[None, :] * skd,
                     mask=c_ok[:, None] & d_ok[None, :], other=0.0)
        sc = tl.where(c_ok[None, :], tl.dot(q, tl.trans(kc), input_precision=PREC) * qk_scale, float("-inf"))
        m_new = tl.maximum(m_i, tl.max(sc, 1))
        l_i = l_i * tl.exp2(m_i - m_new) + tl.sum(tl.exp2(sc - m_new[:, None]), 1)
        m_i = m_new
    for c0 in range(0, M, BM):
        c_ok = (c0 + offs_c) < M
        kc = tl.load(KC + b * skb + hk * skh + (c0 + offs_c)[:, None] * skn + offs_d[None, :] * skd,
                     mask=c_ok[:, None] & d_ok[None, :], other=0.0)
        sc = tl.where(c_ok[None, :], tl.dot(q, tl.trans(kc), input_precision=PREC) * qk_scale, float("-inf"))
        p = tl.where(m_ok[:, None], tl.exp2(sc - m_i[:, None]) / l_i[:, None], 0.0)
        tl.store(SC + (bh * NQB + qb) * M + c0 + offs_c, tl.sum(p, 0), mask=c_ok)


def compressed_block_scores(q: torch.Tensor, k_cmp: torch.Tensor, block_size: int, scale: float) -> torch.Tensor:
    """Attention mass each query block puts on each compressed key, summed over its queries and its GQA group.

    ``q (B,H,N,D)``, ``k_cmp (B,Hkv,M,D)`` -> fp32 ``(B, Hkv, ceil(N / block_size), M)``.
    """
    if q.dim() != 4 or k_cmp.dim() != 4 or k_cmp.shape[0] != q.shape[0] or k_cmp.shape[3] != q.shape[3]:
        raise ValueError(f"q {tuple(q.shape)}, k_cmp {tuple(k_cmp.shape)}: expected (B,H,N,D) and (B,Hkv,M,D)")
    b, h, n, d = q.shape
    hk, m = k_cmp.shape[1], k_cmp.shape[2]
    if h % hk or q.dtype != k_cmp.dtype or q.dtype not in _DTYPES or q.device != k_cmp.device:
        raise ValueError(f"q {q.dtype} H={h}, k_cmp {k_cmp.dtype} Hkv={hk}: need H % Hkv == 0 and one dtype/device")
    if block_size < 16 or block_size & (block_size - 1):
        raise ValueError(f"block_size={block_size}: the Triton path needs a power of two >= 16")
    nqb = triton.cdiv(n, block_size)
    per_head = torch.empty((b, h, nqb, m), device=q.device, dtype=torch.float32)
    bd = max(16, triton.next_power_of_2(d))
    _block_scores_kernel[(nqb, b * h)](
        q, k_cmp, per_head, *q.stride(), *k_cmp.stride(), n, m, d, h, h // hk, nqb, scale * _LOG2E,
        BS=block_size, BM=64, BD=bd, PREC=_precision(q.dtype), **_launch_opts(bd))
    return per_head.view(b, hk, h // hk, nqb, m).sum(2)  # (B, Hkv, NQB, M)


def default_scale(d: int, scale: float | None) -> float:
    return 1.0 / math.sqrt(d) if scale is None else float(scale)
