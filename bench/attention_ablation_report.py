"""The report of ``bench/attention_ablation.py``: per-kind metrics aggregated over seeds, ``OUT/ablation.md`` (a
table for bench/RESULTS.md) and ``OUT/ablation.png``. The measurement (configurations, latency, training, scoring)
and the CLI stay in ``attention_ablation.py``.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

METRICS = ("abs_rel", "delta1", "sot_center_error_px", "sot_success_auc", "sot_precision_20px", "train_seconds")
NOTE = "same training budget; small budget: differences below the seed noise are not conclusive"


def aggregate(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean over seeds of every metric, ``*_spread`` = sample standard deviation (None with one seed)."""
    out: dict[str, Any] = {}
    for key in METRICS:
        vals = [r[key] for r in runs]
        out[key] = float(np.mean(vals))
        out[f"{key}_spread"] = float(np.std(vals, ddof=1)) if len(vals) > 1 else None
    names = runs[0]["final_losses"]
    out["final_losses"] = {k: float(np.mean([r["final_losses"][k] for r in runs])) for k in names}
    return out


def _fmt(row: dict[str, Any], key: str, digits: int) -> str:
    v = row.get(key)
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    spread = row.get(f"{key}_spread")
    return f"{v:.{digits}f}" + (f" ± {spread:.{digits}f}" if spread is not None else "")


def write_markdown(path: Path, report: dict[str, Any]) -> None:
    s, kinds = report["settings"], report["kinds"]
    m = report["machine"]
    lines = [f"### DepthTrack attention ablation (`bench/attention_ablation.py`, preset `{s['preset']}`)", ""]
    if s["latency_only"]:
        lines.append("Latency only (random-init weights, no training).")
    else:
        lines.append(f"Budget: {s['steps']} steps x batch {s['batch_size']} per kind, seeds {s['seeds']}, "
                     f"train bags {', '.join(s['bags'])}; scored on `{s['val_bag']}` ({NOTE}).")
    lines += ["", f"Machine: {m['cpu']}, {m['logical_cores']} logical cores, torch {m['torch']}, "
              f"{s['threads']} torch threads{', ' + m['gpu'] if m.get('gpu') else ''}. Latency: one depth forward "
              f"of one set ({s['latency_input']}, {s['input_size'][1]}x{s['input_size'][0]} per camera), batch 1, "
              f"median of {s['runs']} after {s['warmup']} warm-up calls"
              f"{'; CUDA fp32' if m['cuda'] else ''}.", "",
              "| kind | KV heads | params | CPU ms | CUDA ms | AbsRel ↓ | δ1 ↑ | centre err px ↓ | success AUC ↑ "
              "| train s | final loss |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for kind, r in kinds.items():
        loss = r.get("final_losses", {}).get("loss")
        lines.append(f"| {kind} | {r['kv_heads']} | {r['params'] / 1e6:.3f} M | {_fmt(r, 'latency_cpu_ms', 1)} | "
                     f"{_fmt(r, 'latency_cuda_ms', 2)} | {_fmt(r, 'abs_rel', 3)} | {_fmt(r, 'delta1', 3)} | "
                     f"{_fmt(r, 'sot_center_error_px', 1)} | {_fmt(r, 'sot_success_auc', 3)} | "
                     f"{_fmt(r, 'train_seconds', 0)} | {'-' if loss is None else f'{loss:.3f}'} |")
    if "nsa" in kinds:
        n = kinds["nsa"]["nsa"]
        lines += ["", f"NSA: tile {n['tile']} ({n['block_size']}-token blocks), {n['blocks']} blocks over "
                  f"{n['padded_tokens']} tokens ({n['padding_tokens']} padding), top-{n['n_select']} selected + "
                  f"3x3 local blocks per query block, dense below {n['dense_below']} tokens: "
                  f"{'sparse path' if n['sparse'] else 'DENSE FALLBACK'}."]
    for note in report["notes"]:
        lines += ["", note]
    path.write_text("\n".join(lines) + "\n")


def write_plot(path: Path, report: dict[str, Any]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    kinds = report["kinds"]
    names = list(kinds)
    x = np.arange(len(names))
    panels = [("latency, ms", None)]
    if not report["settings"]["latency_only"]:
        panels += [("depth AbsRel", "abs_rel"), ("SOT centre error, px", "sot_center_error_px")]
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.4), dpi=120, squeeze=False)
    for ax, (title, key) in zip(axes[0], panels):
        if key is None:
            cuda = [kinds[k]["latency_cuda_ms"] for k in names]
            width = 0.4 if any(v is not None for v in cuda) else 0.8
            ax.bar(x - (width / 2 if width < 0.8 else 0), [kinds[k]["latency_cpu_ms"] for k in names], width,
                   label="CPU")
            if width < 0.8:
                ax.bar(x + width / 2, [v or 0.0 for v in cuda], width, label="CUDA")
                ax.set_yscale("log")
            ax.legend()
        else:
            spread = [kinds[k].get(f"{key}_spread") for k in names]
            err = None if all(v is None for v in spread) else [v or 0.0 for v in spread]
            ax.bar(x, [kinds[k][key] for k in names], 0.6, yerr=err, capsize=3)
        ax.set(xticks=x, xticklabels=names, title=title)
        ax.grid(axis="y", alpha=0.3)
    fig.suptitle(f"DepthTrack {report['settings']['preset']} attention ablation", fontsize=10)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
