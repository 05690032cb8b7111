"""Benchmark: vision NSA kernels and the sparse global block against dense attention (DESIGN.md section 7).

Usage (CUDA GPU only; the numbers in bench/RESULTS.md come from an H100 through the ``device`` tool)::

    .venv/bin/python bench/kernels.py --out kernels.json [--only nsa|global] [--n 28800 ...] [--d 64 ...]
                                      [--iters 20 --warmup 5] [--no-flex]

NSA part, bf16, H = Hkv = 16, block 64, n_select 16: for N in {1200, 3600, 9600, 28800, 65280} x D in {64, 128}
at B = 1, plus B = 8 at N = 3600: forward, backward and forward+backward times (median over ``--iters`` after
``--warmup``) and peak memory of ``selected_attention`` (random top-16 block lists that always include the
query's own block) and ``vision_nsa`` (all three branches, ``dense_below=0``), against SDPA with the cuDNN
backend selected explicitly, SDPA flash, and FlexAttention with the same block mask (for vision NSA: the union
of its selected and local blocks). Reported: speed-up over each baseline, the ideal speed-up (dense KV tokens /
KV tokens a query actually attends) and the fraction of it reached, and the selection overhead (block means,
compressed scores, top-n, index canonicalisation and inverse index) as a share of vision NSA fwd+bwd time.

Global part: the sparse global block at P5 (B=8, 34x60, C=512, k=512) and P4 (B=8, 68x120, C=256, k=512),
64-channel heads, against dense SDPA over all tokens with the same projections and q/k LayerNorm.

Vision NSA pads each camera's patch grid to whole 8x8 tiles (see depthtracker.kernels.nsa.layout), so its token
count ``n_pad`` can exceed N; the dense baselines run at N. Every figure comes from this run; a baseline that
fails records its error instead of a number. Exit status 0 when every target is met, 1 otherwise.
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import platform
import statistics
import sys
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F
from depthtracker.kernels.nsa import (
    TileLayout,
    compress_blocks,
    inverse_block_index,
    local_block_idx,
    normalize_block_idx,
    select_blocks,
    selected_attention,
    vision_nsa,
)
from depthtracker.kernels.sparse_global import sparse_global_attention

N_LIST = (1200, 3600, 9600, 28800, 65280)
D_LIST = (64, 128)
HEADS = 16
BLOCK = 64  # tokens per NSA block (an 8x8 patch tile)
N_SELECT = 16  # KV blocks per query block in the selected branch
# Camera rigs behind each N: cams x patch rows x patch columns (16-px patches: 480p = 30x40, 720p = 45x80,
# 1088x1920 = 68x120).
RIGS = {1200: (1, 30, 40), 3600: (1, 45, 80), 9600: (8, 30, 40), 28800: (8, 45, 80), 65280: (8, 68, 120)}
GLOBAL_CASES = {"P5": (8, 34, 60, 512, 512), "P4": (8, 68, 120, 256, 512)}  # B, H, W, C, k
GLOBAL_HEAD_DIM = 64
TARGETS = {"nsa_fwdbwd_speedup_vs_cudnn_at_28800": 6.0, "selection_overhead_share_max": 0.15,
           "global_P5_speedup": 2.0, "global_P4_speedup": 8.0}  # DESIGN.md section 7


class Timer:
    """Elapsed milliseconds between marks: CUDA events on a GPU, ``perf_counter`` after a sync otherwise."""

    def __init__(self, device: torch.device) -> None:
        self.cuda = device.type == "cuda"

    def mark(self):
        if self.cuda:
            e = torch.cuda.Event(enable_timing=True)
            e.record()
            return e
        return time.perf_counter()

    def ms(self, a, b) -> float:
        if self.cuda:
            b.synchronize()
            return a.elapsed_time(b)
        return (b - a) * 1e3


def measure(fn: Callable[[], torch.Tensor], leaves: list[torch.Tensor], iters: int, warmup: int) -> dict:
    """Median forward, backward and forward+backward milliseconds of ``fn`` and the peak memory of one step."""
    device = leaves[0].device
    timer = Timer(device)
    grad = None
    fwd, bwd, both = [], [], []
    for i in range(warmup + iters):
        for t in leaves:
            t.grad = None
        t0 = timer.mark()
        out = fn()
        t1 = timer.mark()
        if grad is None:
            grad = torch.randn_like(out)
        out.backward(grad)
        t2 = timer.mark()
        if i >= warmup:
            fwd.append(timer.ms(t0, t1))
            bwd.append(timer.ms(t1, t2))
            both.append(timer.ms(t0, t2))
        del out
    peak = None
    if device.type == "cuda":
        for t in leaves:
            t.grad = None
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
        fn().backward(grad)
        torch.cuda.synchronize()
        peak = (torch.cuda.max_memory_allocated() - before) / 2**20
    return {"fwd_ms": statistics.median(fwd), "bwd_ms": statistics.median(bwd), "fwdbwd_ms": statistics.median(both),
            "peak_mib": peak}


def measure_plain(fn: Callable[[], object], device: torch.device, iters: int, warmup: int) -> float:
    """Median milliseconds of a call without autograd (the selection pipeline)."""
    timer = Timer(device)
    times = []
    for i in range(warmup + iters):
        t0 = timer.mark()
        fn()
        t1 = timer.mark()
        if i >= warmup:
            times.append(timer.ms(t0, t1))
    return statistics.median(times)


def guarded(name: str, run: Callable[[], dict]) -> dict:
    """Run one measurement; a failing baseline records its error instead of a number."""
    try:
        return {"impl": name, **run()}
    except Exception as exc:  # noqa: BLE001 - any backend failure is a result worth recording
        return {"impl": name, "error": f"{type(exc).__name__}: {exc}"[:300]}


def sdpa(backend):
    from torch.nn.attention import sdpa_kernel

    def fn(q, k, v):
        with sdpa_kernel(backend):
            return F.scaled_dot_product_attention(q, k, v)
    return fn


def flex_with_blocks(block_idx: torch.Tensor, n: int):
    """FlexAttention restricted to the KV blocks in ``block_idx`` (B, H, NQB, S), same blocks as our kernels."""
    from torch.nn.attention.flex_attention import BlockMask, flex_attention

    idx = normalize_block_idx(block_idx, block_idx.shape[2])  # valid ids first, then -1
    counts = (idx >= 0).sum(-1).to(torch.int32)  # (B, H, NQB)
    nkb = block_idx.shape[2]
    indices = torch.zeros((*idx.shape[:3], nkb), dtype=torch.int32, device=idx.device)
    indices[..., : idx.shape[-1]] = idx.clamp_min(0)
    mask = BlockMask.from_kv_blocks(counts, indices, BLOCK_SIZE=BLOCK, seq_lengths=(n, n))
    compiled = torch.compile(flex_attention, dynamic=False)
    return lambda q, k, v: compiled(q, k, v, block_mask=mask)


def random_top_blocks(b: int, h: int, nb: int, n_select: int, device) -> torch.Tensor:
    """Block lists like select_blocks produces: the query's own block plus random distinct others."""
    scores = torch.rand(b, h, nb, nb, device=device)
    return select_blocks(scores, n_select)


def leaves_qkv(b: int, h: int, n: int, d: int, device, dtype) -> list[torch.Tensor]:
    return [torch.randn(b, h, n, d, device=device, dtype=dtype, requires_grad=True) for _ in range(3)]


def bench_nsa_case(b: int, n: int, d: int, args, device, dtype) -> list[dict]:
    """Rows for one (B, N, D): selected_attention and vision_nsa against the dense and Flex baselines."""
    from torch.nn.attention import SDPBackend

    rows = []
    base = {"B": b, "N": n, "D": d, "H": HEADS}
    nb = math.ceil(n / BLOCK)
    q, k, v = leaves_qkv(b, HEADS, n, d, device, dtype)
    dense = {}
    for name, backend in (("sdpa_cudnn", SDPBackend.CUDNN_ATTENTION), ("sdpa_flash", SDPBackend.FLASH_ATTENTION)):
        fn = sdpa(backend)
        dense[name] = guarded(name, lambda fn=fn: measure(lambda: fn(q, k, v), [q, k, v], args.iters, args.warmup))
        rows.append({"op": "dense", **base, **dense[name]})

    idx = random_top_blocks(b, HEADS, nb, N_SELECT, device)
    sel_kv = (idx >= 0).sum(-1).float().mean().item() * BLOCK
    row = guarded("selected_attention", lambda: measure(lambda: selected_attention(q, k, v, idx, BLOCK), [q, k, v],
                                                        args.iters, args.warmup))
    rows.append({"op": "selected_attention", **base, **row, "ideal_speedup": n / sel_kv})
    if not args.no_flex:
        flex = flex_with_blocks(idx, n)
        rows.append({"op": "selected_attention", **base, **guarded("flex_same_mask", lambda: measure(
            lambda: flex(q, k, v), [q, k, v], args.iters, args.warmup))})

    cams, hp, wp = RIGS[n]
    layout = TileLayout(cams, hp, wp, tile=int(math.isqrt(BLOCK)))
    npad = layout.n_tokens
    qv, kv, vv = leaves_qkv(b, HEADS, npad, d, device, dtype)
    gates = torch.rand(b, HEADS, npad, 3, device=device, dtype=dtype, requires_grad=True)
    loc = local_block_idx(layout, device=device)
    vis_kv = ((loc >= 0).sum(-1).float().mean().item() + N_SELECT) * BLOCK + layout.n_blocks
    vbase = {**base, "n_pad": npad, "layout": [cams, hp, wp]}
    row = guarded("vision_nsa", lambda: measure(
        lambda: vision_nsa(qv, kv, vv, gates, layout, N_SELECT, dense_below=0), [qv, kv, vv, gates],
        args.iters, args.warmup))
    scale = d ** -0.5

    def selection():  # what vision_nsa spends on choosing blocks, outside the attention kernels themselves
        from depthtracker.kernels.nsa.triton import compressed_block_scores

        sel = select_blocks(compressed_block_scores(qv.detach(), compress_blocks(kv.detach(), BLOCK), BLOCK, scale),
                            N_SELECT)
        for bi in (sel, loc.view(1, 1, layout.n_blocks, -1).expand(b, HEADS, layout.n_blocks, loc.shape[1])):
            inverse_block_index(normalize_block_idx(bi, layout.n_blocks), layout.n_blocks)

    if "error" not in row:
        row["selection_ms"] = measure_plain(selection, device, args.iters, args.warmup)
        row["selection_share"] = row["selection_ms"] / row["fwdbwd_ms"]
    rows.append({"op": "vision_nsa", **vbase, **row, "ideal_speedup": n / vis_kv})
    if not args.no_flex:
        with torch.no_grad():
            sel = select_blocks(torch.rand(b, HEADS, layout.n_blocks, layout.n_blocks, device=device), N_SELECT)
        union = torch.cat([sel, loc.view(1, 1, layout.n_blocks, -1).expand(b, HEADS, -1, -1)], dim=-1)
        flex = flex_with_blocks(union, npad)
        rows.append({"op": "vision_nsa", **vbase, **guarded("flex_same_mask", lambda: measure(
            lambda: flex(qv, kv, vv), [qv, kv, vv], args.iters, args.warmup))})

    for r in rows:  # speed-ups against the dense baselines, and the fraction of the ideal reached
        if r["op"] == "dense" or "error" in r:
            continue
        for name, dn in dense.items():
            if "error" not in dn:
                for phase in ("fwd", "bwd", "fwdbwd"):
                    r[f"speedup_{phase}_vs_{name}"] = dn[f"{phase}_ms"] / r[f"{phase}_ms"]
        if "ideal_speedup" in r and "speedup_fwdbwd_vs_sdpa_cudnn" in r:
            r["fraction_of_ideal"] = r["speedup_fwdbwd_vs_sdpa_cudnn"] / r["ideal_speedup"]
    return rows


def global_params(c: int, device, dtype) -> list[torch.Tensor]:
    hd = GLOBAL_HEAD_DIM
    shapes = [(3 * c, c), (3 * c,), (c, c), (c,), (hd,), (hd,), (hd,), (hd,), (c,)]
    inits = [c ** -0.5, 0.02, c ** -0.5, 0.02, None, 0.0, None, 0.0, 0.1]
    out = []
    for shape, s in zip(shapes, inits):
        t = torch.ones(shape, device=device) if s is None else torch.randn(shape, device=device) * s
        out.append(t.to(dtype).requires_grad_(True))
    return out


def dense_global(x, w_qkv, b_qkv, w_out, b_out, lqw, lqb, lkw, lkb, alpha, heads):
    """The same block over all tokens: projections, fp32 LayerNorm on q and k, SDPA, gated residual."""
    b, n, c = x.shape
    hd = c // heads
    qkv = F.linear(x, w_qkv, b_qkv).view(b, n, 3, heads, hd).permute(2, 0, 3, 1, 4)  # (3, B, heads, N, hd)
    q = F.layer_norm(qkv[0].float(), (hd,), lqw.float(), lqb.float()).to(x.dtype)
    k = F.layer_norm(qkv[1].float(), (hd,), lkw.float(), lkb.float()).to(x.dtype)
    o = F.scaled_dot_product_attention(q, k, qkv[2]).transpose(1, 2).reshape(b, n, c)
    return x + alpha * F.linear(o, w_out, b_out)


def bench_global_case(level: str, b: int, hh: int, ww: int, c: int, topk: int, args, device, dtype) -> list[dict]:
    """Dense and sparse rows for one pyramid level."""
    heads = c // GLOBAL_HEAD_DIM
    x = torch.randn(b, hh * ww, c, device=device, dtype=dtype, requires_grad=True)
    params = global_params(c, device, dtype)
    leaves = [x, *params]
    base = {"level": level, "B": b, "N": hh * ww, "C": c, "k": topk, "heads": heads}
    dense = guarded("dense_sdpa", lambda: measure(lambda: dense_global(x, *params, heads), leaves, args.iters,
                                                  args.warmup))
    sparse = guarded("sparse_global", lambda: measure(
        lambda: sparse_global_attention(x, *params, topk, heads), leaves, args.iters, args.warmup))
    if "error" not in dense and "error" not in sparse:
        for phase in ("fwd", "bwd", "fwdbwd"):
            sparse[f"speedup_{phase}_vs_dense"] = dense[f"{phase}_ms"] / sparse[f"{phase}_ms"]
    return [{"op": "global", **base, **dense}, {"op": "global", **base, **sparse}]


def bench_global(args, device, dtype) -> list[dict]:
    rows = []
    for level, case in GLOBAL_CASES.items():
        print(f"global {level} ...", file=sys.stderr, flush=True)
        rows += bench_global_case(level, *case, args, device, dtype)
    return rows


def verdicts(nsa: list[dict], glob: list[dict]) -> dict:
    """PASS/FAIL per DESIGN.md target, from the rows of this run only (None where a row is missing)."""
    out = {}
    for op in ("selected_attention", "vision_nsa"):
        ups = [r.get("speedup_fwdbwd_vs_sdpa_cudnn") for r in nsa if r["op"] == op and r["impl"] == op
               and r["N"] == 28800 and r["B"] == 1]
        ups = [u for u in ups if u is not None]
        out[f"{op}_fwdbwd_speedup_vs_cudnn_at_28800"] = (
            None if not ups else {"min": min(ups), "target": TARGETS["nsa_fwdbwd_speedup_vs_cudnn_at_28800"],
                                  "pass": min(ups) >= TARGETS["nsa_fwdbwd_speedup_vs_cudnn_at_28800"]})
    shares = [r["selection_share"] for r in nsa if r["impl"] == "vision_nsa" and r["N"] == 28800 and
              "selection_share" in r]
    out["selection_overhead_share_at_28800"] = (
        None if not shares else {"max": max(shares), "target": TARGETS["selection_overhead_share_max"],
                                 "pass": max(shares) <= TARGETS["selection_overhead_share_max"]})
    for level in ("P5", "P4"):
        ups = [r["speedup_fwdbwd_vs_dense"] for r in glob if r["level"] == level and "speedup_fwdbwd_vs_dense" in r]
        tgt = TARGETS[f"global_{level}_speedup"]
        out[f"global_{level}_fwdbwd_speedup"] = None if not ups else {"value": ups[0], "target": tgt,
                                                                      "pass": ups[0] >= tgt}
    return out


def fmt(x, spec: str) -> str:
    return "-" if x is None else format(x, spec)


def print_table(nsa: list[dict], glob: list[dict]) -> None:
    if nsa:
        print(f"{'op':<19}{'impl':<19}{'B':>2}{'N':>7}{'D':>5}{'fwd ms':>9}{'bwd ms':>9}{'f+b ms':>9}"
              f"{'peak MiB':>10}{'x cuDNN':>9}{'x flash':>9}{'ideal':>7}{'frac':>6}{'sel %':>7}")
        for r in nsa:
            if "error" in r:
                print(f"{r['op']:<19}{r['impl']:<19}{r['B']:>2}{r['N']:>7}{r['D']:>5}  ERROR {r['error'][:80]}")
                continue
            share = r.get("selection_share")
            print(f"{r['op']:<19}{r['impl']:<19}{r['B']:>2}{r['N']:>7}{r['D']:>5}{r['fwd_ms']:>9.3f}"
                  f"{r['bwd_ms']:>9.3f}{r['fwdbwd_ms']:>9.3f}{fmt(r['peak_mib'], '.0f'):>10}"
                  f"{fmt(r.get('speedup_fwdbwd_vs_sdpa_cudnn'), '.2f'):>9}"
                  f"{fmt(r.get('speedup_fwdbwd_vs_sdpa_flash'), '.2f'):>9}{fmt(r.get('ideal_speedup'), '.1f'):>7}"
                  f"{fmt(r.get('fraction_of_ideal'), '.2f'):>6}{fmt(None if share is None else 100 * share, '.1f'):>7}")
    if glob:
        print(f"\n{'level':<6}{'impl':<15}{'B':>2}{'N':>6}{'C':>5}{'k':>5}{'fwd ms':>9}{'bwd ms':>9}{'f+b ms':>9}"
              f"{'peak MiB':>10}{'x dense':>9}")
        for r in glob:
            head = f"{r['level']:<6}{r['impl']:<15}{r['B']:>2}{r['N']:>6}{r['C']:>5}{r['k']:>5}"
            if "error" in r:
                print(f"{head}  ERROR {r['error'][:80]}")
                continue
            print(f"{head}{r['fwd_ms']:>9.3f}{r['bwd_ms']:>9.3f}{r['fwdbwd_ms']:>9.3f}{fmt(r['peak_mib'], '.0f'):>10}"
                  f"{fmt(r.get('speedup_fwdbwd_vs_dense'), '.2f'):>9}")


def machine(device: torch.device) -> dict:
    import triton

    info = {"python": platform.python_version(), "torch": torch.__version__, "triton": triton.__version__,
            "host": platform.node()}
    if device.type == "cuda":
        info.update(gpu=torch.cuda.get_device_name(device), cuda=torch.version.cuda,
                    cudnn=torch.backends.cudnn.version())
    return info


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="JSON file to write")
    parser.add_argument("--only", choices=("nsa", "global"), default=None)
    parser.add_argument("--n", type=int, nargs="*", default=list(N_LIST), help=f"subset of {N_LIST}")
    parser.add_argument("--d", type=int, nargs="*", default=list(D_LIST), help=f"subset of {D_LIST}")
    parser.add_argument("--iters", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--no-flex", action="store_true", help="skip FlexAttention (its compile is slow)")
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        print("bench/kernels.py needs a CUDA GPU", file=sys.stderr)
        return 2
    if any(n not in RIGS for n in args.n):
        parser.error(f"--n must be a subset of {N_LIST}")
    device, dtype = torch.device("cuda"), torch.bfloat16
    torch.manual_seed(0)
    nsa, glob = [], []

    def write(complete: bool) -> dict:
        # Written after every case, so that a run stopped by a time limit (a lent GPU's minutes are few) still
        # leaves every figure measured so far; "complete" says whether the run got to the end.
        result = {"date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
                  "machine": machine(device), "complete": complete, "dtype": "bf16", "heads": HEADS, "block": BLOCK,
                  "n_select": N_SELECT, "iters": args.iters, "warmup": args.warmup, "targets": TARGETS,
                  "verdicts": verdicts(nsa, glob), "nsa": nsa, "global": glob}
        with open(args.out, "w") as f:
            json.dump(result, f, indent=1)
        return result

    if args.only in (None, "nsa"):
        cases = [(1, n, d) for n in args.n for d in args.d] + ([(8, 3600, d) for d in args.d] if 3600 in args.n else [])
        for b, n, d in cases:
            print(f"nsa B={b} N={n} D={d} ...", file=sys.stderr, flush=True)
            nsa += bench_nsa_case(b, n, d, args, device, dtype)
            torch.cuda.empty_cache()
            write(complete=False)
    if args.only in (None, "global"):
        glob = bench_global(args, device, dtype)
    print_table(nsa, glob)
    result = write(complete=True)
    print(json.dumps(result["verdicts"], indent=1))
    ok = [v["pass"] for v in result["verdicts"].values() if v is not None]
    return 0 if ok and all(ok) else 1


if __name__ == "__main__":
    sys.exit(main())
