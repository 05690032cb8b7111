"""HSV-DET checkpoints on many held-out bags: mAP per bag and pooled, and each checkpoint's paired difference from the
first one, bag by bag, for every key (mean ± s.e. over bags, bags where it is higher).

    .venv/bin/python bench/hsvdet_heldout.py --checkpoint hsvdet=runs/a/best.safetensors \
        --checkpoint yolo_only=runs/b/best.safetensors --bag out/data/test-s9001 --bag out/data/test-s9002 ... \
        --out bench/results/hsvdet_seeds.json

``NAME=FILE@WxH`` scores a checkpoint at another network input than it was trained at (its letterbox input ``WxH``
pixels, both multiples of 32): whether a model's weakness on one object size is its weights or the objects' size in
network pixels.

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


def parse_checkpoint(text: str) -> tuple[str, Path, tuple[int, int] | None]:
    """``NAME=FILE[@WxH]`` -> (NAME, FILE, (H, W) or None for the checkpoint's own input); ``ValueError`` naming the
    argument when it is malformed or the file is missing."""
    name, eq, rest = text.partition("=")
    path, at, size = rest.partition("@")
    if not eq or not name or not path:
        raise ValueError(f"--checkpoint {text!r}: expected NAME=FILE[@WxH], e.g. hsvdet=runs/hsvdet/best.safetensors")
    if not Path(path).is_file():
        raise ValueError(f"--checkpoint {text!r}: {path!r} is not a file (give the .safetensors of a training run)")
    if not at:
        return name, Path(path), None
    w, x, h = size.partition("x")
    if not (x and w.isdigit() and h.isdigit() and int(w) > 0 and int(h) > 0 and int(w) % 32 == 0
            and int(h) % 32 == 0):
        raise ValueError(f"--checkpoint {text!r}: the input after @ is WIDTHxHEIGHT in pixels, multiples of 32, "
                         f"e.g. @320x256")
    return name, Path(path), (int(h), int(w))


def score(checkpoint: Path, bags: Sequence[Path], config: HSVDetEvalConfig,
          input_size: tuple[int, int] | None = None) -> dict[str, Any]:
    """Per-bag and pooled ``KEYS`` of one checkpoint over ``bags``, at network input ``input_size`` (H, W) when
    given, else the checkpoint's own."""
    size = {} if input_size is None else {"input_height": input_size[0], "input_width": input_size[1]}
    predictor = HSVDetPredictor.from_checkpoint(checkpoint, score_threshold=config.score_threshold, **size)
    return {"checkpoint": str(checkpoint), **score_predictor(predictor, bags, config, str(checkpoint))}


def score_predictor(predictor: HSVDetPredictor, bags: Sequence[Path], config: HSVDetEvalConfig,
                    label: str) -> dict[str, Any]:
    """``score`` of a loaded predictor (its progress lines start with ``label``)."""
    per_bag, all_gt, all_pred, names = {}, [], [], ()
    t0 = time.perf_counter()
    for bag in bags:
        gt, pred, names, _ = detect_bag(predictor, bag, config)
        det = det_metrics(gt, pred, predictor.config.num_classes, tuple(names))
        per_bag[str(bag)] = {k: float(det[k]) for k in KEYS}
        all_gt += gt
        all_pred += pred
        print(f"{label} {bag}: " + ", ".join(f"{k} {per_bag[str(bag)][k]:.3f}" for k in KEYS), flush=True)
    pooled = det_metrics(all_gt, all_pred, predictor.config.num_classes, tuple(names))
    return {"input_wh": [predictor.input_size[1], predictor.input_size[0]],
            "per_bag": per_bag, "pooled": {k: float(pooled[k]) for k in KEYS},
            "mean_over_bags": {k: _mean_defined([b[k] for b in per_bag.values()]) for k in KEYS},
            "seconds": time.perf_counter() - t0}


def _mean_defined(values: list[float]) -> float:
    """Mean over the bags where the metric is defined: COCO gives -1 for a size range without ground truth (a bag
    with no large object has no AP large); -1 when no bag has any."""
    defined = [v for v in values if v >= 0]
    return statistics.fmean(defined) if defined else -1.0


def versus(run: dict[str, Any], ref: dict[str, Any], key: str = "map50_95") -> dict[str, float]:
    """``run - ref`` in points of ``key``, bag by bag: mean, s.e. over bags (NaN for one bag), bags where higher;
    over the bags where both define ``key`` (AP of an object size a bag lacks is -1)."""
    both = [b for b in ref["per_bag"] if ref["per_bag"][b][key] >= 0 and run["per_bag"][b][key] >= 0]
    a = [100.0 * ref["per_bag"][b][key] for b in both]
    b = [100.0 * run["per_bag"][b][key] for b in both]
    if not both:
        return {"mean_points": float("nan"), "se_points": float("nan"), "bags_higher": 0, "bags": 0}
    mean, se = paired(a, b)
    return {"mean_points": mean, "se_points": se, "bags_higher": sum(y > x for x, y in zip(a, b)), "bags": len(a)}


def add_bag_arguments(p: argparse.ArgumentParser) -> None:
    """``--bag`` (repeat), ``--min-visibility`` and ``--out``: what every held-out scoring bench takes."""
    p.add_argument("--bag", type=Path, action="append", required=True, help="held-out bag (repeat)")
    p.add_argument("--min-visibility", type=float, default=HSVDetEvalConfig.min_visibility)
    p.add_argument("--out", type=Path, required=True, help="JSON report")


def eval_config(p: argparse.ArgumentParser, args: argparse.Namespace) -> HSVDetEvalConfig:
    """The scoring config of ``add_bag_arguments``' options; ``p.error`` for a bag given twice or missing."""
    if len(set(args.bag)) != len(args.bag):
        p.error("each --bag once: per-bag results are keyed by the bag's path")
    missing = [str(b) for b in args.bag if not b.exists()]
    if missing:
        p.error(f"bag(s) not found: {', '.join(missing)} (render one with 'depthtracker synth --out DIR --seed S')")
    return HSVDetEvalConfig(min_visibility=args.min_visibility)


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoint", action="append", required=True, metavar="NAME=FILE[@WxH]",
                   help="a checkpoint to score (repeat; the first is the reference of the paired differences); "
                        "@WxH runs it at that network input instead of its own")
    add_bag_arguments(p)
    args = p.parse_args(argv)
    try:
        checkpoints = [parse_checkpoint(c) for c in args.checkpoint]
    except ValueError as e:
        p.error(str(e))
    if len({n for n, _, _ in checkpoints}) != len(checkpoints):
        p.error("checkpoint names must differ")
    config = eval_config(p, args)
    runs = {name: score(path, args.bag, config, size) for name, path, size in checkpoints}
    ref = checkpoints[0][0]
    for name, run in runs.items():
        if name != ref:
            run[f"minus_{ref}"] = {k: versus(run, runs[ref], k) for k in KEYS}
    report = {"machine": machine(), "bags": [str(b) for b in args.bag], "reference": ref, "runs": runs}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1) + "\n")
    for name, run in runs.items():
        m, diffs = run["mean_over_bags"], run.get(f"minus_{ref}")
        print(f"{name} ({run['input_wh'][0]}x{run['input_wh'][1]}): mean over {len(args.bag)} bags "
              + ", ".join(f"{k} {m[k]:.3f}" for k in KEYS))
        if diffs:
            print(f"  minus {ref}, points: " + ", ".join(
                f"{k} {d['mean_points']:+.2f} ± {d['se_points']:.2f} ({d['bags_higher']}/{d['bags']} higher)"
                for k, d in diffs.items()))
    return report


if __name__ == "__main__":
    main()
