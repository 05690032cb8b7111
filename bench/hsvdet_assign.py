"""Which head level HSV-DET's task-aligned assignment gives each object to: positive anchors on P3, P4 and P5 for
objects of each size, with a checkpoint's predictions and with a fresh initialisation of the same config.

    OMP_NUM_THREADS=1 .venv/bin/python bench/hsvdet_assign.py --checkpoint models/hsvdet-n.safetensors \
        --bag out/data/train-s1 --bag out/data/train-s2 --out bench/results/hsvdet_assign.json

The assignment is the one training runs (``HSVDetCriterion.prepare``: anchors whose centre lies inside a box are its
candidates, each box takes the ``tal_topk`` of largest ``score^alpha * IoU^beta``). It is computed on each bag image
without augmentation, at the checkpoint's input size and visibility threshold, for two models of the checkpoint's
config:
- ``trained``: the checkpoint's weights (the EMA that is saved), batch norm in eval mode: where assignment sends each
  object once the detector has learnt;
- ``init``: ``HSVDet(config)`` after ``torch.manual_seed(--init-seed)``, batch norm in train mode, as at training
  step 0: where it starts.
Per object size (COCO's bounds, 32² and 96², applied to the box area in network-input pixels, which is what the
anchors see): boxes, boxes with no positive anchor, candidate anchors, positive anchors and the positives' summed
soft class targets per level, the share of positives and of target score on each level and the boxes with a
positive on each level; and the median side (sqrt of the area) of the boxes each level predicts, over every anchor
and image: the IoU term of the metric favours the level whose predicted boxes are closest in size to the object. A
level whose positives carry (almost) no target score gets no box or class target and learns to score nothing.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from _machine import machine
from depthtracker.data.datasets import DetectionDataConfig, DetectionDataset, collate_detections, images_to_float
from depthtracker.models.hsvdet.assigner import centres_inside
from depthtracker.models.hsvdet.losses import HSVDetCriterion, pad_targets
from depthtracker.models.hsvdet.model import HSVDet
from depthtracker.models.hsvdet.predictor import HSVDetPredictor
from depthtracker.train.checkpoints import load_checkpoint

LEVELS = ("P3", "P4", "P5")
SIZES = ("small", "medium", "large")
BOUNDS = (32.0**2, 96.0**2)  # COCO's area bounds, here in network-input pixels


def empty_counts() -> dict[str, dict[str, Any]]:
    return {s: {"boxes": 0, "boxes_without_positive": 0, "candidates": dict.fromkeys(LEVELS, 0),
                "positives": dict.fromkeys(LEVELS, 0), "boxes_with_positive": dict.fromkeys(LEVELS, 0),
                "target_score": dict.fromkeys(LEVELS, 0.0)}
            for s in SIZES}


def count_levels(counts: dict[str, dict[str, Any]], fg: torch.Tensor, gt_idx: torch.Tensor, scores: torch.Tensor,
                 boxes: torch.Tensor, mask: torch.Tensor, anchors: torch.Tensor, strides: torch.Tensor,
                 level_strides: Sequence[int]) -> None:
    """Add one batch to ``counts``. ``fg (B, A)``, ``gt_idx (B, A)`` and ``scores (B, A, nc)`` (the soft class
    targets) as ``Assignment`` holds them, ``boxes (B, M, 4)`` xyxy px and ``mask (B, M)`` as ``pad_targets`` makes
    them, ``anchors (A, 2)`` px and ``strides (A, 1)``; ``level_strides`` the strides of P3, P4, P5. Candidates are
    the assigner's (``centres_inside``). ``target_score`` sums the positives' soft targets: the weight each level's
    box, DFL and class losses give the object (a positive with target near 0 teaches its head nothing)."""
    level = torch.full(strides.shape[:1], -1, dtype=torch.long)
    for i, s in enumerate(level_strides):
        level[strides[:, 0].cpu() == s] = i
    if (level < 0).any():
        raise ValueError(f"anchor strides {sorted(set(strides[:, 0].tolist()))} are not the levels' {level_strides}")
    onehot = torch.nn.functional.one_hot(level, len(LEVELS)).float()  # (A, 3)
    b, m = mask.shape
    if m == 0:
        return
    owner = torch.nn.functional.one_hot(gt_idx.cpu(), m).float() * fg.cpu()[..., None].float()  # (B, A, M)
    positives = torch.einsum("bam,al->bml", owner, onehot)  # (B, M, 3)
    weight = torch.einsum("bam,al->bml", owner * scores.cpu().float().sum(-1)[..., None], onehot)  # (B, M, 3)
    candidates = centres_inside(anchors.cpu(), boxes.cpu()).float() @ onehot  # (B, M, 3)
    wh = (boxes[..., 2:] - boxes[..., :2]).clamp(min=0).cpu()
    area = wh[..., 0] * wh[..., 1]  # (B, M)
    size = (area >= BOUNDS[0]).long() + (area >= BOUNDS[1]).long()
    for bi, mi in mask.cpu().nonzero().tolist():
        c = counts[SIZES[int(size[bi, mi])]]
        c["boxes"] += 1
        pos = positives[bi, mi]
        c["boxes_without_positive"] += int(pos.sum() == 0)
        for li, lv in enumerate(LEVELS):
            c["candidates"][lv] += int(candidates[bi, mi, li])
            c["positives"][lv] += int(pos[li])
            c["boxes_with_positive"][lv] += int(pos[li] > 0)
            c["target_score"][lv] += float(weight[bi, mi, li])


def summarise(counts: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """``counts`` with the share of positives and of target score per level, and their sum over sizes (``all``)."""
    out = {}
    total = empty_counts()["small"]
    for s in SIZES:
        c = counts[s]
        total["boxes"] += c["boxes"]
        total["boxes_without_positive"] += c["boxes_without_positive"]
        for key in ("candidates", "positives", "boxes_with_positive", "target_score"):
            for lv in LEVELS:
                total[key][lv] += c[key][lv]
    for name, c in (*counts.items(), ("all", total)):
        n, w = sum(c["positives"].values()), sum(c["target_score"].values())
        out[name] = {**c, "positive_share": {lv: (c["positives"][lv] / n if n else 0.0) for lv in LEVELS},
                     "target_score_share": {lv: (c["target_score"][lv] / w if w else 0.0) for lv in LEVELS}}
    return out


@torch.no_grad()
def assign_counts(model: HSVDet, dataset: DetectionDataset, batch_size: int) -> dict[str, dict[str, Any]]:
    """The level counts and predicted box sizes of ``model`` (in the mode it is in) over every image of
    ``dataset``."""
    criterion = HSVDetCriterion(model.config)
    counts = empty_counts()
    sides: list[list[torch.Tensor]] = [[] for _ in LEVELS]
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=False,
                                         collate_fn=collate_detections)
    for batch in loader:
        output = model(images_to_float(batch.images))
        inp = criterion.prepare(output, batch.targets)
        _, boxes, mask = pad_targets(batch.targets, output.batch_size)
        a = inp.assignment
        side = (inp.pred_boxes[..., 2:] - inp.pred_boxes[..., :2]).clamp(min=0).prod(-1).sqrt()  # (B, A)
        for li, stride in enumerate(model.config.strides):
            sides[li].append(side[:, inp.strides[:, 0] == stride].flatten())
        count_levels(counts, a.fg_mask, a.target_gt, a.target_scores, boxes, mask, inp.anchors, inp.strides,
                     model.config.strides)
    out = summarise(counts)
    out["predicted_box_side_median_px"] = {lv: float(torch.cat(sides[li]).median()) for li, lv in enumerate(LEVELS)}
    return out


def run(checkpoint: Path, bags: Sequence[Path], init_seed: int, batch_size: int) -> dict[str, Any]:
    trained = HSVDetPredictor.from_checkpoint(checkpoint).model  # the unfolded network, in eval mode
    config = trained.config
    data = (load_checkpoint(checkpoint)[1].get("data_manifest") or {}).get("config") or {}  # training's data settings
    data_cfg = DetectionDataConfig(image_size=(config.input_height, config.input_width),
                                   min_visibility=float(data.get("min_visibility", 0.25)),
                                   letterbox=bool(data.get("letterbox", True)), augment=False)
    dataset = DetectionDataset(bags=[str(b) for b in bags], config=data_cfg)
    torch.manual_seed(init_seed)
    init = HSVDet(config)
    return {"checkpoint": str(checkpoint), "input_wh": [config.input_width, config.input_height],
            "sgb_levels": list(config.sgb_levels), "placement": config.sgb_placement, "tal_topk": config.tal_topk,
            "images": len(dataset), "init_seed": init_seed,
            "trained": assign_counts(trained, dataset, batch_size),
            "init": assign_counts(init.train(), dataset, batch_size)}


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoint", type=Path, action="append", required=True,
                   help="an HSV-DET checkpoint (.safetensors; repeat for several)")
    p.add_argument("--bag", type=Path, action="append", required=True, help="a bag with ground-truth boxes (repeat)")
    p.add_argument("--init-seed", type=int, default=0, help="seed of the fresh initialisation (default 0)")
    p.add_argument("--batch-size", type=int, default=16, help="images per forward pass (default 16)")
    p.add_argument("--out", type=Path, required=True, help="JSON report to write")
    args = p.parse_args(argv)
    for c in args.checkpoint:
        if not c.is_file():
            p.error(f"--checkpoint {c}: not a file (give the .safetensors of a training run or models/hsvdet-n)")
    for b in args.bag:
        if not b.exists():
            p.error(f"--bag {b}: no such bag (render one with `depthtracker synth --out {b}`)")
    if args.batch_size < 1:
        p.error(f"--batch-size {args.batch_size}: give a positive number of images")
    runs = []
    for c in args.checkpoint:
        try:
            runs.append(run(c, args.bag, args.init_seed, args.batch_size))
        except ValueError as e:
            p.error(str(e))
    report = {"machine": machine(), "bags": [str(b) for b in args.bag], "runs": runs}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1) + "\n")
    for r in runs:
        print(f"{r['checkpoint']} ({r['input_wh'][0]}x{r['input_wh'][1]}, {r['images']} images, topk {r['tal_topk']})")
        for model in ("init", "trained"):
            for size in (*SIZES, "all"):
                c = r[model][size]
                print(f"  {model:7s} {size:6s} {c['boxes']:6d} boxes, " + ", ".join(
                    f"{lv} {c['positive_share'][lv]:.3g} of positives / {c['target_score_share'][lv]:.3g} of target "
                    f"score ({c['boxes_with_positive'][lv]} boxes, {c['candidates'][lv]} candidates)" for lv in LEVELS)
                    + f", {c['boxes_without_positive']} boxes without a positive")
            print(f"  {model:7s} median predicted box side, px: " + ", ".join(
                f"{lv} {v:.0f}" for lv, v in r[model]["predicted_box_side_median_px"].items()))
    return report


if __name__ == "__main__":
    main()
