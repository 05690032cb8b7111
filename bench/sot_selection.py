"""Single-target selection settings of ``TargetTracker`` compared on the same DepthTrack candidates (validation bags).

Usage::

    .venv/bin/python bench/sot_selection.py --bag out/data/val-s100 [--bag ...] --out runs/sot \\
        --variant default --variant "strict:recovery_score=0.9" [--checkpoint FILE] [--max-sequences 8]

Each ``--variant NAME[:KEY=VALUE,...]`` is the shipped ``TargetTrackerConfig`` with those fields changed,
``runtime.FIELD=VALUE`` changes the predictor's ``DepthTrackRuntimeConfig`` (e.g. ``runtime.max_candidates=10``) and
``checkpoint=FILE`` runs that variant on another DepthTrack checkpoint than ``--checkpoint`` (two trainings compared
on the same sequences: ``--variant shipped --variant "tuned:checkpoint=runs/ft/last.safetensors"``);
``default`` alone is the shipped setting. Per bag, the tracking sequences are those of ``depthtracker eval depthtrack``
(``eval.depthtrack.tracking_sequences``: per camera and object the longest visible run, the ``--max-sequences``
longest); every variant follows every sequence with ``DepthTrackPredictor.follow`` from the ground-truth box of the
first frame, and is scored over the remaining frames (OTB success AUC, precision at 20 px, mean IoU). The first
variant is the reference: the others are also reported as the mean per-sequence difference from it with its
standard error, since the sequences are shared.

Meant for validation bags (settings chosen here are then checked once on the held-out bag with the eval command).
Writes ``OUT/sot_selection.json`` (machine, settings, per variant and bag the per-sequence metrics) and
``OUT/sot_selection.md`` (a table). CPU is enough: the tracking crops are 64 and 128 pixels.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from _machine import machine  # bench/ on sys.path
from _stats import paired
from depthtracker.eval.depthtrack import DepthTrackEvalConfig, tracking_sequences
from depthtracker.eval.metrics import sot_metrics
from depthtracker.models.depthtrack.config import DepthTrackRuntimeConfig
from depthtracker.models.depthtrack.predictor import DepthTrackPredictor, default_checkpoint
from depthtracker.tracking import TargetTrackerConfig

KEYS = ("success_auc", "precision_20px", "mean_iou")


@dataclasses.dataclass(frozen=True)
class Variant:
    name: str
    tracker: TargetTrackerConfig
    runtime: dict[str, Any]  # DepthTrackRuntimeConfig fields changed (``runtime.KEY=VALUE``)
    checkpoint: Path | None = None  # ``checkpoint=FILE``; None: the run's --checkpoint


def parse_variant(text: str) -> Variant:
    """``NAME[:KEY=VALUE,...]`` -> a ``Variant``: KEY a ``TargetTrackerConfig`` field, ``runtime.FIELD`` of
    ``DepthTrackRuntimeConfig`` (e.g. ``runtime.max_candidates=10``) or ``checkpoint``; ``ValueError`` naming an
    unknown field or a checkpoint file that is not there."""
    name, _, rest = text.partition(":")
    if not name:
        raise ValueError(f"--variant needs a name (NAME[:KEY=VALUE,...]), got {text!r}")
    fields = {f.name for f in dataclasses.fields(TargetTrackerConfig)}
    runtime_fields = {f"runtime.{f.name}" for f in dataclasses.fields(DepthTrackRuntimeConfig)}
    changes: dict[str, Any] = {}
    runtime: dict[str, Any] = {}
    checkpoint = None
    for item in filter(None, rest.split(",")):
        key, eq, value = item.partition("=")
        if eq and key == "checkpoint":
            checkpoint = Path(value)
            if not checkpoint.is_file():
                raise ValueError(f"--variant {text!r}: checkpoint {value!r} is not a file (give the .safetensors "
                                 "written by 'depthtracker train depthtrack', its .json beside it)")
        elif eq and key in runtime_fields:
            runtime[key.removeprefix("runtime.")] = yaml.safe_load(value)
        elif eq and key in fields:
            changes[key] = yaml.safe_load(value)
        else:
            raise ValueError(f"--variant {text!r}: {item!r} is not KEY=VALUE with KEY a TargetTrackerConfig field "
                             f"({', '.join(sorted(fields))}), runtime.FIELD of DepthTrackRuntimeConfig or checkpoint")
    DepthTrackRuntimeConfig(**runtime)  # checks the values
    return Variant(name, dataclasses.replace(TargetTrackerConfig(), **changes), runtime, checkpoint)


def run(bags: Sequence[Path], variants: list[Variant], checkpoint: Path | None, max_sequences: int,
        device: str) -> dict[str, Any]:
    # one predictor per file: naming the default checkpoint explicitly does not load it twice
    file_of = {v.name: Path(v.checkpoint or checkpoint or default_checkpoint()).resolve() for v in variants}
    predictors = {ckpt: DepthTrackPredictor.from_checkpoint(ckpt, device=device)
                  for ckpt in dict.fromkeys(file_of.values())}
    cfg = DepthTrackEvalConfig(max_sequences=max_sequences, middlebury=False)
    rows: dict[str, dict[str, list[dict[str, float]]]] = {v.name: {} for v in variants}
    t0 = time.perf_counter()
    for bag in bags:
        seqs = tracking_sequences(bag, cfg)
        print(f"{bag}: {len(seqs)} sequences ({sum(len(s['sets']) for s in seqs)} frames)", flush=True)
        for v in variants:
            name = v.name
            pred = predictors[file_of[name]]
            base_runtime = pred.runtime
            pred.runtime = dataclasses.replace(base_runtime, **v.runtime)
            out = rows[name].setdefault(str(bag), [])
            try:
                for s in seqs:
                    boxes = pred.follow(s["frames"], s["boxes"][0], s["stamps"], tracker_config=v.tracker)
                    m = sot_metrics(boxes[1:], s["boxes"][1:])
                    out.append({"camera": s["camera"], "id": s["id"], "frames": len(s["sets"]),
                                **{k: float(m[k]) for k in KEYS}})
            finally:  # the next variant on this predictor starts from the base runtime, even after an error
                pred.runtime = base_runtime
            print(f"  {name}: success AUC {np.mean([r['success_auc'] for r in out]):.3f}", flush=True)
    ref = variants[0].name
    summary = {}
    for v in variants:
        name = v.name
        flat = [r for bag in bags for r in rows[name][str(bag)]]
        base = [r for bag in bags for r in rows[ref][str(bag)]]
        summary[name] = {
            "config": {**{k: x for k, x in dataclasses.asdict(v.tracker).items()
                          if x != getattr(TargetTrackerConfig(), k)},
                       **{f"runtime.{k}": x for k, x in v.runtime.items()},
                       **({"checkpoint": str(v.checkpoint)} if v.checkpoint else {})},
            **{k: float(np.mean([r[k] for r in flat])) for k in KEYS},
            **{f"{k}_minus_{ref}": paired([r[k] for r in base], [r[k] for r in flat]) for k in KEYS},
            "per_bag_success_auc": {bag: float(np.mean([r["success_auc"] for r in v]))
                                    for bag, v in rows[name].items()},
            "sequences": len(flat),
        }
    device_used = next(iter(predictors.values())).device
    return {"machine": machine(), "checkpoint": str(checkpoint or default_checkpoint()), "device": str(device_used),
            "bags": [str(b) for b in bags], "max_sequences": max_sequences, "reference": ref,
            "seconds": time.perf_counter() - t0, "summary": summary, "runs": rows}


def write_markdown(path: Path, report: dict[str, Any]) -> None:
    ref = report["reference"]
    lines = [f"Machine: {report['machine']}; checkpoint `{report['checkpoint']}`; bags "
             f"{', '.join('`' + b + '`' for b in report['bags'])}; {report['max_sequences']} sequences per bag.", "",
             f"| variant | changed fields | success AUC | Δ AUC vs {ref} (± s.e.) | precision@20px | mean IoU |",
             "|---|---|---|---|---|---|"]
    for name, s in report["summary"].items():
        d, se = s[f"success_auc_minus_{ref}"]
        changed = ", ".join(f"{k}={v}" for k, v in s["config"].items()) or "(shipped defaults)"
        delta = "—" if name == ref else f"{d:+.3f} ± {se:.3f}"
        lines.append(f"| {name} | {changed} | {s['success_auc']:.3f} | {delta} | {s['precision_20px']:.3f} | "
                     f"{s['mean_iou']:.3f} |")
    path.write_text("\n".join(lines) + "\n")


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--bag", type=Path, action="append", required=True, help="validation bag (repeat)")
    p.add_argument("--variant", action="append", required=True, metavar="NAME[:KEY=VALUE,...]",
                   help="a TargetTrackerConfig variant, checkpoint=FILE for another checkpoint (repeat; the "
                        "first is the reference)")
    p.add_argument("--checkpoint", type=Path, default=None, help="DepthTrack checkpoint (default: the shipped one)")
    p.add_argument("--max-sequences", type=int, default=8, help="sequences per bag (default 8, as the eval command)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args(argv)
    variants = [parse_variant(v) for v in args.variant]
    if len({v.name for v in variants}) != len(variants):
        p.error("variant names must differ")
    report = run(args.bag, variants, args.checkpoint, args.max_sequences, args.device)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "sot_selection.json").write_text(json.dumps(report, indent=2) + "\n")
    write_markdown(args.out / "sot_selection.md", report)
    print((args.out / "sot_selection.md").read_text())
    return report


if __name__ == "__main__":
    main()
