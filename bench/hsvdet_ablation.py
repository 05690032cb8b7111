"""HSV-DET ablations (issue 6 item 5): SGB levels, token selection, gating, top-k, under one training budget.

Usage: ``.venv/bin/python bench/hsvdet_ablation.py [--steps 250] [--workers 2] [--data out/data]``

Rows (each group varies one switch of the default: SGB at P4+P5, squared-L2 selection, learnable gate, k = 512):
YOLO-only / P5 / P4+P5 / P3+P4+P5; random / L2 / squared-L2 (at k = 512 and, because k = 512 selects every token at
the training size, again at k = 256); gating none / fixed 0.5 / learnable; k = 256 / 512 / 1024 / all.

(1) mAP: every distinct configuration is trained from the same seed for ``--steps`` optimizer steps of
    ``--batch-size`` on the training bags (``train-s*``) at 320x256 and scored (EMA weights, COCO mAP in network-input
    pixels, ``eval.hsvdet.evaluate_dataset``) on the validation bag (``val-s100``). Runs go to ``--workers`` worker
    processes of one torch thread each, which load the data once. Rows whose computation is identical at the
    training size share a run: at 320x256, P4 has 320 tokens and P5 80, so k = 512, 1024 and all select every token
    (the layer then skips selection, so the selection rule does not matter either), and the ``trained_as`` column
    says so. L2 and squared-L2 rank tokens identically (the square root is monotonic), so their rows must be equal:
    both are trained. A run whose ``last`` checkpoint in ``--runs-dir`` already holds the same model config and step
    count is not trained again (its sidecar metrics are reused; ``train_s`` is then null).
(2) Latency and memory: per configuration, in a fresh subprocess with one torch thread, forward passes of batch 1
    (random weights: the cost does not depend on their values) at 320x256 and 640x480; median of ``--runs`` after 3
    warm-up calls. Peak memory = growth of the process's peak RSS (``ru_maxrss``) over the measured calls, i.e.
    activations and allocator caches of inference, not the weights; ``tracemalloc`` does not see torch's C++
    allocations. The k rows are distinct at 640x480 (P4 1200 tokens, P5 300).

Writes ``bench/results/hsvdet_ablation.{json,md,png}``.
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import dataclasses
import json
import multiprocessing as mp
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROWS: list[tuple[str, str, dict[str, Any]]] = [
    ("SGB levels", "YOLO-only", {"sgb_levels": []}),
    ("SGB levels", "P5", {"sgb_levels": [5]}),
    ("SGB levels", "P4+P5", {}),
    ("SGB levels", "P3+P4+P5", {"sgb_levels": [3, 4, 5]}),
    ("selection", "random", {"selection": "random"}),
    ("selection", "L2", {"selection": "l2"}),
    ("selection", "squared-L2", {}),
    ("gating", "none", {"gating": "none"}),
    ("gating", "fixed 0.5", {"gating": "fixed", "gate_value": 0.5}),
    ("gating", "learnable", {}),
    ("top-k", "256", {"sgb_topk": 256}),
    ("top-k", "512", {}),
    ("top-k", "1024", {"sgb_topk": 1024}),
    ("top-k", "all", {"sgb_topk": None}),
    ("selection, k=256", "random", {"selection": "random", "sgb_topk": 256}),
    ("selection, k=256", "L2", {"selection": "l2", "sgb_topk": 256}),
    ("selection, k=256", "squared-L2", {"sgb_topk": 256}),
]
TRAIN_SIZE = (256, 320)  # (H, W) of training and mAP
LATENCY_SIZES = ((256, 320), (480, 640))  # (H, W) of the latency/memory measurements
_DATA: dict[str, Any] = {}  # per worker: the loaded datasets


def model_config(overrides: dict[str, Any], size: tuple[int, int]) -> Any:
    from depthtracker.train.hsvdet import build_model_config

    o = {k: tuple(v) if isinstance(v, list) else v for k, v in overrides.items()}
    return build_model_config("n", 3, size, o)


def train_key(overrides: dict[str, Any]) -> str:
    """Identity of the computation at the training size: top-k replaced by the tokens selected per SGB level."""
    cfg = model_config(overrides, TRAIN_SIZE)
    h, w = (-(-TRAIN_SIZE[0] // 32) * 32, -(-TRAIN_SIZE[1] // 32) * 32)
    tokens = {lv: (h // 2**lv) * (w // 2**lv) for lv in (3, 4, 5)}
    d = cfg.to_dict()
    d["sgb_topk"] = [min(cfg.sgb_topk or tokens[lv], tokens[lv]) for lv in cfg.sgb_levels]
    if d["sgb_topk"] == [tokens[lv] for lv in cfg.sgb_levels]:
        d["selection"] = "all tokens"  # nothing is selected: the rule is never evaluated
    return json.dumps(d, sort_keys=True)


def cached(out: Path, overrides: dict[str, Any], steps: int) -> dict[str, Any] | None:
    """Metrics of a finished run of the same model config and step count in ``out`` (its ``last`` sidecar)."""
    side = out / "last.json"
    if not side.is_file():
        return None
    meta = json.loads(side.read_text())
    if meta.get("extra", {}).get("step") != steps or meta.get("model_config") != model_config(
            overrides, TRAIN_SIZE).to_dict() or "map50_95" not in meta.get("metrics", {}):
        return None
    m = meta["metrics"]
    return {"map50": m["map50"], "map50_95": m["map50_95"], "steps": steps, "train_s": None}


def _init_worker(bags: list[str], val: str, seed: int) -> None:
    import torch
    from depthtracker.data.datasets import DetectionDataConfig, DetectionDataset

    torch.set_num_threads(1)
    cfg = DetectionDataConfig(image_size=TRAIN_SIZE, augment=True, seed=seed)
    _DATA["train"] = DetectionDataset(bags=bags, config=cfg)
    _DATA["val"] = DetectionDataset(bags=[val], config=dataclasses.replace(cfg, augment=False))


def _train(name: str, overrides: dict[str, Any], steps: int, batch: int, seed: int, out: str) -> dict[str, Any]:
    from depthtracker.train import TrainConfig
    from depthtracker.train.hsvdet import HSVDetTrainOptions, fit_hsvdet

    t0 = time.perf_counter()
    cfg = TrainConfig(max_steps=steps, batch_size=batch, lr=2e-3, warmup_steps=min(100, steps // 5), ema_decay=0.999,
                      ema_ramp_steps=200.0, eval_every=10**6, checkpoint_every=0, out_dir=out, seed=seed,
                      progress=False)
    result = fit_hsvdet(_DATA["train"], _DATA["val"], model_config(overrides, TRAIN_SIZE), cfg,
                        HSVDetTrainOptions(image_size=TRAIN_SIZE))
    m = result.metrics
    return {"run": name, "map50": m["map50"], "map50_95": m["map50_95"], "steps": result.step,
            "train_s": time.perf_counter() - t0}


def measure(overrides: dict[str, Any], size: tuple[int, int], runs: int) -> dict[str, float]:
    """Median forward latency (ms, batch 1, one thread) and peak-RSS growth (MiB) of one configuration."""
    import torch
    from depthtracker.models.hsvdet import HSVDet

    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = HSVDet(model_config(overrides, size)).eval()
    x = torch.rand(1, 3, *size)
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    times = []
    with torch.no_grad():
        for i in range(3 + runs):
            t0 = time.perf_counter()
            model(x)
            if i >= 3:
                times.append(time.perf_counter() - t0)
    rss1 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"ms": 1e3 * statistics.median(times), "peak_rss_mib": (rss1 - rss0) / 1024}


def _measure_subprocess(overrides: dict[str, Any], size: tuple[int, int], runs: int) -> dict[str, float]:
    arg = json.dumps({"overrides": overrides, "size": list(size), "runs": runs})
    res = subprocess.run([sys.executable, __file__, "--measure", arg], capture_output=True, text=True, check=True)
    return json.loads(res.stdout.strip().splitlines()[-1])


def _plot(rows: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = list(dict.fromkeys(r["group"] for r in rows))
    fig, axes = plt.subplots(1, len(groups) + 1, figsize=(4 * (len(groups) + 1), 3.4), dpi=110)
    for ax, g in zip(axes, groups, strict=False):
        rs = [r for r in rows if r["group"] == g]
        x = range(len(rs))
        ax.bar([i - 0.2 for i in x], [r["map50"] for r in rs], 0.4, label="mAP50")
        ax.bar([i + 0.2 for i in x], [r["map50_95"] for r in rs], 0.4, label="mAP50-95")
        ax.set_xticks(list(x), [r["name"] for r in rs], rotation=20)
        ax.set(title=g, ylim=(0, 1))
    axes[0].legend(loc="upper left")
    ks = [r for r in rows if r["group"] == "top-k"]
    ax = axes[-1]
    ax.plot([r["name"] for r in ks], [r["latency"]["480x640"]["ms"] for r in ks], "o-")
    ax.set(title="top-k: forward ms at 640x480 (1 thread)", ylabel="ms")
    ax.set_ylim(bottom=0)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def _markdown(rows: list[dict[str, Any]], meta: dict[str, Any]) -> str:
    lines = [f"# HSV-DET ablation ({meta['steps']} steps x batch {meta['batch_size']} each, preset n, seed "
             f"{meta['seed']})", "",
             f"mAP on `{meta['val']}` at 320x256 (network-input pixels, EMA weights); latency = median forward ms, "
             "batch 1, one torch thread; memory = peak-RSS growth during inference (MiB).", "",
             f"Machine: {meta['machine']}, torch {meta['torch']}; {meta['date_utc']} UTC. {meta['note']}", "",
             "| group | variant | mAP50 | mAP50-95 | trained as | ms 320x256 | ms 640x480 | peak RSS MiB 640x480 |",
             "|---" * 8 + "|"]
    for r in rows:
        lat = r["latency"]
        lines.append(f"| {r['group']} | {r['name']} | {r['map50']:.3f} | {r['map50_95']:.3f} | {r['trained_as']} | "
                     f"{lat['256x320']['ms']:.1f} | {lat['480x640']['ms']:.1f} | "
                     f"{lat['480x640']['peak_rss_mib']:.0f} |")
    return "\n".join(lines) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=250, help="optimizer steps per training run")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--workers", type=int, default=2, help="parallel training processes (one thread each)")
    ap.add_argument("--data", type=Path, default=Path("out/data"), help="folder with train-s*/ and val-s100/")
    ap.add_argument("--runs-dir", type=Path, default=Path("out/ablation"))
    ap.add_argument("--out", type=Path, default=Path("bench/results"))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--latency-runs", type=int, default=15)
    ap.add_argument("--note", default="", help="free text recorded with the results (e.g. shared cores)")
    ap.add_argument("--measure", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.measure:
        spec = json.loads(args.measure)
        print(json.dumps(measure(spec["overrides"], tuple(spec["size"]), spec["runs"])))
        return 0
    from _machine import machine  # bench/ is on sys.path when a script here runs

    bags = sorted(str(p) for p in args.data.glob("train-s*"))
    val = str(args.data / "val-s100")
    if not bags or not Path(val).exists():
        print(f"need {args.data}/train-s*/ and {val}/ (see models/hsvdet-n.md for the synth commands)", file=sys.stderr)
        return 2
    runs: dict[str, tuple[str, dict[str, Any]]] = {}  # train key -> (run name, overrides)
    rows = []
    for group, name, overrides in ROWS:
        key = train_key(overrides)
        if key not in runs:
            runs[key] = (f"{group}:{name}".replace(" ", "_"), overrides)
        rows.append({"group": group, "name": name, "overrides": overrides, "trained_as": runs[key][0], "key": key})
    t0 = time.perf_counter()
    results: dict[str, dict[str, Any]] = {}
    ctx = mp.get_context("fork")
    with cf.ProcessPoolExecutor(args.workers, mp_context=ctx, initializer=_init_worker,
                                initargs=(bags, val, args.seed)) as pool:
        futures = {}
        for name, o in runs.values():
            out = args.runs_dir / name.replace(":", "_")
            hit = cached(out, o, args.steps)
            if hit is not None:
                results[name] = {"run": name, **hit}
                print(f"reused {name}: mAP50 {hit['map50']:.3f} mAP50-95 {hit['map50_95']:.3f} ({out})", flush=True)
                continue
            futures[pool.submit(_train, name, o, args.steps, args.batch_size, args.seed, str(out))] = name
        for fut in cf.as_completed(futures):
            r = fut.result()
            results[r["run"]] = r
            print(f"trained {r['run']}: mAP50 {r['map50']:.3f} mAP50-95 {r['map50_95']:.3f} ({r['train_s']:.0f} s)",
                  flush=True)
    train_wall = time.perf_counter() - t0
    for r in rows:
        res = results[r.pop("trained_as")]
        r.update(trained_as=res["run"], map50=res["map50"], map50_95=res["map50_95"], train_s=res["train_s"])
        r["latency"] = {f"{h}x{w}": _measure_subprocess(r["overrides"], (h, w), args.latency_runs)
                        for h, w in LATENCY_SIZES}
        print(f"{r['group']:>10} {r['name']:<10} {r['latency']}", flush=True)
        del r["key"]
    meta = {"steps": args.steps, "batch_size": args.batch_size, "seed": args.seed, "workers": args.workers,
            "train_bags": bags, "val": val, "train_wall_s": train_wall, "machine": machine(),
            "torch": __import__("torch").__version__, "date_utc": time.strftime("%Y-%m-%d %H:%M", time.gmtime()),
            "note": args.note}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "hsvdet_ablation.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=2) + "\n")
    (args.out / "hsvdet_ablation.md").write_text(_markdown(rows, meta))
    _plot(rows, args.out / "hsvdet_ablation.png")
    print(f"wrote {args.out}/hsvdet_ablation.{{json,md,png}} (training {train_wall / 60:.1f} min wall)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
