"""Multi-object tracking metrics: HOTA (TrackEval), CLEAR MOT (MOTA, MOTP) and identity metrics (IDF1).

Definitions follow the reference implementations, against which ``test/test_metrics.py`` checks parity on the
TUD-Campus data shipped in py-motmetrics:

* **HOTA** as TrackEval's ``metrics/hota.py`` (Luiten et al. 2020): for each alpha in 0.05, 0.10, ..., 0.95, a
  per-frame Hungarian matching maximising ``global alignment x IoU`` keeps pairs with ``IoU >= alpha``;
  ``DetA = TP / (TP + FN + FP)``, ``AssA`` = mean over TPs of the pair's track-level association IoU,
  ``HOTA = sqrt(DetA x AssA)``, ``LocA`` = mean IoU of the TPs; every reported value is the mean over the 19 alphas.
* **CLEAR MOT** as py-motmetrics' ``MOTAccumulator`` (Bernardin & Stiefelhagen 2008) at ``IoU >= 0.5``: a pair
  matched in an earlier frame is kept while it still overlaps enough, the rest are matched by a maximum-cardinality
  minimum-distance assignment, and a ground-truth object matched to a different hypothesis than at its last match is
  an identity switch. ``MOTA = 1 - (FN + FP + IDSW) / GT``. ``MOTP`` here is the mean IoU of the matches (TrackEval's
  convention; py-motmetrics reports the mean distance ``1 - IoU``).
* **Identity** (Ristani et al. 2016): one global bipartite matching of ground-truth to hypothesis trajectories
  maximising the frames they overlap with ``IoU >= 0.5`` (IDTP); ``IDF1 = 2 IDTP / (GT + HYP)``, ``IDP = IDTP / HYP``,
  ``IDR = IDTP / GT``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment

from depthtracker.geometry.boxes import box_iou

__all__ = ["mot_metrics", "HOTA_ALPHAS"]

HOTA_ALPHAS = np.arange(0.05, 0.99, 0.05)  # 0.05 .. 0.95, as TrackEval
_EPS = np.finfo(np.float64).eps  # TrackEval's tolerance on thresholds and denominators


@dataclass
class _Frame:
    gt: np.ndarray  # (K,) contiguous gt track indices
    hyp: np.ndarray  # (L,) contiguous hypothesis track indices
    iou: np.ndarray  # (K, L)


def _check_frame(name: str, frame: object, value: object) -> tuple[np.ndarray, np.ndarray]:
    if not (isinstance(value, (tuple, list)) and len(value) == 2):
        raise ValueError(f"{name}[{frame!r}] must be a pair (ids (K,), boxes (K, 4) xyxy)")
    ids = np.asarray(value[0])
    boxes = np.asarray(value[1], np.float64)
    if ids.ndim != 1 or not (ids.size == 0 or np.issubdtype(ids.dtype, np.integer)):
        raise ValueError(f"{name}[{frame!r}] ids must be a 1-D integer array, got {ids.dtype} {ids.shape}")
    boxes = boxes.reshape(-1, 4) if boxes.size == 0 else boxes
    if boxes.shape != (ids.size, 4):
        raise ValueError(f"{name}[{frame!r}] boxes must have shape ({ids.size}, 4), got {boxes.shape}")
    if not np.isfinite(boxes).all():
        raise ValueError(f"{name}[{frame!r}] boxes have non-finite values")
    if np.unique(ids).size != ids.size:
        raise ValueError(f"{name}[{frame!r}] has repeated ids")
    return ids.astype(np.int64), boxes


def _prepare(gt: Mapping, hyp: Mapping) -> tuple[list[_Frame], int, int]:
    """Frames in sorted order with ids mapped to 0..G-1 and 0..H-1; returns (frames, G, H)."""
    empty = (np.zeros(0, np.int64), np.zeros((0, 4)))
    gt_ids: dict[int, int] = {}
    hyp_ids: dict[int, int] = {}
    frames = []
    for f in sorted(set(gt) | set(hyp)):
        g, gb = _check_frame("gt", f, gt.get(f, empty))
        h, hb = _check_frame("hyp", f, hyp.get(f, empty))
        gi = np.array([gt_ids.setdefault(int(i), len(gt_ids)) for i in g], np.int64)
        hi = np.array([hyp_ids.setdefault(int(i), len(hyp_ids)) for i in h], np.int64)
        frames.append(_Frame(gi, hi, box_iou(gb, hb)))
    return frames, len(gt_ids), len(hyp_ids)


def _hota(frames: list[_Frame], n_gt: int, n_hyp: int) -> dict[str, float]:
    gt_count = np.zeros((n_gt, 1))
    hyp_count = np.zeros((1, n_hyp))
    potential = np.zeros((n_gt, n_hyp))
    for fr in frames:
        sim = fr.iou
        denom = sim.sum(0)[None, :] + sim.sum(1)[:, None] - sim
        sim_iou = np.zeros_like(sim)
        ok = denom > _EPS
        sim_iou[ok] = sim[ok] / denom[ok]
        potential[fr.gt[:, None], fr.hyp[None, :]] += sim_iou
        gt_count[fr.gt] += 1
        hyp_count[0, fr.hyp] += 1
    global_align = potential / np.maximum(gt_count + hyp_count - potential, _EPS)

    na = len(HOTA_ALPHAS)
    tp, fn, fp, loc = np.zeros(na), np.zeros(na), np.zeros(na), np.zeros(na)
    matches = np.zeros((na, n_gt, n_hyp))
    for fr in frames:
        k, m = fr.gt.size, fr.hyp.size
        if k == 0 or m == 0:
            fn += k
            fp += m
            continue
        score = global_align[fr.gt[:, None], fr.hyp[None, :]] * fr.iou
        rows, cols = linear_sum_assignment(-score)
        s = fr.iou[rows, cols]
        for a, alpha in enumerate(HOTA_ALPHAS):
            ok = s >= alpha - _EPS
            n = int(ok.sum())
            tp[a] += n
            fn[a] += k - n
            fp[a] += m - n
            if n:
                loc[a] += s[ok].sum()
                matches[a, fr.gt[rows[ok]], fr.hyp[cols[ok]]] += 1

    union = gt_count[None] + hyp_count[None] - matches  # (A, G, H)
    ass_iou = matches / np.maximum(1.0, union)
    tp1 = np.maximum(1.0, tp)
    ass_a = (matches * ass_iou).sum((1, 2)) / tp1
    ass_re = (matches * matches / np.maximum(1.0, gt_count[None])).sum((1, 2)) / tp1
    ass_pr = (matches * matches / np.maximum(1.0, hyp_count[None])).sum((1, 2)) / tp1
    loc_a = np.maximum(1e-10, loc) / np.maximum(1e-10, tp)
    det_re = tp / np.maximum(1.0, tp + fn)
    det_pr = tp / np.maximum(1.0, tp + fp)
    det_a = tp / np.maximum(1.0, tp + fn + fp)
    hota = np.sqrt(det_a * ass_a)
    return {"HOTA": hota.mean(), "DetA": det_a.mean(), "AssA": ass_a.mean(), "LocA": loc_a.mean(),
            "DetRe": det_re.mean(), "DetPr": det_pr.mean(), "AssRe": ass_re.mean(), "AssPr": ass_pr.mean(),
            "HOTA(0)": hota[0], "LocA(0)": loc_a[0]}


def _clear(frames: list[_Frame], iou_threshold: float) -> dict[str, float]:
    last: dict[int, int] = {}  # gt index -> hypothesis index of its last match
    tp = fn = fp = idsw = 0
    iou_sum = 0.0
    max_dist = 1.0 - iou_threshold
    for fr in frames:
        k, m = fr.gt.size, fr.hyp.size
        dist = 1.0 - fr.iou
        valid = dist <= max_dist
        gt_done = np.zeros(k, bool)
        hyp_done = np.zeros(m, bool)
        pairs: list[tuple[int, int]] = []
        # 1. Keep the correspondences of earlier frames that still overlap enough.
        hyp_pos = {int(h): j for j, h in enumerate(fr.hyp)}
        for i, g in enumerate(fr.gt):
            j = hyp_pos.get(last.get(int(g), -1))
            if j is not None and not hyp_done[j] and valid[i, j]:
                gt_done[i] = hyp_done[j] = True
                pairs.append((i, j))
        # 2. Maximum-cardinality, minimum-distance assignment of the rest.
        free = valid & ~gt_done[:, None] & ~hyp_done[None, :]
        if free.any():
            big = 2.0 * min(k, m) + 1.0  # any invalid edge costs more than all valid ones together
            rows, cols = linear_sum_assignment(np.where(free, dist, big))
            for i, j in zip(rows, cols):
                if free[i, j]:
                    g, h = int(fr.gt[i]), int(fr.hyp[j])
                    if g in last and last[g] != h:
                        idsw += 1
                    pairs.append((i, j))
                    gt_done[i] = hyp_done[j] = True
        for i, j in pairs:
            last[int(fr.gt[i])] = int(fr.hyp[j])
            iou_sum += fr.iou[i, j]
        tp += len(pairs)
        fn += k - len(pairs)
        fp += m - len(pairs)
    n_gt = tp + fn
    return {"MOTA": 1.0 - (fn + fp + idsw) / max(1, n_gt) if n_gt else float("nan"),
            "MOTP": iou_sum / tp if tp else float("nan"),
            "CLR_TP": tp, "FN": fn, "FP": fp, "IDSW": idsw}


def _identity(frames: list[_Frame], n_gt: int, n_hyp: int, iou_threshold: float) -> dict[str, float]:
    overlap = np.zeros((n_gt, n_hyp))
    n_gt_dets = n_hyp_dets = 0
    for fr in frames:
        n_gt_dets += fr.gt.size
        n_hyp_dets += fr.hyp.size
        r, c = np.nonzero(1.0 - fr.iou <= 1.0 - iou_threshold)
        overlap[fr.gt[r], fr.hyp[c]] += 1
    rows, cols = linear_sum_assignment(-overlap)
    idtp = float(overlap[rows, cols].sum())
    total = n_gt_dets + n_hyp_dets
    return {"IDF1": 2 * idtp / total if total else float("nan"),
            "IDP": idtp / n_hyp_dets if n_hyp_dets else float("nan"),
            "IDR": idtp / n_gt_dets if n_gt_dets else float("nan"),
            "IDTP": idtp, "IDFN": n_gt_dets - idtp, "IDFP": n_hyp_dets - idtp,
            "num_gt_dets": n_gt_dets, "num_hyp_dets": n_hyp_dets}


def mot_metrics(gt: Mapping, hyp: Mapping, iou_threshold: float = 0.5) -> dict[str, float]:
    """HOTA, CLEAR MOT and identity metrics of one sequence.

    Args:
        gt, hyp: ``{frame: (ids (K,) int, boxes (K, 4) float xyxy pixels)}``; a frame missing from one side has no
            objects there. Ids must be unique within a frame.
        iou_threshold: the CLEAR and identity match threshold (HOTA integrates over its own alphas).

    Returns:
        ``HOTA, DetA, AssA, LocA, DetRe, DetPr, AssRe, AssPr, HOTA(0), LocA(0)`` (TrackEval; means over alphas),
        ``MOTA, MOTP`` (mean IoU of matches), ``CLR_TP, FN, FP, IDSW``, ``IDF1, IDP, IDR, IDTP, IDFN, IDFP``,
        ``num_gt_dets, num_hyp_dets, num_gt_ids, num_hyp_ids, num_frames`` (frames present on either side).
        Ratios with an empty denominator are NaN.
    """
    if not 0.0 < iou_threshold <= 1.0:
        raise ValueError(f"iou_threshold must be in (0, 1], got {iou_threshold}")
    frames, n_gt, n_hyp = _prepare(gt, hyp)
    out: dict[str, float] = {}
    out.update(_hota(frames, n_gt, n_hyp))
    out.update(_clear(frames, iou_threshold))
    out.update(_identity(frames, n_gt, n_hyp, iou_threshold))
    out.update(num_gt_ids=n_gt, num_hyp_ids=n_hyp, num_frames=len(frames))
    return {k: (float(v) if isinstance(v, (float, np.floating)) else int(v)) for k, v in out.items()}
