"""DepthTrack attention ablation: ``mha | mqa | gqa | nsa`` token mixers under one training budget (DESIGN.md §4).

Usage::

    .venv/bin/python bench/attention_ablation.py --bag out/data/train-s1 [--bag ...] --val-bag out/data/val-s100 \\
        --out runs/attention --steps 200 --batch-size 4 [--kinds mha mqa gqa nsa] [--seeds 0 1 2] [--threads 2]
    .venv/bin/python bench/attention_ablation.py --latency-only --cameras 4 --out /tmp/attn   # e.g. on the GPU

Per kind (the preset with only the attention fields changed; ``--set KEY=VALUE`` applies to every kind):

* ``mha``: ``kv_heads = heads``; ``mqa``: ``kv_heads = 1``; ``gqa``: the preset's ``kv_heads`` (``--gqa-kv-heads``
  to change it; at ``edge`` with 3 heads that is 1, i.e. the same model as ``mqa``: the report says so);
* ``nsa``: ``nsa_dense_below = 0`` so the sparse path runs at the edge size (300 tokens per camera, below the
  default 1024-token dense threshold) and ``nsa_tile = 4``: a block is ``tile**2 = 16`` tokens, the smallest the
  Triton kernels accept (a power of two >= 16). Tile 5 would divide the 15x20 patch grid exactly, but its 25-token
  blocks only run on the naive CPU path; tile 4 pads each camera's grid to 16x20 (20 padding tokens, 6 %). The
  layout used (blocks, padding, blocks each query block attends) is printed and recorded.

Then, for every kind:

1. **train** (unless ``--latency-only``) with ``train.depthtrack.fit_depthtrack`` and the training settings of
   ``train_depthtrack`` (``depthtracker train depthtrack``: AdamW, lr 1e-3, warm-up, cosine, EMA 0.999, clip 1.0)
   for ``--steps`` steps of ``--batch-size`` on ``--bag``, every kind from the same seed and the same data order,
   into ``OUT/KIND/`` (``OUT/KIND/seedS/`` with several ``--seeds``); ``final_losses`` are the mean of the last
   logging window (up to 10 steps);
2. **latency** of one depth forward of one set (batch 1, every camera of the bag at the model input size; without a
   bag ``--cameras`` random images with a 70 degree pinhole) under ``torch.inference_mode``: random-init weights
   (the cost does not depend on their values), ``--warmup`` calls, then ``--runs`` timed calls taken round-robin over
   the kinds so that load from other processes spreads evenly; median. CPU always, CUDA when available (fp32, as
   the predictor runs; ``torch.cuda.synchronize`` around each call);
3. **score** (EMA weights, ``DepthTrackPredictor``) on ``--val-bag``: depth ``abs_rel``/``delta1`` at the bag's
   image resolution over every valid ground-truth pixel of every camera, averaged per image as
   ``depthtracker eval depthtrack`` does; tracking over that command's sequences (per camera and object the longest
   visible run, the ``--max-sequences`` longest): ``DepthTrackPredictor.follow`` from the ground-truth box of the
   first frame, then over the remaining frames the mean distance between predicted and true box centres (pixels)
   and the OTB success AUC, averaged over sequences. The SGBM/CSRT/KCF baselines of the eval command are not run.

Writes ``OUT/ablation.json`` (machine, settings, per kind: params, latencies, metrics as mean over seeds with
``*_spread`` = sample standard deviation when there are several, and per-seed ``runs``), ``OUT/ablation.md`` (a
table for bench/RESULTS.md) and ``OUT/ablation.png`` (both written by ``attention_ablation_report.py``). Imports
nothing from ``depthtracker.ros``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import statistics
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from attention_ablation_report import NOTE, aggregate, write_markdown, write_plot  # bench/ on sys.path
from depthtracker.data.bags import BagReader
from depthtracker.data.crops import resize_camera
from depthtracker.eval.depthtrack import DepthTrackEvalConfig, add_visible, longest_runs, run_frames
from depthtracker.eval.metrics import depth_metrics, sot_metrics
from depthtracker.kernels.nsa import TileLayout
from depthtracker.machine import machine_info
from depthtracker.models.depthtrack import DepthTrack, DepthTrackConfig
from depthtracker.models.depthtrack.predictor import DepthTrackPredictor
from depthtracker.train.depthtrack import build_model_config, data_config_for, fit_depthtrack
from depthtracker.train.depthtrack_cli import parse_overrides
from depthtracker.train.engine import TrainConfig

KINDS = ("mha", "mqa", "gqa", "nsa")
ATTENTION_FIELDS = ("attention", "kv_heads", "nsa_tile", "nsa_n_select", "nsa_dense_below")
LOG_EVERY = 10  # TrainConfig.log_every: final losses average this many last steps


# ---- configurations ----------------------------------------------------------------------------------------------
def kind_config(kind: str, preset: str, overrides: dict[str, Any], nsa_tile: int, nsa_n_select: int,
                gqa_kv_heads: int | None) -> DepthTrackConfig:
    """The preset + ``overrides`` with the attention fields of ``kind`` (module docstring)."""
    base = build_model_config(preset, overrides)
    attn: dict[str, Any] = {"attention": kind}
    if kind == "mha":
        attn["kv_heads"] = base.heads
    elif kind == "mqa":
        attn["kv_heads"] = 1
    elif kind == "gqa" and gqa_kv_heads is not None:
        attn["kv_heads"] = gqa_kv_heads
    elif kind == "nsa":
        attn.update(nsa_dense_below=0, nsa_tile=nsa_tile, nsa_n_select=nsa_n_select)
    return build_model_config(preset, {**overrides, **attn})


def nsa_layout(cfg: DepthTrackConfig, cameras: int) -> dict[str, Any]:
    """What the NSA depth sequence of one set looks like with ``cfg``, and whether it runs the sparse path."""
    layout = TileLayout(cameras, cfg.input_height // cfg.patch, cfg.input_width // cfg.patch, cfg.nsa_tile)
    tokens = cameras * layout.hp * layout.wp
    return {"tile": cfg.nsa_tile, "block_size": layout.block_size, "n_select": cfg.nsa_n_select,
            "dense_below": cfg.nsa_dense_below, "patch_grid": [layout.hp, layout.wp],
            "tiles_per_camera": [layout.tiles_h, layout.tiles_w], "blocks": layout.n_blocks,
            "tokens": tokens, "padded_tokens": layout.n_tokens, "padding_tokens": layout.n_tokens - tokens,
            "local_blocks": 9,  # the 3x3 tile neighbourhood (kernels.nsa.compose)
            # Attention.forward and compose_vision_nsa run dense attention below dense_below tokens.
            "sparse": layout.n_tokens >= cfg.nsa_dense_below}


def triton_block_ok(block_size: int) -> bool:
    return block_size >= 16 and block_size & (block_size - 1) == 0  # kernels/nsa/triton.py check_qkv


# ---- latency -----------------------------------------------------------------------------------------------------
def latency_inputs(bag: Path | None, cameras: int, cfg: DepthTrackConfig) -> tuple[tuple[torch.Tensor, ...], str]:
    """``(images (1,V,3,H,W), K (1,V,3,3), T (1,V,4,4))`` at the model input size and a description: the first set of
    ``bag`` resized as the predictor does, or ``cameras`` random images with a 70 degree pinhole side by side."""
    h, w = cfg.input_height, cfg.input_width
    if bag is not None:
        with BagReader(bag) as reader:
            cams, sample = reader.cameras, next(reader.samples())
        ims, Ks = [], []
        for frame, cam in zip(sample.frames, cams):
            im, K, _ = resize_camera(frame.image, cam.K, (h, w))
            ims.append(torch.from_numpy(np.ascontiguousarray(im)).permute(2, 0, 1).float() / 255.0)
            Ks.append(torch.from_numpy(K).float())
        Ts = [torch.tensor(np.array(c.T_world_cam), dtype=torch.float64) for c in cams]
        return (torch.stack(ims)[None], torch.stack(Ks)[None], torch.stack(Ts)[None]), f"first set of {bag}"
    from depthtracker.geometry.camera import intrinsics_from_fov

    gen = torch.Generator().manual_seed(0)
    K = torch.from_numpy(intrinsics_from_fov(w, h, 70.0)).float()
    T = torch.eye(4, dtype=torch.float64).repeat(cameras, 1, 1)
    T[:, 0, 3] = 0.1 * torch.arange(cameras, dtype=torch.float64)  # 10 cm apart along x
    return ((torch.rand(1, cameras, 3, h, w, generator=gen), K.repeat(1, cameras, 1, 1), T[None]),
            f"{cameras} random images, 70 degree pinhole")


def measure_latency(configs: dict[str, DepthTrackConfig], inputs: tuple[torch.Tensor, ...], device: str,
                    warmup: int, runs: int) -> dict[str, float]:
    """Median milliseconds of one ``forward_depth`` per kind; timed calls round-robin over the kinds."""
    dev = torch.device(device)
    models = {}
    for kind, cfg in configs.items():
        torch.manual_seed(0)
        models[kind] = DepthTrack(cfg).to(dev).eval()
    x = [t.to(dev) for t in inputs]
    cuda = dev.type == "cuda"
    times: dict[str, list[float]] = {k: [] for k in models}
    with torch.inference_mode():
        for i in range(warmup + runs):
            for kind, model in models.items():
                if cuda:
                    torch.cuda.synchronize(dev)
                t0 = time.perf_counter()
                model.forward_depth(*x)
                if cuda:
                    torch.cuda.synchronize(dev)
                if i >= warmup:
                    times[kind].append(1e3 * (time.perf_counter() - t0))
    return {k: statistics.median(v) for k, v in times.items()}


# ---- training ----------------------------------------------------------------------------------------------------
def train_config(steps: int, batch_size: int, seed: int, out_dir: Path, progress: bool) -> TrainConfig:
    """``train_depthtrack``'s TrainConfig (what ``depthtracker train depthtrack --max-steps`` runs), no validation."""
    return TrainConfig(max_steps=steps, batch_size=batch_size, lr=1e-3, weight_decay=0.05,
                       warmup_steps=min(200, max(1, steps // 10)), ema_decay=0.999, ema_ramp_steps=200.0,
                       log_every=LOG_EVERY, out_dir=str(out_dir), seed=seed, progress=progress, grad_clip=1.0)


def train_kind(train_set: Any, cfg: DepthTrackConfig, tcfg: TrainConfig, device: str | None) -> dict[str, Any]:
    t0 = time.perf_counter()
    result = fit_depthtrack(train_set, cfg, tcfg, device=device)
    seconds = time.perf_counter() - t0
    last = [h for h in result.history if "train/loss" in h][-1]
    skip = {"train/lr", "train/samples_per_s", "train/epoch", "train/grad_norm"}
    losses = {k.removeprefix("train/"): float(v) for k, v in last.items() if k.startswith("train/") and k not in skip}
    return {"checkpoint": str(result.last_checkpoint), "steps": result.step, "train_seconds": seconds,
            "final_losses": losses}


# ---- scoring -----------------------------------------------------------------------------------------------------
def center_error(pred: np.ndarray, gt: np.ndarray) -> float:
    """Mean distance between box centres (pixels), boxes ``(T, 4)`` xyxy."""
    d = (pred[:, :2] + pred[:, 2:]) / 2 - (gt[:, :2] + gt[:, 2:]) / 2  # (T, 2)
    return float(np.mean(np.hypot(d[:, 0], d[:, 1])))


def score(bag: Path, predictors: dict[str, DepthTrackPredictor], cfg: DepthTrackEvalConfig,
          progress: bool) -> dict[str, dict[str, Any]]:
    """Depth and tracking metrics of every predictor on ``bag`` in one pass (see the module docstring)."""
    depth_rows: dict[str, list[dict[str, float]]] = {k: [] for k in predictors}
    tracks: dict[tuple[int, int], dict[int, np.ndarray]] = {}
    stamps: list[int] = []
    with BagReader(bag) as reader:
        cams = reader.cameras
        total = reader.num_sets if cfg.max_sets == 0 else min(cfg.max_sets, reader.num_sets)
        it = reader.samples()
        if progress:
            from tqdm import tqdm

            it = tqdm(it, total=total, desc="score", unit="set", leave=False)
        for i, s in enumerate(it):
            if i >= total:
                break
            stamps.append(s.stamp_ns)
            for name, pred in predictors.items():
                for dm, gt in zip(pred.predict_depth([f.image for f in s.frames], cams, s.stamp_ns), s.depths):
                    if gt is not None and np.isfinite(gt.depth).any():
                        depth_rows[name].append(depth_metrics(dm.depth, gt.depth))
            add_visible(tracks, i, s.annotations, cfg)  # the eval command's track selection (eval/depthtrack.py)
        runs = longest_runs(tracks, cfg)
        frames = run_frames(reader, runs, total)
    out: dict[str, dict[str, Any]] = {}
    for name, pred in predictors.items():
        rows = []
        for r in runs:
            boxes = pred.follow([frames[(r["camera"], i)] for i in r["sets"]], r["boxes"][0],
                                [stamps[i] for i in r["sets"]])
            m = sot_metrics(boxes[1:], r["boxes"][1:])
            rows.append({"center": center_error(boxes[1:], r["boxes"][1:]), "auc": m["success_auc"],
                         "p20": m["precision_20px"]})
        d = depth_rows[name]
        out[name] = {"abs_rel": float(np.mean([r["abs_rel"] for r in d])) if d else math.nan,
                     "delta1": float(np.mean([r["delta1"] for r in d])) if d else math.nan,
                     "sot_center_error_px": float(np.mean([r["center"] for r in rows])) if rows else math.nan,
                     "sot_success_auc": float(np.mean([r["auc"] for r in rows])) if rows else math.nan,
                     "sot_precision_20px": float(np.mean([r["p20"] for r in rows])) if rows else math.nan,
                     "depth_images": len(d), "sequences": len(rows)}
    return out


# ---- main --------------------------------------------------------------------------------------------------------
def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--bag", action="append", type=Path, default=[], help="training bag (repeatable)")
    p.add_argument("--val-bag", type=Path, default=None, help="bag scored after training")
    p.add_argument("--out", type=Path, required=True, help="output folder: OUT/KIND/ runs, OUT/ablation.*")
    p.add_argument("--kinds", nargs="+", choices=KINDS, default=list(KINDS), help="attention kinds (default all)")
    p.add_argument("--preset", choices=("edge", "base"), default="edge", help="DepthTrack preset (default edge)")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="model config override for every kind")
    p.add_argument("--steps", type=int, default=200, help="optimizer steps per kind and seed (default 200)")
    p.add_argument("--batch-size", type=int, default=4, help="sets per step (default 4)")
    p.add_argument("--seeds", nargs="+", type=int, default=[0], help="training seeds (default 0)")
    p.add_argument("--nsa-tile", type=int, default=4, help="nsa tile side in patches (default 4: 16-token blocks)")
    p.add_argument("--nsa-n-select", type=int, default=4, help="nsa selected blocks per query block (default 4)")
    p.add_argument("--gqa-kv-heads", type=int, default=None, help="gqa KV heads (default: the preset's)")
    p.add_argument("--latency-only", action="store_true", help="no training or scoring: params and latency")
    p.add_argument("--cameras", type=int, default=4, help="cameras of the latency input without a bag (default 4)")
    p.add_argument("--runs", type=int, default=20, help="timed forward calls per kind and device (default 20)")
    p.add_argument("--warmup", type=int, default=3, help="untimed calls before them (default 3)")
    p.add_argument("--no-cuda", action="store_true", help="skip the CUDA latency even when CUDA is available")
    p.add_argument("--device", default=None, help="training and scoring device (default: cuda when available)")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (default 0: torch's choice)")
    p.add_argument("--max-sets", type=int, default=0, help="val sets scored (default 0 = all)")
    p.add_argument("--max-sequences", type=int, default=8, help="val tracking sequences (default 8)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    args = p.parse_args(argv)
    if not args.latency_only and (not args.bag or args.val_bag is None):
        p.error("training needs --bag and --val-bag (or pass --latency-only)")
    if args.steps < 1 or args.batch_size < 1 or args.runs < 1 or args.warmup < 0 or args.cameras < 1:
        p.error("--steps, --batch-size, --runs and --cameras must be >= 1, --warmup >= 0")
    return args


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Run the ablation (see the module docstring); returns the report written to ``OUT/ablation.json``."""
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    overrides = parse_overrides(args.set)
    clash = sorted(set(overrides) & set(ATTENTION_FIELDS))
    if clash:
        raise ValueError(f"--set {clash}: the ablation sets the attention fields itself (use --nsa-tile, "
                         "--nsa-n-select, --gqa-kv-heads)")
    configs = {k: kind_config(k, args.preset, overrides, args.nsa_tile, args.nsa_n_select, args.gqa_kv_heads)
               for k in args.kinds}
    bag = args.val_bag or (args.bag[0] if args.bag else None)
    inputs, input_desc = latency_inputs(bag, args.cameras, next(iter(configs.values())))
    cameras = inputs[0].shape[1]
    use_cuda = torch.cuda.is_available() and not args.no_cuda
    notes = []
    for kind, cfg in configs.items():
        if kind == "nsa":
            info = nsa_layout(cfg, cameras)
            print(f"nsa: {info}")
            if use_cuda and not triton_block_ok(info["block_size"]):
                raise ValueError(f"--nsa-tile {cfg.nsa_tile}: {info['block_size']}-token blocks, but the CUDA "
                                 "(Triton) kernels need a power of two >= 16; use 4 or 8, or --no-cuda")
        if kind == "gqa" and cfg.attention_config().n_kv_heads in (1, cfg.heads):
            same = "mqa" if cfg.kv_heads == 1 else "mha"
            notes.append(f"Note: gqa uses kv_heads={cfg.kv_heads} of {cfg.heads} heads, so it is the same model as "
                         f"{same} (a distinct GQA needs heads with a divisor between 1 and heads: --set heads=... "
                         "with --gqa-kv-heads).")
    for note in notes:
        print(note)

    machine = machine_info()
    machine["gpu"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    results: dict[str, dict[str, Any]] = {}
    for kind, cfg in configs.items():
        results[kind] = {"attention": kind, "kv_heads": cfg.attention_config().n_kv_heads,
                         "params": sum(p.numel() for p in DepthTrack(cfg).parameters()),
                         "nsa": nsa_layout(cfg, cameras) if kind == "nsa" else None, "model_config": cfg.to_dict()}
    cpu = measure_latency(configs, inputs, "cpu", args.warmup, args.runs)
    gpu = measure_latency(configs, inputs, "cuda", args.warmup, args.runs) if use_cuda else {}
    for kind in configs:
        results[kind].update(latency_cpu_ms=cpu[kind], latency_cuda_ms=gpu.get(kind))
        print(f"{kind}: {results[kind]['params']} params, CPU {cpu[kind]:.1f} ms"
              + (f", CUDA {gpu[kind]:.2f} ms" if kind in gpu else ""))

    args.out.mkdir(parents=True, exist_ok=True)
    settings: dict[str, Any] = {
        "preset": args.preset, "overrides": overrides, "kinds": list(configs), "latency_only": args.latency_only,
        "steps": args.steps, "batch_size": args.batch_size, "seeds": args.seeds, "bags": [str(b) for b in args.bag],
        "val_bag": None if args.val_bag is None else str(args.val_bag), "threads": torch.get_num_threads(),
        "runs": args.runs, "warmup": args.warmup, "latency_input": input_desc,
        "cameras": cameras, "input_size": [inputs[0].shape[3], inputs[0].shape[4]], "device": args.device,
        "max_sets": args.max_sets, "max_sequences": args.max_sequences}
    if not args.latency_only:
        from depthtracker.data.depth_datasets import DepthTrackDataset

        runs: dict[str, list[dict[str, Any]]] = {k: [] for k in configs}
        predictors: dict[tuple[str, int], DepthTrackPredictor] = {}
        first = next(iter(configs.values()))  # every kind has the same input and crop sizes: one dataset per seed
        for seed in args.seeds:
            train_set = DepthTrackDataset(args.bag, data_config_for(first, augment=True, seed=seed),
                                          progress=not args.no_progress)
            for kind, cfg in configs.items():
                sub = args.out / kind if len(args.seeds) == 1 else args.out / kind / f"seed{seed}"
                tcfg = train_config(args.steps, args.batch_size, seed, sub, not args.no_progress)
                settings.setdefault("train_config", {k: v for k, v in dataclasses.asdict(tcfg).items()
                                                     if k not in ("out_dir", "seed")})
                r = {"seed": seed, **train_kind(train_set, cfg, tcfg, args.device)}
                print(f"{kind} seed {seed}: {r['steps']} steps in {r['train_seconds']:.1f} s, "
                      f"loss {r['final_losses']['loss']:.4f}")
                runs[kind].append(r)
                predictors[(kind, seed)] = DepthTrackPredictor.from_checkpoint(
                    r["checkpoint"], device=args.device or "auto")
        eval_cfg = DepthTrackEvalConfig(max_sets=args.max_sets, max_sequences=args.max_sequences)
        scores = score(args.val_bag, {f"{k}/{s}": p for (k, s), p in predictors.items()}, eval_cfg,
                       not args.no_progress)
        for kind in configs:
            for r in runs[kind]:
                r.update(scores[f"{kind}/{r['seed']}"])
            results[kind].update(aggregate(runs[kind]), runs=runs[kind])
            print(f"{kind}: AbsRel {results[kind]['abs_rel']:.4f}, delta1 {results[kind]['delta1']:.4f}, centre "
                  f"error {results[kind]['sot_center_error_px']:.1f} px, AUC {results[kind]['sot_success_auc']:.3f}")
    report = {"benchmark": "bench/attention_ablation.py", "machine": machine, "settings": settings,
              "note": NOTE, "notes": notes, "kinds": results}
    (args.out / "ablation.json").write_text(json.dumps(report, indent=2, allow_nan=True) + "\n")
    write_markdown(args.out / "ablation.md", report)
    write_plot(args.out / "ablation.png", report)
    print(f"wrote {args.out / 'ablation.json'}, ablation.md, ablation.png")
    return report


if __name__ == "__main__":
    main()
