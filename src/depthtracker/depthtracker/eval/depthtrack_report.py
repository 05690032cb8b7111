"""``report.md`` and plots of ``eval.depthtrack`` (kept apart so the scoring reads on its own)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["write_plots", "write_markdown"]


def write_plots(out: Path, example: tuple | None, curves: dict[str, list[np.ndarray]]) -> list[str]:
    """``depth_examples.png`` (image | ground truth | model | SGBM) and ``sot_success.png`` (OTB success plot:
    fraction of frames with IoU above each threshold, AUC in the legend). Returns the file names written."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from depthtracker.viz.draw import colorize_depth

    written = []
    if example is not None:
        image, gt, model, sgbm = example
        finite = gt[np.isfinite(gt) & (gt > 0)]
        near, far = (float(np.percentile(finite, 2)), float(np.percentile(finite, 98))) if finite.size else (0.5, 15)
        far = max(far, near * 1.5)
        tiles = [("image", image), ("ground truth", colorize_depth(gt, near, far)),
                 ("DepthTrack", colorize_depth(model, near, far))]
        if sgbm is not None:
            tiles.append(("SGBM", colorize_depth(sgbm, near, far)))
        fig, axes = plt.subplots(1, len(tiles), figsize=(3.2 * len(tiles), 2.8))
        for ax, (title, tile) in zip(np.atleast_1d(axes), tiles):
            ax.imshow(tile)
            ax.set_title(title)
            ax.axis("off")
        fig.tight_layout()
        fig.savefig(out / "depth_examples.png", dpi=100)
        plt.close(fig)
        written.append("depth_examples.png")
    if any(curves.values()):
        th = np.linspace(0, 1, 21)
        fig, ax = plt.subplots(figsize=(4.5, 3.5))
        for name, seqs in curves.items():
            if not seqs:
                continue
            rate = np.mean([[float((iou > t).mean()) if iou.size else 0.0 for t in th] for iou in seqs], axis=0)
            ax.plot(th, rate, label=f"{name} (AUC {rate.mean():.3f})")
        ax.set_xlabel("IoU threshold")
        ax.set_ylabel("success rate")
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1.02)
        ax.legend()
        fig.tight_layout()
        fig.savefig(out / "sot_success.png", dpi=100)
        plt.close(fig)
        written.append("sot_success.png")
    return written


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return "n/a" if math.isnan(v) else f"{v:.4f}"
    return str(v)


def write_markdown(path: Path, report: dict[str, Any], plots: list[str]) -> None:
    """Tables of the depth and tracking metrics, model beside baselines."""
    depth_keys = ("abs_rel", "rmse", "delta1", "mae", "psnr")
    sot_keys = ("success_auc", "precision_20px", "mean_iou")
    b = report["baselines"]
    lines = [f"# DepthTrack evaluation: {report['data']['bag']}", "",
             f"Checkpoint `{report['model']['checkpoint']}` (preset {report['model']['config'].get('preset')}); "
             f"{report['data']['sets']} sets, {report['data']['depth_images']} depth images, "
             f"{report['data']['sequences']} tracking sequences.", "", "## Depth (metres)", "",
             "| method | " + " | ".join(depth_keys) + " | pixels |", "|---" * (len(depth_keys) + 2) + "|"]
    rows = [("DepthTrack (all cameras)", report["depth"], "all valid"),
            ("DepthTrack (SGBM pixels)", report.get("model_on_sgbm_pixels") or {}, "SGBM matched"),
            ("SGBM (left camera)", b["sgbm"], f"coverage {_fmt(b['sgbm'].get('coverage', math.nan))}")]
    for name, m, px in rows:
        lines.append(f"| {name} | " + " | ".join(_fmt(m.get(k, math.nan)) for k in depth_keys) + f" | {px} |")
    mb = (report.get("real") or {}).get("middlebury_motorcycle") or {}
    if "model" in mb:
        lines += ["", "Real stereo pair (Middlebury 2014 Motorcycle, quarter resolution, scikit-image; depth "
                  f"{mb['depth_range_m'][0]:.2f}-{mb['depth_range_m'][1]:.2f} m):", "",
                  "| method | " + " | ".join(depth_keys) + " | pixels |", "|---" * (len(depth_keys) + 2) + "|"]
        for name, m, px in (("DepthTrack (pair as a 2-camera rig)", mb["model"], "all with GT"),
                            ("DepthTrack (SGBM pixels)", mb["model_on_sgbm_pixels"], "SGBM matched"),
                            ("SGBM", mb["sgbm"], f"coverage {_fmt(mb['sgbm']['coverage'])}")):
            lines.append(f"| {name} | " + " | ".join(_fmt(m.get(k, math.nan)) for k in depth_keys) + f" | {px} |")
    lines += ["", "## Single-target tracking", "", "| method | " + " | ".join(sot_keys) + " |",
              "|---" * (len(sot_keys) + 1) + "|"]
    for name, m in (("DepthTrack + TargetTracker", report["sot"]), ("CSRT", b["csrt"]), ("KCF", b["kcf"])):
        lines.append(f"| {name} | " + " | ".join(_fmt(m.get(k, math.nan)) for k in sot_keys) + " |")
    skipped = {k: v["skipped"] for k, v in {"depth": report["depth"], "sot": report["sot"], **b}.items()
               if isinstance(v, dict) and "skipped" in v}
    if skipped:
        lines += ["", "Not scored: " + "; ".join(f"{k}: {v}" for k, v in skipped.items()) + "."]
    lines += [""] + [f"![{p}]({p})" for p in plots]
    path.write_text("\n".join(lines) + "\n")
