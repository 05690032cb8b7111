"""Benchmark: the Kalman MOT tracker (DESIGN.md section 7; issue 3 item 6).

Usage: ``.venv/bin/python bench/tracking.py [--repeats 5] [--out bench/results/tracking.md] [--write-fixture]``

(a) Microseconds per track-step (one predict + one update of one track) of ``KalmanBoxFilter`` at 10, 100 and 1000
    tracks, against filterpy's ``KalmanFilter`` stepped per track in a Python loop (with F fixed and Q, R rebuilt from
    the height each step as the model requires; also reported with Q and R fixed, filterpy's floor). Targets:
    <= 1.5 us per track-step and >= 12x at 1000 tracks.
(b) TUD-Campus ground truth (shipped in py-motmetrics) turned into detections with seeded noise (box jitter,
    misses, false positives, score noise; ``noisy_detections``), tracked by our ``MultiObjectTracker`` and by the
    ``trackers`` package's SORT, ByteTrack and OC-SORT (their defaults, frame rate 25) on the same detections:
    HOTA, MOTA, IDF1 (``depthtracker.eval.metrics``) and frames/s of the update calls (detections built beforehand,
    best of ``--repeats`` passes). Targets: HOTA >= ByteTrack + 0.02 and >= 5000 frames/s.

``--write-fixture`` also writes the noisy detections and our tracker's metrics to ``test/data/tracking/`` (the
regression baseline ``test/test_mot.py`` re-checks). Exit status 0 when every target passes, 1 otherwise.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import time
from pathlib import Path

import numpy as np
from _machine import machine  # bench/ is on sys.path when a script here runs
from depthtracker.eval.metrics import mot_metrics
from depthtracker.tracking import KalmanBoxFilter, MultiObjectTracker, TrackerConfig
from depthtracker.types import Detections

REPO = Path(__file__).resolve().parents[1]
FIXTURE_DIR = REPO / "test" / "data" / "tracking"
US_PER_STEP_TARGET = 1.5
SPEEDUP_TARGET = 12.0
FPS_TARGET = 5000.0
HOTA_MARGIN = 0.02
TUD_FPS = 25.0  # MOT15 seqinfo of TUD-Campus
TUD_SIZE = (640, 480)
NOISE = dict(seed=3, jitter=0.06, miss_rate=0.15, fp_rate=1.5, tp_score=(0.75, 0.15), fp_score=(0.05, 0.75))


# ---- (a) filter speed ----------------------------------------------------------------------------------------------
def _best_of(fn, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def filter_speed(n: int, steps: int, repeats: int) -> dict[str, float]:
    """Seconds per track-step of our batched filter and of filterpy per track (adaptive and fixed Q, R)."""
    from filterpy.kalman import KalmanFilter

    rng = np.random.default_rng(n)
    dt = 1.0 / 30
    z0 = np.stack([rng.uniform(0, 640, n), rng.uniform(0, 480, n), rng.uniform(0.3, 1.2, n),
                   rng.uniform(20, 300, n)], axis=1)
    zs = z0[None] + rng.normal(0, [2, 2, 0.01, 2], (steps, n, 4))  # (steps, n, 4)
    idx = np.arange(n)

    def ours() -> None:
        kf = KalmanBoxFilter()
        kf.initiate(z0)
        for z in zs:
            kf.predict(dt)
            kf.update(idx, z)

    model = KalmanBoxFilter()
    F = model.transition_matrix(dt)
    H = model.observation_matrix()

    def filterpy_loop(adaptive: bool, n_tracks: int) -> None:
        filters = []
        for i in range(n_tracks):
            f = KalmanFilter(dim_x=8, dim_z=4)
            f.x[:4, 0] = z0[i]
            f.F, f.H = F, H
            f.Q, f.R = model.process_noise(dt, z0[i, 3]), model.measurement_noise(z0[i, 3])
            filters.append(f)
        for z in zs:
            for i, f in enumerate(filters[:n_tracks]):
                if adaptive:
                    f.predict(Q=model.process_noise(dt, f.x[3, 0]))
                    f.update(z[i], R=model.measurement_noise(f.x[3, 0]))
                else:
                    f.predict()
                    f.update(z[i])

    ours_s = _best_of(ours, repeats) / (n * steps)
    # filterpy costs the same per track at any n: time at most 200 tracks to keep the run short.
    m = min(n, 200)
    fp_s = _best_of(lambda: filterpy_loop(True, m), max(1, repeats // 2)) / (m * steps)
    fp_fixed_s = _best_of(lambda: filterpy_loop(False, m), max(1, repeats // 2)) / (m * steps)
    return {"ours": ours_s, "filterpy": fp_s, "filterpy_fixed": fp_fixed_s}


# ---- (b) TUD-Campus ---------------------------------------------------------------------------------------------
def tud_ground_truth() -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """TUD-Campus gt from the motmetrics package: {frame: (ids, xyxy boxes)}."""
    import motmetrics

    a = np.loadtxt(Path(motmetrics.__file__).parent / "data" / "TUD-Campus" / "gt.txt", delimiter=",", ndmin=2)
    out = {}
    for f in range(1, int(a[:, 0].max()) + 1):
        r = a[a[:, 0] == f]
        out[f] = (r[:, 1].astype(np.int64), np.concatenate([r[:, 2:4], r[:, 2:4] + r[:, 4:6]], axis=1))
    return out


def noisy_detections(gt: dict, seed: int, jitter: float, miss_rate: float, fp_rate: float,
                     tp_score: tuple[float, float], fp_score: tuple[float, float]) -> dict[int, np.ndarray]:
    """Detections from ground truth: {frame: (K, 5) [x1, y1, x2, y2, score]}.

    Each object is missed with probability ``miss_rate``; kept boxes get Gaussian jitter of ``jitter`` x the box
    width (x) or height (y) on each corner; scores ~ N(tp_score) clipped to [0.01, 1]; ``Poisson(fp_rate)`` false
    positives per frame with a size drawn from the ground truth's and a score ~ U(fp_score).
    """
    rng = np.random.default_rng(seed)
    sizes = np.concatenate([b[:, 2:] - b[:, :2] for _, b in gt.values() if len(b)])
    out = {}
    w_img, h_img = TUD_SIZE
    for f, (_, boxes) in gt.items():
        keep = rng.random(len(boxes)) >= miss_rate
        b = boxes[keep]
        wh = b[:, 2:] - b[:, :2]
        b = b + rng.normal(0.0, jitter, b.shape) * np.tile(wh, 2)
        b[:, 2:] = np.maximum(b[:, 2:], b[:, :2] + 2.0)
        s = np.clip(rng.normal(*tp_score, len(b)), 0.01, 1.0)
        n_fp = rng.poisson(fp_rate)
        fwh = sizes[rng.integers(0, len(sizes), n_fp)]
        fxy = rng.uniform(0, 1, (n_fp, 2)) * (np.array([w_img, h_img]) - fwh)
        fb = np.concatenate([fxy, fxy + fwh], axis=1)
        fs = rng.uniform(*fp_score, n_fp)
        out[f] = np.concatenate([np.concatenate([b, fb]), np.concatenate([s, fs])[:, None]], axis=1)
    return out


def write_dets(path: Path, dets: dict[int, np.ndarray]) -> None:
    """MOTChallenge det.txt layout: frame, -1, x, y, w, h, score, -1, -1, -1."""
    rows = [[f, -1, *d[:2], *(d[2:4] - d[:2]), d[4], -1, -1, -1] for f, ds in dets.items() for d in ds]
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savetxt(path, np.array(rows), delimiter=",", fmt=["%d", "%d"] + ["%.3f"] * 4 + ["%.4f"] + ["%d"] * 3)


def read_dets(path: Path) -> dict[int, np.ndarray]:
    a = np.loadtxt(path, delimiter=",", ndmin=2)
    frames = range(1, int(a[:, 0].max()) + 1)
    return {f: np.concatenate([a[a[:, 0] == f][:, 2:4], a[a[:, 0] == f][:, 2:4] + a[a[:, 0] == f][:, 4:6],
                               a[a[:, 0] == f][:, 6:7]], axis=1) for f in frames}


def to_detections(dets: dict[int, np.ndarray], camera_id: int = 0) -> list[Detections]:
    out = []
    for f, d in sorted(dets.items()):
        out.append(Detections(np.ascontiguousarray(d[:, :4], np.float32), d[:, 4].astype(np.float32),
                              np.zeros(len(d), np.int64), camera_id, int(round(f * 1e9 / TUD_FPS))))
    return out


def run_ours(frames: list[Detections], config: TrackerConfig | None = None) -> dict[int, tuple]:
    tracker = MultiObjectTracker(config)
    out = {}
    for i, d in enumerate(frames, start=1):
        t = tracker.update(d)
        out[i] = (t.ids, t.boxes.astype(np.float64))
    return out


def _baselines() -> dict[str, object]:
    import trackers

    return {"SORT": lambda: trackers.SORTTracker(frame_rate=TUD_FPS),
            "ByteTrack": lambda: trackers.ByteTrackTracker(frame_rate=TUD_FPS),
            "OC-SORT": lambda: trackers.OCSORTTracker(frame_rate=TUD_FPS)}


def run_baseline(make, sv_frames: list) -> dict[int, tuple]:
    tracker = make()
    out = {}
    for i, d in enumerate(sv_frames, start=1):
        r = tracker.update(d)
        ok = r.tracker_id >= 0
        out[i] = (np.asarray(r.tracker_id[ok], np.int64), np.asarray(r.xyxy[ok], np.float64))
    return out


def mot_comparison(dets: dict[int, np.ndarray], repeats: int) -> dict[str, dict[str, float]]:
    import supervision as sv

    gt = tud_ground_truth()
    frames = to_detections(dets)
    sv_frames = [sv.Detections(xyxy=d[:, :4].astype(np.float32), confidence=d[:, 4].astype(np.float32),
                               class_id=np.zeros(len(d), int)) for _, d in sorted(dets.items())]
    results = {}
    runners = {"depthtracker": lambda: run_ours(frames)}
    runners.update({name: (lambda make=make: run_baseline(make, sv_frames)) for name, make in _baselines().items()})
    for name, run in runners.items():
        hyp = run()
        seconds = _best_of(run, repeats)
        m = mot_metrics(gt, hyp)
        results[name] = {k: m[k] for k in ("HOTA", "DetA", "AssA", "MOTA", "IDF1", "IDSW")}
        results[name]["fps"] = len(frames) / seconds
    return results


def seed_sweep(seeds: range) -> dict[str, tuple[float, float]]:
    """HOTA mean and standard deviation of every tracker over noise seeds other than the headline one."""
    import supervision as sv

    gt = tud_ground_truth()
    hota: dict[str, list[float]] = {}
    for seed in seeds:
        dets = noisy_detections(gt, **{**NOISE, "seed": seed})
        frames = to_detections(dets)
        sv_frames = [sv.Detections(xyxy=d[:, :4].astype(np.float32), confidence=d[:, 4].astype(np.float32),
                                   class_id=np.zeros(len(d), int)) for _, d in sorted(dets.items())]
        hota.setdefault("depthtracker", []).append(mot_metrics(gt, run_ours(frames))["HOTA"])
        for name, make in _baselines().items():
            hota.setdefault(name, []).append(mot_metrics(gt, run_baseline(make, sv_frames))["HOTA"])
    return {name: (float(np.mean(v)), float(np.std(v))) for name, v in hota.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="timed passes; the best counts")
    parser.add_argument("--steps", type=int, default=50, help="filter steps per pass in (a)")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "tracking.md")
    parser.add_argument("--write-fixture", action="store_true", help="rewrite test/data/tracking/ baselines")
    args = parser.parse_args(argv)

    lines = [f"# Tracking benchmark ({datetime.date.today().isoformat()})", "", f"Machine: {machine()}.",
             f"Load average at start: {os.getloadavg()[0]:.2f} (other processes may share the cores).", ""]
    ok = True
    lines += ["## (a) Kalman filter, predict + update per track-step", "",
              "| tracks | ours (us) | filterpy per track, Q/R per step (us) | speed-up | filterpy, fixed Q/R (us) |"
              " speed-up |", "|---:|---:|---:|---:|---:|---:|"]
    for n in (10, 100, 1000):
        r = filter_speed(n, args.steps, args.repeats)
        us = {k: v * 1e6 for k, v in r.items()}
        lines.append(f"| {n} | {us['ours']:.3f} | {us['filterpy']:.2f} | {r['filterpy'] / r['ours']:.0f}x "
                     f"| {us['filterpy_fixed']:.2f} | {r['filterpy_fixed'] / r['ours']:.0f}x |")
        print(lines[-1], flush=True)
        if n == 1000:
            ok &= us["ours"] <= US_PER_STEP_TARGET and r["filterpy"] / r["ours"] >= SPEEDUP_TARGET
            passed = ok
    lines += ["", "filterpy is timed on at most 200 tracks (its cost per track does not depend on the count).",
              "", f"Target at 1000 tracks: <= {US_PER_STEP_TARGET} us and >= {SPEEDUP_TARGET:.0f}x: "
              f"{'PASS' if passed else 'FAIL'}.", ""]

    dets = noisy_detections(tud_ground_truth(), **NOISE)
    fixture = FIXTURE_DIR / "tud_campus_noisy_dets.txt"
    if args.write_fixture:
        write_dets(fixture, dets)
    dets = read_dets(fixture) if fixture.exists() else dets  # the exact values the regression test uses
    res = mot_comparison(dets, args.repeats)
    lines += ["## (b) TUD-Campus, noisy detections from ground truth", "",
              f"Noise: {NOISE} (boxes jittered by jitter x size per corner; misses; Poisson false positives).",
              "Baselines: `trackers` 2.6.1 with default parameters and frame_rate=25; frames/s of the update calls "
              "with detections prebuilt, best of the passes.", "",
              "| tracker | HOTA | DetA | AssA | MOTA | IDF1 | IDSW | frames/s |",
              "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for name, m in res.items():
        lines.append(f"| {name} | {m['HOTA']:.4f} | {m['DetA']:.4f} | {m['AssA']:.4f} | {m['MOTA']:.4f} | "
                     f"{m['IDF1']:.4f} | {m['IDSW']} | {m['fps']:.0f} |")
        print(lines[-1], flush=True)
    ours, byte = res["depthtracker"], res["ByteTrack"]
    hota_ok = ours["HOTA"] >= byte["HOTA"] + HOTA_MARGIN
    fps_ok = ours["fps"] >= FPS_TARGET
    ok &= hota_ok and fps_ok
    lines += ["", f"HOTA {ours['HOTA']:.4f} vs ByteTrack {byte['HOTA']:.4f} + {HOTA_MARGIN}: "
              f"{'PASS' if hota_ok else 'FAIL'}; {ours['fps']:.0f} frames/s vs {FPS_TARGET:.0f}: "
              f"{'PASS' if fps_ok else 'FAIL'}.", ""]
    sweep = seed_sweep(range(10, 20))
    lines += ["Robustness: HOTA mean +- std over noise seeds 10..19 (same noise model):", "",
              "| tracker | HOTA |", "|---|---:|"]
    lines += [f"| {name} | {mu:.4f} +- {sd:.4f} |" for name, (mu, sd) in sweep.items()]
    lines.append("")
    print("\n".join(lines[-len(sweep) - 1:]), flush=True)
    if args.write_fixture:
        m = mot_metrics(tud_ground_truth(), run_ours(to_detections(dets)))
        baseline = {k: m[k] for k in ("HOTA", "DetA", "AssA", "MOTA", "IDF1", "IDSW", "FP", "FN")}
        (FIXTURE_DIR / "tud_campus_baseline.json").write_text(json.dumps(baseline, indent=2) + "\n")
    lines += ["Notes: our tracker runs its defaults (config/tracking.yaml). Two of them depart from ByteTrack's: the "
              "aspect-ratio noise (0.03/0.03 instead of 0.01/0.1) and centre-only chi-square gating; they were chosen "
              "on noise seeds 10..12 of this generator (clean, moderate and full noise), not on the headline seed 3. "
              "The `trackers` baselines output the raw detection box of each matched track; ours outputs the "
              "filtered box. OC-SORT's defaults (high_conf_det_threshold 0.6, 3 frames to confirm) drop many true "
              "detections here: it scores 0.97 HOTA on clean boxes but loses most under misses and score noise.", ""]
    args.out.write_text("\n".join(lines))
    print(f"wrote {args.out}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
