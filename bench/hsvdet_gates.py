"""HSV-DET's sparse global blocks knocked out at inference: how large each block's gated update is, and what the
trained detector loses when its gates are set to zero (every block then returns its input unchanged, bit-exact).

    OMP_NUM_THREADS=1 .venv/bin/python bench/hsvdet_gates.py --checkpoint models/hsvdet-n.safetensors \
        --bag out/data/test-s9001 --bag out/data/test-s9002 ... --out bench/results/hsvdet_gates.json

Small learnt gates are not a small update: a block adds ``alpha * block(x)`` per channel, and ``block(x)`` has no
bound of its own. Per SGB level: mean |alpha| and the update's size relative to the block's input,
``||out - x|| / ||x||`` per image (mean and max over every image of the bags). Per bag: the ``hsvdet_heldout`` keys
(mAP50, mAP50-95, AP by object size; scored exactly as ``depthtracker eval hsvdet`` scores) with the gates as
trained and at zero, and the paired difference trained - zeroed in points (mean ± s.e. over bags, bags where the
trained gates score higher). A difference near zero with a large update means the detector's outputs do not use
what the blocks add. Per head level (P3, P4, P5), with the gates as trained: the largest class score and the cells
scoring at least 0.25 (the default threshold of ``config/hsvdet.yaml``): a level whose head never fires makes a
block that reaches only that level (``sgb_placement: neck``) idle. Threads: torch uses OMP_NUM_THREADS.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from _machine import machine
from depthtracker.eval.hsvdet import HSVDetEvalConfig
from depthtracker.models.hsvdet.predictor import HSVDetPredictor
from depthtracker.models.hsvdet.sgb import SparseGlobalLayer
from hsvdet_heldout import KEYS, add_bag_arguments, eval_config, score_predictor, versus


def gate_layers(predictor: HSVDetPredictor) -> dict[str, SparseGlobalLayer]:
    """The sparse global blocks of the network ``predict`` runs, by level name (``P4``, ``P5``)."""
    return {name.rsplit(".", 1)[-1]: m for name, m in predictor.net.named_modules() if isinstance(m, SparseGlobalLayer)}


def load(checkpoint: Path, config: HSVDetEvalConfig) -> HSVDetPredictor:
    """The checkpoint's predictor; ``ValueError`` when it has no sparse global block (a YOLO-only model)."""
    predictor = HSVDetPredictor.from_checkpoint(checkpoint, score_threshold=config.score_threshold)
    if not gate_layers(predictor):
        raise ValueError(f"--checkpoint {checkpoint}: the model has no sparse global block (sgb_levels is empty), "
                         f"so there is no gate to knock out; give an HSV-DET checkpoint")
    return predictor


def run(predictor: HSVDetPredictor, checkpoint: Path, bags: Sequence[Path], config: HSVDetEvalConfig) -> dict[str, Any]:
    """Score ``predictor`` (loaded from ``checkpoint``) on ``bags`` with its gates as trained, measuring each block's
    update on the way, then with every gate at zero (the predictor keeps them at zero)."""
    layers = gate_layers(predictor)
    ratios: dict[str, list[float]] = {lv: [] for lv in layers}

    def measure(level: str):
        def hook(module: torch.nn.Module, inputs: tuple[torch.Tensor, ...], out: torch.Tensor) -> None:
            x = inputs[0].float().flatten(1)  # (B, C*H*W)
            ratios[level].extend(((out.float().flatten(1) - x).norm(dim=1) / x.norm(dim=1)).tolist())
        return hook

    heads = {lv: {"max_score": 0.0, "cells_over_0.25": 0, "cells": 0} for lv in ("P3", "P4", "P5")}

    def head_activity(module: torch.nn.Module, inputs: Any, out: tuple[list[torch.Tensor], list[torch.Tensor]]) -> None:
        for h, cls in zip(heads.values(), out[1], strict=True):  # class logits (B, nc, H_l, W_l) per level
            best = cls.float().sigmoid().amax(1)  # (B, H_l, W_l)
            h["max_score"] = max(h["max_score"], float(best.max()))
            h["cells_over_0.25"] += int((best >= 0.25).sum())
            h["cells"] += best.numel()

    handles = [m.register_forward_hook(measure(lv)) for lv, m in layers.items()]
    handles.append(predictor.net.head.register_forward_hook(head_activity))
    try:
        trained = score_predictor(predictor, bags, config, f"{checkpoint} (gates as trained)")
    finally:
        for h in handles:
            h.remove()
    levels = {lv: {"gating": m.gating, "alpha_mean_abs": float(m.alpha.detach().abs().mean()),
                   "update_over_input_mean": sum(ratios[lv]) / len(ratios[lv]),
                   "update_over_input_max": max(ratios[lv]), "images": len(ratios[lv])}
              for lv, m in layers.items()}
    with torch.no_grad():
        for m in layers.values():
            m.alpha.zero_()  # a parameter (learnable gating) or a buffer (fixed, none): what every path reads
    zeroed = score_predictor(predictor, bags, config, f"{checkpoint} (gates at zero)")
    return {"checkpoint": str(checkpoint), "input_wh": trained["input_wh"],
            "placement": predictor.config.sgb_placement, "levels": levels, "heads": heads,
            "gates_as_trained": trained, "gates_zeroed": zeroed,
            "trained_minus_zeroed": {k: versus(trained, zeroed, k) for k in KEYS}}


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoint", type=Path, action="append", required=True,
                   help="an HSV-DET checkpoint (.safetensors; repeat for several)")
    add_bag_arguments(p)
    args = p.parse_args(argv)
    for c in args.checkpoint:
        if not c.is_file():
            p.error(f"--checkpoint {c}: not a file (give the .safetensors of a training run or models/hsvdet-n)")
    config = eval_config(p, args)
    try:  # every checkpoint is checked before the first is scored
        predictors = [load(c, config) for c in args.checkpoint]
    except ValueError as e:
        p.error(str(e))
    runs = [run(pr, c, args.bag, config) for pr, c in zip(predictors, args.checkpoint, strict=True)]
    report = {"machine": machine(), "bags": [str(b) for b in args.bag], "runs": runs}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1) + "\n")
    for r in runs:
        print(f"{r['checkpoint']} ({r['input_wh'][0]}x{r['input_wh'][1]}, blocks on the {r['placement']}, "
              f"{len(args.bag)} bags): " + "; ".join(
            f"{lv} mean |alpha| {v['alpha_mean_abs']:.3f}, update/input {v['update_over_input_mean']:.3f} "
            f"(max {v['update_over_input_max']:.3f})" for lv, v in r["levels"].items()))
        print("  heads (gates as trained): " + "; ".join(
            f"{lv} max score {h['max_score']:.4f}, {h['cells_over_0.25']} of {h['cells']} cells >= 0.25"
            for lv, h in r["heads"].items()))
        print("  trained minus zeroed gates, points: " + ", ".join(
            f"{k} {d['mean_points']:+.2f} ± {d['se_points']:.2f} ({d['bags_higher']}/{d['bags']} higher)"
            for k, d in r["trained_minus_zeroed"].items()))
    return report


if __name__ == "__main__":
    main()
