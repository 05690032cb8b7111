"""HSV-DET checkpoints on many held-out bags: mAP per bag and pooled, and each checkpoint's paired difference from the
first one, bag by bag (mean ± s.e. over bags, bags where it is higher).

    .venv/bin/python bench/hsvdet_heldout.py --checkpoint hsvdet=runs/a/best.safetensors \
        --checkpoint yolo_only=runs/b/best.safetensors --bag out/data/test-s9001 --bag out/data/test-s9002 ... \
        --out bench/results/hsvdet_seeds.json

Keys: mAP50, mAP50-95 and AP by object size (COCO small / medium / large; a size range with no ground truth in a bag
is -1 there, as in COCO, and left out of that key's mean over bags). Each bag is scored exactly as ``depthtracker
eval hsvdet`` scores it (the same ``detect_bag`` and ``det_metrics``, score >= 0.001, the same visibility threshold),
without its plots and latency runs; a test checks the two agree.
One model is loaded per checkpoint and reused for every bag. Threads: torch uses OMP_NUM_THREADS.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from _machine import machine
from _stats import paired
from depthtracker.eval.hsvdet import HSVDetEvalConfig, detect_bag
from depthtracker.eval.metrics.det import det_metrics
from depthtracker.models.hsvdet.predictor import HSVDetPredictor

KEYS = ("map50", "map50_95", "ap_small", "ap_medium", "ap_large")


def parse_checkpoint(text: str) -> tuple[str, Path]:
    """``NAME=FILE`` -> (NAME, FILE); ``ValueError`` naming the argument when it is malformed or the file is missing."""
    name, eq, path = text.partition("=")
    if not eq or not name or not path:
        raise ValueError(f"--checkpoint {text!r}: expected NAME=FILE, e.g. hsvdet=runs/hsvdet/best.safetensors")
    if not Path(path).is_file():
        raise ValueError(f"--checkpoint {text!r}: {path!r} is not a file (give the .safetensors of a training run)")
    return name, Path(path)


def score(checkpoint: Path, bags: Sequence[Path], config: HSVDetEvalConfig) -> dict[str, Any]:
    """Per-bag and pooled ``KEYS`` of one checkpoint over ``bags``."""
    predictor = HSVDetPredictor.from_checkpoint(checkpoint, score_threshold=config.score_threshold)
    per_bag, all_gt, all_pred, names = {}, [], [], ()
    t0 = time.perf_counter()
    for bag in bags:
        gt, pred, names, _ = detect_bag(predictor, bag, config)
        det = det_metrics(gt, pred, predictor.config.num_classes, tuple(names))
        per_bag[str(bag)] = {k: float(det[k]) for k in KEYS}
        all_gt += gt
        all_pred += pred
        print(f"{checkpoint} {bag}: " + ", ".join(f"{k} {per_bag[str(bag)][k]:.3f}" for k in KEYS), flush=True)
    pooled = det_metrics(all_gt, all_pred, predictor.config.num_classes, tuple(names))
    return {"checkpoint": str(checkpoint), "per_bag": per_bag, "pooled": {k: float(pooled[k]) for k in KEYS},
            "mean_over_bags": {k: _mean_defined([b[k] for b in per_bag.values()]) for k in KEYS},
            "seconds": time.perf_counter() - t0}


def _mean_defined(values: list[float]) -> float:
    """Mean over the bags where the metric is defined: COCO gives -1 for a size range without ground truth (a bag
    with no large object has no AP large); -1 when no bag has any."""
    defined = [v for v in values if v >= 0]
    return statistics.fmean(defined) if defined else -1.0


def versus(run: dict[str, Any], ref: dict[str, Any], key: str = "map50_95") -> dict[str, float]:
    """``run - ref`` in points of ``key``, bag by bag: mean, s.e. over bags (NaN for one bag), bags where higher."""
    a = [100.0 * ref["per_bag"][b][key] for b in ref["per_bag"]]
    b = [100.0 * run["per_bag"][b][key] for b in ref["per_bag"]]
    mean, se = paired(a, b)
    return {"mean_points": mean, "se_points": se, "bags_higher": sum(y > x for x, y in zip(a, b)), "bags": len(a)}


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoint", action="append", required=True, metavar="NAME=FILE",
                   help="a checkpoint to score (repeat; the first is the reference of the paired differences)")
    p.add_argument("--bag", type=Path, action="append", required=True, help="held-out bag (repeat)")
    p.add_argument("--min-visibility", type=float, default=HSVDetEvalConfig.min_visibility)
    p.add_argument("--out", type=Path, required=True, help="JSON report")
    args = p.parse_args(argv)
    try:
        checkpoints = [parse_checkpoint(c) for c in args.checkpoint]
    except ValueError as e:
        p.error(str(e))
    if len({n for n, _ in checkpoints}) != len(checkpoints):
        p.error("checkpoint names must differ")
    if len(set(args.bag)) != len(args.bag):
        p.error("each --bag once: per-bag results are keyed by the bag's path")
    missing = [str(b) for b in args.bag if not b.exists()]
    if missing:
        p.error(f"bag(s) not found: {', '.join(missing)} (render one with 'depthtracker synth --out DIR --seed S')")
    config = HSVDetEvalConfig(min_visibility=args.min_visibility)
    runs = {name: score(path, args.bag, config) for name, path in checkpoints}
    ref = checkpoints[0][0]
    for name, run in runs.items():
        if name != ref:
            run[f"map50_95_minus_{ref}"] = versus(run, runs[ref])
    report = {"machine": machine(), "bags": [str(b) for b in args.bag], "reference": ref, "runs": runs}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1) + "\n")
    for name, run in runs.items():
        m, diff = run["mean_over_bags"], run.get(f"map50_95_minus_{ref}")
        extra = f"; {diff['mean_points']:+.2f} ± {diff['se_points']:.2f} points vs {ref}" if diff else ""
        print(f"{name}: mean over {len(args.bag)} bags mAP50 {m['map50']:.3f}, mAP50-95 {m['map50_95']:.3f}{extra}")
    return report


if __name__ == "__main__":
    main()
