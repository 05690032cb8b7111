"""Object-detection metrics: COCO bounding-box AP, reimplemented in NumPy to match pycocotools' ``COCOeval``.

Usage::

    gt = [(boxes_k4_xyxy, labels_k), ...]                      # one entry per image
    pred = [(boxes_m4_xyxy, scores_m, labels_m), ...]          # same images, same order
    m = det_metrics(gt, pred, num_classes=3, class_names=("box", "sphere", "cylinder"))
    m["map50_95"], m["map50"], m["ap_small"], m["per_class"]["box"]["ap50"]

Definition (``COCOeval`` with ``iouType='bbox'``, ``useCats=1``, no crowd regions):

* per image and class, detections are sorted by score (stable) and only the best ``max_dets`` (100) are kept; each
  one, in that order, is matched at every IoU threshold 0.50:0.05:0.95 to the unmatched ground-truth box of highest
  IoU (>= threshold; among equal IoUs the later box), preferring boxes inside the area range to ignored ones;
* ground truth outside an area range is ignored for that range, as are unmatched detections outside it (areas are
  box areas ``w * h``; ranges all, small < 32^2, medium 32^2..96^2, large > 96^2, bounds inclusive as in COCO);
* precision is made monotone and sampled at 101 recall points (0:0.01:1); AP averages those samples over
  thresholds and classes that have ground truth in the range.

Boxes are ``[x1, y1, x2, y2]`` pixels; IoU has no +1 (pycocotools >= 2.0). A metric with no ground truth to score
against is -1, as in COCO (e.g. ``ap_small`` when no box is small); an image list with ground truth but no
predictions scores 0. ``mar100`` is COCO's AR at 100 detections.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from depthtracker.geometry.boxes import box_iou

__all__ = ["det_metrics", "precision_recall_curves", "IOU_THRESHOLDS", "RECALL_POINTS", "AREA_RANGES"]

# Built exactly as pycocotools builds them, so that every threshold is the same float.
IOU_THRESHOLDS = np.linspace(0.5, 0.95, int(np.round((0.95 - 0.5) / 0.05)) + 1, endpoint=True)
RECALL_POINTS = np.linspace(0.0, 1.00, int(np.round((1.00 - 0.0) / 0.01)) + 1, endpoint=True)
AREA_RANGES = {"all": (0.0, 1e5**2), "small": (0.0, 32.0**2), "medium": (32.0**2, 96.0**2), "large": (96.0**2, 1e5**2)}


def _as_arrays(gt: Sequence[Any], pred: Sequence[Any], num_classes: int) -> tuple[list, list]:
    if len(gt) != len(pred):
        raise ValueError(f"det_metrics needs one prediction entry per image: {len(gt)} gt vs {len(pred)} pred")
    G, P = [], []
    for i, (g, p) in enumerate(zip(gt, pred)):
        gb = np.asarray(g[0], np.float64).reshape(-1, 4)
        gl = np.asarray(g[1], np.int64).reshape(-1)
        pb = np.asarray(p[0], np.float64).reshape(-1, 4)
        ps = np.asarray(p[1], np.float64).reshape(-1)
        pl = np.asarray(p[2], np.int64).reshape(-1)
        if gb.shape[0] != gl.shape[0] or not (pb.shape[0] == ps.shape[0] == pl.shape[0]):
            raise ValueError(f"det_metrics image {i}: boxes, scores and labels differ in length "
                             f"(gt {gb.shape[0]}/{gl.shape[0]}, pred {pb.shape[0]}/{ps.shape[0]}/{pl.shape[0]})")
        for name, lab in (("gt", gl), ("pred", pl)):
            bad = lab[(lab < 0) | (lab >= num_classes)]
            if bad.size:
                raise ValueError(f"det_metrics image {i}: {name} label {int(bad[0])} outside [0, {num_classes})")
        if not (np.isfinite(gb).all() and np.isfinite(pb).all() and np.isfinite(ps).all()):
            raise ValueError(f"det_metrics image {i}: non-finite boxes or scores")
        G.append((gb, gl))
        P.append((pb, ps, pl))
    return G, P


def _area(b: np.ndarray) -> np.ndarray:
    return (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])


def _match(ious: np.ndarray, gt_ignore: np.ndarray) -> np.ndarray:
    """COCO greedy matching of score-sorted detections (rows) to area-sorted ground truth (columns, non-ignored
    first). Returns (T, D) int index of the matched gt, -1 where none."""
    T, (D, G) = len(IOU_THRESHOLDS), ious.shape
    out = np.full((T, D), -1, np.int64)
    if G == 0:
        return out
    for t, thr in enumerate(IOU_THRESHOLDS):
        taken = np.zeros(G, bool)
        thr = min(thr, 1 - 1e-10)
        for d in range(D):
            ok = ~taken & (ious[d] >= thr)
            for group in (~gt_ignore, gt_ignore):  # a box in range always wins over an ignored one
                cand = ok & group
                if cand.any():
                    best = ious[d][cand].max()
                    m = int(np.flatnonzero(cand & (ious[d] == best))[-1])  # COCO keeps the last of equal IoUs
                    out[t, d] = m
                    taken[m] = True
                    break
    return out


def _evaluate_class(G: list, P: list, c: int, lo: float, hi: float, max_dets: int) -> tuple[np.ndarray, ...] | None:
    """Per class and area range: concatenated (scores, matched (T, N), ignored (T, N)) and the count of non-ignored
    ground truth. None when the class has no ground truth in the range (COCO's -1)."""
    scores, matched, ignored, npos = [], [], [], 0
    for (gb, gl), (pb, ps, pl) in zip(G, P):
        g = gb[gl == c]
        sel = np.flatnonzero(pl == c)
        if not len(g) and not len(sel):
            continue
        order = sel[np.argsort(-ps[sel], kind="mergesort")][:max_dets]
        d = pb[order]
        ga = _area(g)
        g_ign = (ga < lo) | (ga > hi)
        g_order = np.argsort(g_ign, kind="mergesort")
        g, g_ign = g[g_order], g_ign[g_order]
        npos += int((~g_ign).sum())
        m = _match(box_iou(d, g), g_ign)  # (T, D)
        d_ign = (m >= 0) & np.append(g_ign, False)[m]  # index -1 (unmatched) reads the appended False
        da = _area(d)
        d_ign |= (m < 0) & ((da < lo) | (da > hi))[None, :]
        scores.append(ps[order])
        matched.append(m >= 0)
        ignored.append(d_ign)
    if npos == 0:
        return None
    T = len(IOU_THRESHOLDS)
    s = np.concatenate(scores) if scores else np.zeros(0)
    mt = np.concatenate(matched, 1) if matched else np.zeros((T, 0), bool)
    ig = np.concatenate(ignored, 1) if ignored else np.zeros((T, 0), bool)
    order = np.argsort(-s, kind="mergesort")
    return mt[:, order], ig[:, order], np.array(npos)


def _precision_recall(mt: np.ndarray, ig: np.ndarray, npos: int) -> tuple[np.ndarray, np.ndarray]:
    """(T, R) interpolated precision at the recall points and (T,) final recall."""
    T, R = len(IOU_THRESHOLDS), len(RECALL_POINTS)
    tp = np.cumsum(mt & ~ig, axis=1).astype(np.float64)
    fp = np.cumsum(~mt & ~ig, axis=1).astype(np.float64)
    prec = np.zeros((T, R))
    rec_final = np.zeros(T)
    for t in range(T):
        n = tp.shape[1]
        if n == 0:
            continue
        rc = tp[t] / npos
        pr = tp[t] / (fp[t] + tp[t] + np.spacing(1))
        rec_final[t] = rc[-1]
        pr = np.maximum.accumulate(pr[::-1])[::-1]  # precision envelope: best precision at any higher recall
        idx = np.searchsorted(rc, RECALL_POINTS, side="left")
        valid = idx < n
        prec[t, valid] = pr[idx[valid]]
    return prec, rec_final


def det_metrics(gt: Sequence[Any], pred: Sequence[Any], num_classes: int,
                class_names: Sequence[str] | None = None, max_dets: int = 100) -> dict[str, Any]:
    """COCO box metrics of ``pred`` against ``gt`` (see the module docstring).

    Args:
        gt: per image ``(boxes (K, 4) xyxy, labels (K,) int)``.
        pred: per image ``(boxes (M, 4) xyxy, scores (M,), labels (M,) int)``.
        num_classes: labels lie in ``[0, num_classes)``.
        class_names: names for ``per_class`` (default ``"0"``, ``"1"``, ...).
        max_dets: detections kept per image and class (COCO: 100).

    Returns:
        ``map50``, ``map50_95``, ``map75``, ``ap_small``, ``ap_medium``, ``ap_large``, ``mar100`` (floats, -1 when
        undefined), ``per_class`` ``{name: {"ap50", "ap50_95", "num_gt"}}``, ``num_images``, ``num_gt``, ``num_pred``.
    """
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f"num_classes must be an integer >= 1, got {num_classes!r}")
    names = [str(i) for i in range(num_classes)] if class_names is None else [str(n) for n in class_names]
    if len(names) != num_classes:
        raise ValueError(f"class_names has {len(names)} names for num_classes={num_classes}")
    G, P = _as_arrays(gt, pred, num_classes)
    # precision[a][c] (T, R) and recall[a][c] (T,), or None where the class has no ground truth in area range a
    precision: dict[str, list[np.ndarray | None]] = {}
    recall: dict[str, list[np.ndarray | None]] = {}
    for area, (lo, hi) in AREA_RANGES.items():
        precision[area], recall[area] = [], []
        for c in range(num_classes):
            ev = _evaluate_class(G, P, c, lo, hi, max_dets)
            if ev is None:
                precision[area].append(None)
                recall[area].append(None)
                continue
            p, r = _precision_recall(ev[0], ev[1], int(ev[2]))
            precision[area].append(p)
            recall[area].append(r)

    def mean_ap(area: str, t: slice | int = slice(None)) -> float:
        vals = [p[t] for p in precision[area] if p is not None]
        return float(np.mean(vals)) if vals else -1.0

    def ap_of(c: int, t: slice | int) -> float:
        p = precision["all"][c]
        return -1.0 if p is None else float(np.mean(p[t]))

    rec_all = [r for r in recall["all"] if r is not None]
    per_class = {names[c]: {"ap50": ap_of(c, 0), "ap50_95": ap_of(c, slice(None)),
                            "num_gt": int(sum((gl == c).sum() for _, gl in G))} for c in range(num_classes)}
    return {
        "map50": mean_ap("all", 0),
        "map50_95": mean_ap("all"),
        "map75": mean_ap("all", int(np.argmin(np.abs(IOU_THRESHOLDS - 0.75)))),
        "ap_small": mean_ap("small"),
        "ap_medium": mean_ap("medium"),
        "ap_large": mean_ap("large"),
        "mar100": float(np.mean(rec_all)) if rec_all else -1.0,
        "per_class": per_class,
        "num_images": len(G),
        "num_gt": int(sum(len(gl) for _, gl in G)),
        "num_pred": int(sum(len(pl) for _, _, pl in P)),
    }


def precision_recall_curves(gt: Sequence[Any], pred: Sequence[Any], num_classes: int,
                            class_names: Sequence[str] | None = None, iou: float = 0.5,
                            max_dets: int = 100) -> dict[str, tuple[np.ndarray, np.ndarray] | None]:
    """Per class, COCO's interpolated precision ``(101,)`` at the recall points ``RECALL_POINTS`` ``(101,)`` at the
    IoU threshold of ``IOU_THRESHOLDS`` nearest ``iou``, all object sizes (the curve whose mean is that class's AP at
    that threshold). ``None`` for a class without ground truth. Inputs as :func:`det_metrics`."""
    names = [str(i) for i in range(num_classes)] if class_names is None else [str(n) for n in class_names]
    G, P = _as_arrays(gt, pred, num_classes)
    t = int(np.argmin(np.abs(IOU_THRESHOLDS - iou)))
    lo, hi = AREA_RANGES["all"]
    out: dict[str, tuple[np.ndarray, np.ndarray] | None] = {}
    for c in range(num_classes):
        ev = _evaluate_class(G, P, c, lo, hi, max_dets)
        if ev is None:
            out[names[c]] = None
            continue
        out[names[c]] = (RECALL_POINTS.copy(), _precision_recall(ev[0], ev[1], int(ev[2]))[0][t])
    return out
