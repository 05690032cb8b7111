"""Metrics: MOT parity with py-motmetrics (MOTA, IDF1) and TrackEval (HOTA) on the TUD-Campus files shipped inside
the motmetrics package; SOT metrics on hand-computed cases; depth metrics on analytic ones."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from depthtracker.eval.metrics import depth_metrics, mot_metrics, sot_metrics

motmetrics = pytest.importorskip("motmetrics")
TUD = Path(motmetrics.__file__).parent / "data" / "TUD-Campus"
TUD_FRAMES = 71


def load_mot(path: Path, min_conf: float | None = None) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """MOTChallenge text (frame, id, x, y, w, h, conf, ...) -> {frame: (ids, xyxy boxes)}."""
    a = np.loadtxt(path, delimiter=",", ndmin=2)
    if min_conf is not None:
        a = a[a[:, 6] >= min_conf]
    out = {}
    for f in np.unique(a[:, 0]).astype(int):
        r = a[a[:, 0] == f]
        out[int(f)] = (r[:, 1].astype(np.int64), np.concatenate([r[:, 2:4], r[:, 2:4] + r[:, 4:6]], axis=1))
    return out


@pytest.fixture(scope="module")
def tud() -> tuple[dict, dict]:
    return load_mot(TUD / "gt.txt", min_conf=1), load_mot(TUD / "test.txt")


@pytest.fixture(scope="module")
def ours(tud: tuple[dict, dict]) -> dict[str, float]:
    return mot_metrics(*tud)


def _motmetrics_summary(monkeypatch: pytest.MonkeyPatch) -> dict[str, float]:
    # motmetrics 1.4.0 calls np.asfarray, removed in NumPy 2: shim it for this test only.
    monkeypatch.setattr(np, "asfarray", lambda a, dtype=np.float64: np.asarray(a, dtype=dtype), raising=False)
    mm = motmetrics
    gt = mm.io.loadtxt(str(TUD / "gt.txt"), fmt="mot15-2D", min_confidence=1)
    ts = mm.io.loadtxt(str(TUD / "test.txt"), fmt="mot15-2D")
    acc = mm.utils.compare_to_groundtruth(gt, ts, "iou", distth=0.5)
    names = ["mota", "motp", "idf1", "idp", "idr", "num_switches", "num_false_positives", "num_misses",
             "num_frames"]
    summary = mm.metrics.create().compute(acc, metrics=names, name="tud")
    return {k: float(summary[k].iloc[0]) for k in names}


@pytest.mark.filterwarnings("ignore:Operation with tuple is deprecated")  # inside motmetrics 1.4.0 with pandas 3
def test_mota_idf1_match_motmetrics(ours: dict[str, float], monkeypatch: pytest.MonkeyPatch) -> None:
    ref = _motmetrics_summary(monkeypatch)
    assert abs(ours["MOTA"] - ref["mota"]) < 1e-4
    assert abs(ours["IDF1"] - ref["idf1"]) < 1e-4
    assert abs(ours["IDP"] - ref["idp"]) < 1e-4
    assert abs(ours["IDR"] - ref["idr"]) < 1e-4
    assert abs(ours["MOTP"] - (1.0 - ref["motp"])) < 1e-4  # motmetrics reports the mean distance 1 - IoU
    assert (ours["IDSW"], ours["FP"], ours["FN"]) == (ref["num_switches"], ref["num_false_positives"],
                                                     ref["num_misses"])
    assert ours["num_frames"] == ref["num_frames"] == TUD_FRAMES


def _mot_row_file(path: Path, src: Path, is_gt: bool) -> None:
    """Copy a MOT15 file in the MOT17 layout TrackEval reads: class (col 8) and visibility (col 9) set to 1."""
    a = np.loadtxt(src, delimiter=",", ndmin=2)
    if is_gt:
        a[:, 7] = 1
        a[:, 8] = 1
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savetxt(path, a, delimiter=",", fmt="%.6f")


def test_hota_matches_trackeval(ours: dict[str, float], tmp_path: Path) -> None:
    trackeval = pytest.importorskip("trackeval")
    _mot_row_file(tmp_path / "gt" / "TUD-Campus" / "gt" / "gt.txt", TUD / "gt.txt", True)
    _mot_row_file(tmp_path / "trackers" / "ref" / "data" / "TUD-Campus.txt", TUD / "test.txt", False)
    config = {
        "GT_FOLDER": str(tmp_path / "gt"), "TRACKERS_FOLDER": str(tmp_path / "trackers"),
        "OUTPUT_FOLDER": str(tmp_path / "out"), "TRACKERS_TO_EVAL": ["ref"], "CLASSES_TO_EVAL": ["pedestrian"],
        "SEQ_INFO": {"TUD-Campus": TUD_FRAMES}, "SKIP_SPLIT_FOL": True, "PRINT_CONFIG": False,
    }
    eval_config = {"USE_PARALLEL": False, "PRINT_RESULTS": False, "PRINT_CONFIG": False, "TIME_PROGRESS": False,
                   "OUTPUT_SUMMARY": False, "OUTPUT_DETAILED": False, "PLOT_CURVES": False,
                   "DISPLAY_LESS_PROGRESS": True, "OUTPUT_EMPTY_CLASSES": False}
    evaluator = trackeval.Evaluator(eval_config)
    res, _ = evaluator.evaluate([trackeval.datasets.MotChallenge2DBox(config)],
                                [trackeval.metrics.HOTA(), trackeval.metrics.CLEAR(), trackeval.metrics.Identity()])
    ref = res["MotChallenge2DBox"]["ref"]["TUD-Campus"]["pedestrian"]
    for key in ("HOTA", "DetA", "AssA", "LocA", "DetRe", "DetPr", "AssRe", "AssPr"):
        assert abs(ours[key] - float(np.mean(ref["HOTA"][key]))) < 1e-4, key
    assert abs(ours["MOTA"] - ref["CLEAR"]["MOTA"]) < 1e-4
    assert abs(ours["MOTP"] - ref["CLEAR"]["MOTP"]) < 1e-4
    assert abs(ours["IDF1"] - ref["Identity"]["IDF1"]) < 1e-4


def test_mot_perfect_and_empty() -> None:
    boxes = np.array([[0, 0, 10, 20], [30, 30, 50, 60.0]])
    gt = {f: (np.array([1, 2]), boxes + f) for f in range(5)}
    m = mot_metrics(gt, {f: (np.array([7, 9]), b) for f, (_, b) in gt.items()})
    for key in ("HOTA", "DetA", "AssA", "LocA", "MOTA", "MOTP", "IDF1"):
        assert m[key] == pytest.approx(1.0), key
    assert (m["IDSW"], m["FP"], m["FN"], m["num_frames"]) == (0, 0, 0, 5)
    m = mot_metrics(gt, {})
    assert m["HOTA"] == 0.0 and m["MOTA"] == 0.0 and m["FN"] == 10 and m["FP"] == 0


def test_mot_identity_switch() -> None:
    """One object tracked as id 1 for 4 frames then as id 2 for 4 frames: 1 switch, IDF1 = 2 * 4 / 16."""
    box = np.array([[0, 0, 10, 10.0]])
    gt = {f: (np.array([5]), box) for f in range(8)}
    hyp = {f: (np.array([1 if f < 4 else 2]), box) for f in range(8)}
    m = mot_metrics(gt, hyp)
    assert m["IDSW"] == 1 and m["MOTA"] == pytest.approx(1 - 1 / 8) and m["IDF1"] == pytest.approx(0.5)
    assert m["DetA"] == pytest.approx(1.0) and m["AssA"] == pytest.approx(0.5) and m["HOTA"] == pytest.approx(
        math.sqrt(0.5))


def test_mot_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="repeated ids"):
        mot_metrics({0: (np.array([1, 1]), np.zeros((2, 4)))}, {})
    with pytest.raises(ValueError, match="non-finite"):
        mot_metrics({0: (np.array([1]), np.array([[0, 0, np.nan, 1]]))}, {})
    with pytest.raises(ValueError, match="shape"):
        mot_metrics({}, {0: (np.array([1]), np.zeros((2, 4)))})


# ---- SOT ---------------------------------------------------------------------------------------------------------
def test_sot_hand_computed() -> None:
    gt = np.array([[0, 0, 10, 10], [0, 0, 10, 10], [0, 0, 10, 10], [np.nan] * 4], float)
    pred = np.array([[0, 0, 10, 10],  # IoU 1, centre error 0
                     [5, 0, 15, 10],  # IoU 50/150 = 1/3, centre error 5 px, normalised 0.5
                     [np.nan] * 4,  # no prediction: failure
                     [0, 0, 1, 1]], float)  # gt absent: not scored
    m = sot_metrics(pred, gt)
    assert m["num_frames"] == 3
    assert m["mean_iou"] == pytest.approx((1 + 1 / 3) / 3)
    # success: t in {0, .05, .., .3} (7 thresholds) -> 2/3; t in {.35, .., .95} (13) -> 1/3; t = 1 -> 0.
    assert m["success_auc"] == pytest.approx((7 * 2 / 3 + 13 / 3) / 21)
    assert m["precision_20px"] == pytest.approx(2 / 3)
    assert m["norm_precision"] == pytest.approx(1 / 3)
    # normalised curve over 0..0.5 (51 thresholds): frame 1 always, frame 2 only at 0.5.
    assert m["norm_precision_auc"] == pytest.approx((51 + 1) / 51 / 3)


def test_sot_no_scored_frames_and_bad_rows() -> None:
    m = sot_metrics(np.zeros((2, 4)), np.full((2, 4), np.nan))
    assert m["num_frames"] == 0 and math.isnan(m["success_auc"])
    with pytest.raises(ValueError, match=r"rows \[1\]"):
        sot_metrics(np.array([[0, 0, 1, 1], [2, 0, 1, 1.0]]), np.ones((2, 4)))
    with pytest.raises(ValueError, match="same shape"):
        sot_metrics(np.zeros((2, 4)), np.zeros((3, 4)))


# ---- depth -------------------------------------------------------------------------------------------------------
def test_depth_constant_scale() -> None:
    """pred = 1.1 gt everywhere: every metric has a closed form."""
    rng = np.random.default_rng(0)
    gt = rng.uniform(1.0, 10.0, (37, 53))
    m = depth_metrics(1.1 * gt, gt)
    assert m["abs_rel"] == pytest.approx(0.1)
    assert m["sq_rel"] == pytest.approx(0.01 * gt.mean())
    assert m["rmse"] == pytest.approx(0.1 * math.sqrt((gt**2).mean()))
    assert m["mae"] == pytest.approx(0.1 * gt.mean())
    assert m["rmse_log"] == pytest.approx(math.log(1.1))
    assert m["log10"] == pytest.approx(math.log10(1.1))
    assert m["silog"] == pytest.approx(math.sqrt(0.5) * math.log(1.1))
    assert (m["delta1"], m["delta2"], m["delta3"]) == (1.0, 1.0, 1.0)
    assert m["psnr"] == pytest.approx(20 * math.log10(gt.max() / m["rmse"]))
    m = depth_metrics(1.3 * gt, gt)
    assert (m["delta1"], m["delta2"]) == (0.0, 1.0)


def test_depth_masks_and_exact() -> None:
    gt = np.array([[1.0, 2.0], [np.nan, 0.0]])
    pred = np.array([[1.0, 4.0], [np.nan, 5.0]])  # the NaN and 0 gt pixels are excluded
    m = depth_metrics(pred, gt)
    assert m["num_valid"] == 2 and m["abs_rel"] == pytest.approx(0.5) and m["delta1"] == pytest.approx(0.5)
    assert m["mae"] == pytest.approx(1.0) and m["rmse"] == pytest.approx(math.sqrt(2.0))
    m = depth_metrics(pred, gt, valid_mask=np.array([[True, False], [True, True]]))
    assert m["num_valid"] == 1 and m["rmse"] == 0.0 and m["psnr"] == math.inf
    with pytest.raises(ValueError, match="non-finite"):
        depth_metrics(np.array([[np.nan, 1.0]]), np.array([[1.0, 1.0]]))
    with pytest.raises(ValueError, match="no valid"):
        depth_metrics(np.ones((2, 2)), np.zeros((2, 2)))
