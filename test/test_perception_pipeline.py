"""PerceptionPipeline's model concurrency: parallel really overlaps the two models, gives the same outputs as
sequential, never leaves the detector running after a set, and resolves ``auto`` as documented."""

from __future__ import annotations

import dataclasses
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import yaml
from depthtracker.perception import PerceptionConfig, PerceptionPipeline, cpu_threads_for, resolve_concurrency
from depthtracker.types import CameraModel, Detections, Frame

CONFIG = Path(__file__).resolve().parents[1] / "config"
T0 = 1_700_000_000_000_000_000


class FakeDepth:
    """Records the thread it ran on; with a barrier it waits for the detector to be running at the same time."""

    device = "cpu"

    def __init__(self, barrier=None, error=None):
        self.barrier, self.error, self.threads = barrier, error, []

    def predict_depth(self, images, cameras):
        self.threads.append(threading.get_ident())
        if self.barrier is not None:
            self.barrier.wait()  # BrokenBarrierError when the detector is not running beside it
        if self.error is not None:
            raise self.error
        return [SimpleNamespace(depth=np.ones(im.shape[:2], np.float32)) for im in images]


class FakeDetector:
    device = "cpu"

    def __init__(self, barrier=None, error=None, delay_s=0.0):
        self.barrier, self.error, self.delay_s, self.threads, self.finished = barrier, error, delay_s, [], []

    def predict(self, images, camera_ids, stamps_ns):
        self.threads.append(threading.get_ident())
        if self.barrier is not None:
            self.barrier.wait()
        time.sleep(self.delay_s)
        if self.error is not None:
            raise self.error
        self.finished.append(time.perf_counter())
        return [Detections.empty(c, s) for c, s in zip(camera_ids, stamps_ns)]


def one_set(width=32, height=24):
    cam = CameraModel(0, width, height, np.array([[20.0, 0, width / 2], [0, 20.0, height / 2], [0, 0, 1]]),
                      np.eye(4), "cam0_optical")
    return [Frame(np.zeros((height, width, 3), np.uint8), 0, 1_000, "cam0_optical")], [cam]


def test_parallel_runs_the_detector_beside_depth():
    barrier = threading.Barrier(2, timeout=10.0)
    depth, det = FakeDepth(barrier), FakeDetector(barrier)
    pipe = PerceptionPipeline(PerceptionConfig(model_concurrency="parallel"), depth, det)
    frames, cams = one_set()
    try:
        for _ in range(3):  # both wait at the barrier: only passes when the two run at the same time
            out = pipe.process(frames, cams)
            assert len(out.depths) == 1 and len(out.detections) == 1
            assert {"depth", "detect", "total"} <= set(out.timings_ms)
        assert pipe.concurrency == "parallel"
        assert set(depth.threads) == {threading.get_ident()}  # depth in the caller's thread
        assert len(set(det.threads)) == 1 and det.threads[0] != threading.get_ident()  # one worker, reused
    finally:
        pipe.close()


def test_sequential_runs_both_in_the_callers_thread():
    depth, det = FakeDepth(), FakeDetector()
    pipe = PerceptionPipeline(PerceptionConfig(model_concurrency="sequential"), depth, det)
    frames, cams = one_set()
    pipe.process(frames, cams)
    assert pipe.concurrency == "sequential"
    assert depth.threads == det.threads == [threading.get_ident()]
    # the barrier of the parallel test would break here: the models do not overlap
    barrier = threading.Barrier(2, timeout=0.5)
    pipe = PerceptionPipeline(PerceptionConfig(model_concurrency="sequential"), FakeDepth(barrier),
                              FakeDetector(barrier))
    with pytest.raises(threading.BrokenBarrierError):
        pipe.process(frames, cams)


def test_errors_propagate_and_the_detector_never_outlives_the_set():
    frames, cams = one_set()
    # depth fails while the detector still runs: the error comes after the detector finished
    det = FakeDetector(delay_s=0.3)
    pipe = PerceptionPipeline(PerceptionConfig(model_concurrency="parallel"), FakeDepth(error=RuntimeError("depth")),
                              det)
    with pytest.raises(RuntimeError, match="depth"):
        pipe.process(frames, cams)
    raised = time.perf_counter()
    assert len(det.finished) == 1 and det.finished[0] <= raised
    pipe.close()
    # the detector's own error reaches the caller
    pipe = PerceptionPipeline(PerceptionConfig(model_concurrency="parallel"), FakeDepth(),
                              FakeDetector(error=ValueError("detector")))
    with pytest.raises(ValueError, match="detector"):
        pipe.process(frames, cams)
    pipe.close()
    assert pipe._pool is None
    pipe.close()  # twice is fine


def test_auto_resolution_and_threads(monkeypatch):
    import os

    import depthtracker.perception as perception

    if hasattr(os, "sched_getaffinity"):  # the affinity mask, not the machine's count, decides
        monkeypatch.setattr(os, "cpu_count", lambda: 64)
        monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1})
        assert perception.usable_cores() == 2
    monkeypatch.setattr(perception, "usable_cores", lambda: 2)
    assert resolve_concurrency("auto", "cpu", True, True) == "parallel"
    assert resolve_concurrency("auto", "cuda", True, True) == "sequential"  # not measured on a GPU
    assert resolve_concurrency("parallel", "cpu", True, False) == "sequential"  # one model: nothing to overlap
    assert resolve_concurrency("sequential", "cpu", True, True) == "sequential"
    assert resolve_concurrency("parallel", "cuda", True, True) == "parallel"
    assert cpu_threads_for(PerceptionConfig(), "parallel") == 1
    assert cpu_threads_for(PerceptionConfig(), "sequential") == 1
    assert cpu_threads_for(PerceptionConfig(cpu_threads=3), "parallel") == 3
    monkeypatch.setattr(perception, "usable_cores", lambda: 1)
    assert resolve_concurrency("auto", "cpu", True, True) == "sequential"
    monkeypatch.setattr(perception, "usable_cores", lambda: 9)
    assert cpu_threads_for(PerceptionConfig(), "parallel") == 4
    assert cpu_threads_for(PerceptionConfig(), "sequential") == 8
    with pytest.raises(ValueError, match="model_concurrency must be one of auto, parallel, sequential"):
        PerceptionConfig(model_concurrency="threads")


def test_shipped_models_give_the_same_outputs_either_way():
    from depthtracker.data.synth import SynthConfig, SynthWorld

    world = SynthWorld(SynthConfig(cameras=2, width=160, height=120, fps=5.0, seconds=1.0, seed=5))
    cams = [CameraModel(i, c.width, c.height, c.K, np.eye(4), c.frame_id) for i, c in enumerate(world.cameras)]
    outs = {}
    for mode in ("sequential", "parallel"):
        pipe = PerceptionPipeline.from_config(PerceptionConfig(device="cpu", model_concurrency=mode,
                                                               target_score=0.0, detection_score=0.05))
        assert pipe.concurrency == mode
        runs = []
        for k in range(3):
            sample = world.render(k)
            stamp = T0 + k * 200_000_000
            frames = [Frame(f.image, i, stamp, cams[i].frame_id) for i, f in enumerate(sample.frames)]
            runs.append(pipe.process(frames, cams))
            if k == 0:
                pipe.set_target(0, sample.annotations[0].boxes[0], stamp)
        pipe.close()
        outs[mode] = runs
    n_det = 0
    for a, b in zip(outs["sequential"], outs["parallel"]):
        for da, db in zip(a.depths, b.depths):
            np.testing.assert_array_equal(da.depth, db.depth)
        for da, db in zip(a.detections, b.detections):
            np.testing.assert_array_equal(da.boxes, db.boxes)
            np.testing.assert_array_equal(da.scores, db.scores)
            np.testing.assert_array_equal(da.labels, db.labels)
            n_det += len(da)
        assert (a.target is None) == (b.target is None)
        if a.target is not None:
            np.testing.assert_array_equal(a.target.boxes, b.target.boxes)
            np.testing.assert_array_equal(a.target.scores, b.target.scores)
    assert n_det > 0, "nothing detected: the comparison would be empty"
    assert sum(r.target is not None for r in outs["parallel"]) == 2


def test_perception_yaml_mirrors_the_dataclass_defaults():
    params = yaml.safe_load((CONFIG / "perception.yaml").read_text())["/**/perception"]["ros__parameters"]
    for f in dataclasses.fields(PerceptionConfig):
        assert f.name in params, f"config/perception.yaml lacks {f.name}"
        assert params[f.name] == f.default, f.name
