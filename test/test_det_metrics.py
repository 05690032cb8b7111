"""Detection metrics: hand-computed cases and parity with pycocotools' COCOeval on hand-made and random data."""

from __future__ import annotations

import contextlib
import io

import numpy as np
import pytest
from depthtracker.eval.metrics.det import det_metrics


def _coco_stats(gt, pred, num_classes):
    """COCOeval's stats (AP, AP50, AP75, APs, APm, APl, AR1, AR10, AR100, ARs, ARm, ARl) and per-class AP."""
    coco_mod = pytest.importorskip("pycocotools.coco")
    cocoeval_mod = pytest.importorskip("pycocotools.cocoeval")
    images, anns, dets = [], [], []
    for i, ((gb, gl), (pb, ps, pl)) in enumerate(zip(gt, pred)):
        images.append({"id": i + 1, "width": 640, "height": 480, "file_name": f"{i}.png"})
        for b, lab in zip(np.asarray(gb, float).reshape(-1, 4), gl):
            w, h = b[2] - b[0], b[3] - b[1]
            anns.append({"id": len(anns) + 1, "image_id": i + 1, "category_id": int(lab) + 1,
                         "bbox": [b[0], b[1], w, h], "area": w * h, "iscrowd": 0})
        for b, s, lab in zip(np.asarray(pb, float).reshape(-1, 4), ps, pl):
            dets.append({"image_id": i + 1, "category_id": int(lab) + 1, "score": float(s),
                         "bbox": [b[0], b[1], b[2] - b[0], b[3] - b[1]]})
    with contextlib.redirect_stdout(io.StringIO()):
        cgt = coco_mod.COCO()
        cgt.dataset = {"images": images, "annotations": anns,
                       "categories": [{"id": c + 1, "name": str(c)} for c in range(num_classes)]}
        cgt.createIndex()
        cdt = cgt.loadRes(dets) if dets else coco_mod.COCO()
        ev = cocoeval_mod.COCOeval(cgt, cdt, "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    prec = ev.eval["precision"][:, :, :, 0, -1]  # (T, R, K) area all, maxDets 100
    per_class = []
    for k in range(num_classes):
        p = prec[:, :, k]
        per_class.append(float(np.mean(p[p > -1])) if (p > -1).any() else -1.0)
    return ev.stats, per_class


def _hand_made():
    """4 images, 3 classes: TPs at several IoUs, duplicates, FPs, FNs, a wrong class, small/medium/large boxes."""
    gt = [
        (np.array([[10, 10, 60, 60], [100, 100, 300, 260], [400, 50, 420, 70]], np.float32), np.array([0, 1, 2])),
        (np.array([[0, 0, 20, 20], [50, 50, 150, 150]], np.float32), np.array([0, 0])),
        (np.array([[200, 200, 400, 450]], np.float32), np.array([1])),
        (np.zeros((0, 4), np.float32), np.zeros(0, np.int64)),
    ]
    pred = [
        (np.array([[12, 10, 60, 62], [100, 110, 300, 250], [100, 100, 290, 260], [401, 50, 421, 71],
                   [300, 300, 340, 340]], np.float32),
         np.array([0.9, 0.8, 0.7, 0.6, 0.5]), np.array([0, 1, 1, 2, 0])),
        (np.array([[1, 0, 21, 20], [60, 50, 160, 150], [50, 50, 150, 150], [0, 0, 8, 8]], np.float32),
         np.array([0.3, 0.95, 0.4, 0.2]), np.array([0, 0, 0, 0])),
        (np.array([[200, 200, 400, 450], [210, 200, 400, 450]], np.float32), np.array([0.6, 0.6]), np.array([2, 1])),
        (np.array([[5, 5, 50, 50]], np.float32), np.array([0.99]), np.array([1])),
    ]
    return gt, pred


def _check_parity(gt, pred, num_classes):
    ours = det_metrics(gt, pred, num_classes)
    stats, per_class = _coco_stats(gt, pred, num_classes)
    want = {"map50_95": stats[0], "map50": stats[1], "map75": stats[2], "ap_small": stats[3],
            "ap_medium": stats[4], "ap_large": stats[5], "mar100": stats[8]}
    for key, value in want.items():
        assert ours[key] == pytest.approx(value, abs=1e-6), key
    for k in range(num_classes):
        assert ours["per_class"][str(k)]["ap50_95"] == pytest.approx(per_class[k], abs=1e-6), k
    return ours


def test_parity_with_cocoeval_hand_made():
    gt, pred = _hand_made()
    ours = _check_parity(gt, pred, 3)
    assert 0 < ours["map50_95"] < ours["map50"] < 1
    assert ours["num_images"] == 4 and ours["num_gt"] == 6 and ours["num_pred"] == 12


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_parity_with_cocoeval_random(seed):
    rng = np.random.default_rng(seed)
    gt, pred = [], []
    for _ in range(6):
        k = int(rng.integers(0, 6))
        xy = rng.uniform(0, 400, (k, 2))
        wh = rng.choice([8.0, 24.0, 48.0, 120.0, 200.0], (k, 2)) * rng.uniform(0.8, 1.2, (k, 2))
        gb = np.concatenate([xy, xy + wh], 1).astype(np.float32)
        gl = rng.integers(0, 3, k)
        keep = rng.random(k) < 0.8  # some misses
        jitter = rng.normal(0, 0.08, (k, 4)) * np.tile(wh, 2)
        pb = (gb + jitter)[keep]
        m = int(rng.integers(0, 4))  # false positives
        fxy = rng.uniform(0, 400, (m, 2))
        pb = np.concatenate([pb, np.concatenate([fxy, fxy + rng.uniform(5, 150, (m, 2))], 1)]).astype(np.float32)
        pb[:, 2:] = np.maximum(pb[:, 2:], pb[:, :2] + 1)
        pl = np.concatenate([gl[keep], rng.integers(0, 3, m)])
        ps = rng.uniform(0.05, 1.0, len(pl)).round(2)  # rounded: ties between scores are exercised too
        gt.append((gb, gl))
        pred.append((pb, ps, pl))
    _check_parity(gt, pred, 3)


def test_perfect_predictions_score_one():
    gt, _ = _hand_made()
    pred = [(b, np.ones(len(lab)), lab) for b, lab in gt]
    m = det_metrics(gt, pred, 3, class_names=("a", "b", "c"))
    assert m["map50"] == pytest.approx(1.0) and m["map50_95"] == pytest.approx(1.0) and m["mar100"] == 1.0
    assert m["per_class"]["a"] == {"ap50": pytest.approx(1.0), "ap50_95": pytest.approx(1.0), "num_gt": 3}


def test_no_predictions_score_zero_and_undefined_is_minus_one():
    gt, _ = _hand_made()
    empty = [(np.zeros((0, 4)), np.zeros(0), np.zeros(0, np.int64))] * len(gt)
    m = det_metrics(gt, empty, 4)
    assert m["map50"] == 0.0 and m["map50_95"] == 0.0 and m["ap_large"] == 0.0
    assert m["per_class"]["3"]["ap50"] == -1.0  # class 3 has no ground truth
    only_large = [(np.array([[0, 0, 200, 200]]), np.array([0]))]
    m = det_metrics(only_large, [(np.array([[0, 0, 200, 200]]), np.array([0.5]), np.array([0]))], 1)
    assert m["ap_small"] == -1.0 and m["ap_large"] == pytest.approx(1.0)  # COCO: tp / (tp + fp + eps)


def test_hand_computed_half_precision():
    # One gt, two predictions: the higher-scored one is a false positive. Precision at recall 1 is 1/2, so the
    # interpolated precision is 0.5 at every recall point -> AP = 0.5 at every threshold.
    gt = [(np.array([[0, 0, 100, 100]]), np.array([0]))]
    pred = [(np.array([[300, 300, 400, 400], [0, 0, 100, 100]]), np.array([0.9, 0.8]), np.array([0, 0]))]
    m = det_metrics(gt, pred, 1)
    assert m["map50"] == pytest.approx(0.5) and m["map50_95"] == pytest.approx(0.5)


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="one prediction entry per image"):
        det_metrics([(np.zeros((0, 4)), np.zeros(0))], [], 1)
    with pytest.raises(ValueError, match="label 5 outside"):
        det_metrics([(np.zeros((1, 4)), np.array([5]))], [(np.zeros((0, 4)), np.zeros(0), np.zeros(0))], 2)
