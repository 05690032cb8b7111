"""The perception pipeline, ROS-free: one synchronised camera set in, depth maps + detections + target candidates out.

This is what the perception node runs between its conversions (``ros/perception_node.py``), and what evaluation
runs in process (``eval/replay.py``), so the graph and the in-process path share every number::

    pipe = PerceptionPipeline.from_config(PerceptionConfig(device="cpu"))
    out = pipe.process(frames, cameras)          # frames: list[Frame] (RGB uint8), cameras: list[CameraModel]
    out.depths        # list[DepthMap] (metres at each image's size) or None when depth is disabled
    out.detections    # list[Detections] (one per camera) or None when detection is disabled
    out.target        # TargetCandidates of the target's camera, or None when no target is held or in this set

Models: DepthTrack (depth of every camera in one forward pass, and the single-target candidates) and HSV-DET
(every camera in one batched forward pass). ``model_concurrency``: ``parallel`` runs HSV-DET in a worker thread while
DepthTrack (depth, then the target search) runs in the caller's, so the two models' kernels use two cores at once;
``sequential`` runs them one after the other; ``auto`` (default) is ``parallel`` on a CPU with at least two cores when
both models are enabled, else ``sequential`` (on CUDA the overlap is not measured yet). Either way every output is the
same: the models share no state and each runs its own operations in its own order.

Checkpoints: ``""`` picks the shipped one (``models/depthtrack-edge``, ``models/hsvdet-n``), ``"none"`` disables
that model, anything else is a checkpoint path. A configured checkpoint that cannot be found or loaded is an error
naming it: there is no silent fallback to random weights.

Single target (``set_target`` / ``clear_target``): the template is cut from the request's image: the buffered image
of that camera nearest the request's stamp (within ``target_match_s``) when the pipeline has already seen it, else
the first image of that camera stamped at or after the request, when it comes.
Each later image of that camera is searched around the box of the pipeline's own ``TargetTracker``; the candidates
(boxes, scores, aleatoric sigmas) are the output. The tracking node runs a ``TargetTracker`` with the same
configuration on the same candidates, so both follow the same box; the pipeline's copy only centres the search.
"""

from __future__ import annotations

import collections
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from depthtracker.tracking import TargetTracker, TargetTrackerConfig
from depthtracker.types import CameraModel, DepthMap, Detections, Frame

__all__ = ["PerceptionConfig", "PerceptionPipeline", "PerceptionResult", "TargetCandidates", "resolve_checkpoint",
           "resolve_concurrency", "cpu_threads_for", "usable_cores", "DISABLED"]

DISABLED = "none"  # checkpoint value that turns a model off
STAMP_EPS_NS = 1_000_000  # stamps closer than this name the same image
SHIPPED = {"depth": "depthtrack-edge", "detector": "hsvdet-n"}
DEVICES = ("auto", "cpu", "cuda")
CONCURRENCY = ("auto", "parallel", "sequential")


@dataclass(frozen=True)
class PerceptionConfig:
    """The perception pipeline (``config/perception.yaml``, node ``perception``)."""

    depth_checkpoint: str = ""  # DepthTrack safetensors; "" = shipped models/depthtrack-edge; "none" = no depth
    detector_checkpoint: str = ""  # HSV-DET safetensors; "" = shipped models/hsvdet-n; "none" = no detections
    device: str = "auto"  # auto (cuda when available, else cpu) | cpu | cuda | cuda:N
    detection_score: float = 0.25  # least detection score published, [0, 1]
    nms_iou: float = 0.7  # class-aware NMS IoU threshold of the detector, (0, 1]
    max_detections: int = 100  # detections kept per image, >= 1
    target_score: float = 0.05  # single-target candidates scoring below this are dropped, [0, 1]
    max_candidates: int = 5  # single-target candidates per image, >= 1
    target_match_s: float = 0.5  # a target request takes its template from a buffered image this close in time, s
    image_buffer: int = 16  # images kept per camera for target requests that refer to a past image, >= 1
    cpu_threads: int = 0  # torch threads on the CPU; 0 = automatic (see cpu_threads_for), >= 0
    model_concurrency: str = "auto"  # auto | parallel (detector in a worker thread beside depth) | sequential

    def __post_init__(self) -> None:
        for name in ("depth_checkpoint", "detector_checkpoint", "device"):
            if not isinstance(getattr(self, name), str):
                raise ValueError(f"PerceptionConfig.{name} must be a string, got {getattr(self, name)!r}")
        if self.device.split(":")[0] not in DEVICES:
            raise ValueError(f"PerceptionConfig.device must be auto, cpu, cuda or cuda:N, got {self.device!r}")
        if self.model_concurrency not in CONCURRENCY:
            raise ValueError(f"PerceptionConfig.model_concurrency must be one of {', '.join(CONCURRENCY)}, got "
                             f"{self.model_concurrency!r}")
        for name, lo, hi in (("detection_score", 0.0, 1.0), ("target_score", 0.0, 1.0), ("nms_iou", 1e-6, 1.0),
                             ("target_match_s", 0.0, 60.0)):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not lo <= v <= hi:
                raise ValueError(f"PerceptionConfig.{name} must be a number in [{lo}, {hi}], got {v!r}")
        for name, lo, hi in (("max_detections", 1, 10000), ("max_candidates", 1, 1000), ("image_buffer", 1, 1000),
                             ("cpu_threads", 0, 256)):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
                raise ValueError(f"PerceptionConfig.{name} must be an integer in [{lo}, {hi}], got {v!r}")


@dataclass(frozen=True, eq=False)
class TargetCandidates:
    """Single-target candidates in one camera image (pixels, xyxy), best first; ``active`` false = no template yet."""

    camera_id: int
    stamp_ns: int
    boxes: np.ndarray  # (K, 4) float32
    scores: np.ndarray  # (K,) float32 in [0, 1]
    sigmas: np.ndarray  # (K, 4) float32, 1-sigma of each box coordinate, pixels
    active: bool = True


@dataclass(frozen=True, eq=False)
class PerceptionResult:
    """What one camera set produced. ``timings_ms``: ``depth``, ``detect``, ``target``, ``total`` wall times (run in
    parallel, ``detect`` overlaps ``depth`` and ``target``: ``total`` is the set's wall time, not their sum)."""

    depths: list[DepthMap] | None
    detections: list[Detections] | None
    target: TargetCandidates | None
    timings_ms: dict[str, float] = field(default_factory=dict)


def _shipped(stem: str) -> Path:
    """``models/STEM.safetensors`` of the source checkout, else of the installed share folder."""
    import sys

    for root in (Path(__file__).resolve().parents[3] / "models", Path(sys.prefix) / "share" / "depthtracker" / "models",
                 Path.cwd() / "models"):
        if (root / f"{stem}.safetensors").is_file():
            return root / f"{stem}.safetensors"
    raise FileNotFoundError(f"the shipped checkpoint {stem}.safetensors was not found (looked in the checkout's "
                            f"models/, {sys.prefix}/share/depthtracker/models and ./models); give a path, or "
                            f"'{DISABLED}' to run without this model")


def resolve_checkpoint(value: str, kind: str) -> Path | None:
    """``""`` -> the shipped checkpoint of ``kind`` (``depth`` | ``detector``), ``"none"`` -> None, else the path
    (``FileNotFoundError`` naming it when absent)."""
    if value.strip().lower() == DISABLED:
        return None
    if not value:
        return _shipped(SHIPPED[kind])
    path = Path(value)
    if not path.is_file() and path.with_suffix(".safetensors").is_file():
        path = path.with_suffix(".safetensors")
    if not path.is_file():
        raise FileNotFoundError(f"{kind} checkpoint {value!r} does not exist; give a .safetensors file (with its "
                                f"JSON sidecar), '' for the shipped one, or '{DISABLED}' to disable it")
    return path


def usable_cores() -> int:
    """Cores this process may run on: its CPU affinity (``taskset``, cpusets), else the machine's count."""
    import os

    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return os.cpu_count() or 1


def resolve_concurrency(value: str, device: str, depth: bool, detector: bool) -> str:
    """``parallel`` or ``sequential`` for ``model_concurrency`` ``value`` on ``device`` with these models enabled."""
    if not (depth and detector):
        return "sequential"  # one model: nothing to overlap
    if value != "auto":
        return value
    return "parallel" if device == "cpu" and usable_cores() >= 2 else "sequential"


def cpu_threads_for(config: PerceptionConfig, concurrency: str) -> int:
    """Torch threads on the CPU: ``cpu_threads`` when set, else one core fewer than the process may use
    (``usable_cores``), shared by the models running at once (1..8 each). The nodes of a graph share the cores: OpenMP
    threads spinning against the other processes cost more than they give (2 cores, sequential: 54 ms p50 with 1
    thread against 79 ms with 2, bench/graph.py). Parallel on 2 cores: one thread per model (bench/results/graph.md)."""
    if config.cpu_threads:
        return config.cpu_threads
    spare = max(1, usable_cores() - 1)
    return max(1, min(8, spare // (2 if concurrency == "parallel" else 1)))


def _device(value: str) -> str:
    import torch

    if value == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if value.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device {value!r} was asked for but CUDA is not available; use device 'auto' or 'cpu'")
    return value


class PerceptionPipeline:
    """Depth, detections and single-target candidates for synchronised camera sets (see the module docstring).

    Args:
        config: the pipeline's settings.
        depth: a ``DepthTrackPredictor`` or None (no depth, no single target).
        detector: an ``HSVDetPredictor`` or None (no detections).
        target_config: the ``TargetTracker`` settings that centre the search (the tracking node's ``target.*``).
    """

    def __init__(self, config: PerceptionConfig, depth: Any = None, detector: Any = None,
                 target_config: TargetTrackerConfig | None = None) -> None:
        self.config = config
        self._pool: Any = None  # the detector's worker thread (parallel), started with the first set
        self.depth = depth
        self.detector = detector
        self.target_config = target_config or TargetTrackerConfig()
        self._tracker = TargetTracker(self.target_config)
        self._images: dict[int, collections.deque[tuple[int, np.ndarray]]] = {}
        self._request: tuple[int, np.ndarray, int] | None = None  # (camera, box, stamp) waiting for an image
        self._template: Any = None
        self._ref_box = np.zeros(4)
        self._target_camera: int | None = None
        self._target_stamp = 0
        self.device = str(depth.device if depth is not None else detector.device if detector is not None else "cpu")
        self.checkpoints = {"depth": "given" if depth is not None else DISABLED,
                            "detector": "given" if detector is not None else DISABLED}
        # "parallel" or "sequential", as resolved for these models on this device
        self.concurrency = resolve_concurrency(config.model_concurrency, self.device.split(":")[0],
                                               depth is not None, detector is not None)

    @classmethod
    def from_config(cls, config: PerceptionConfig,
                    target_config: TargetTrackerConfig | None = None) -> PerceptionPipeline:
        """Load the configured checkpoints on the configured device (errors name the checkpoint or device)."""
        dev = _device(config.device)
        depth_path = resolve_checkpoint(config.depth_checkpoint, "depth")
        det_path = resolve_checkpoint(config.detector_checkpoint, "detector")
        if dev == "cpu":
            import torch

            torch.set_num_threads(cpu_threads_for(config, resolve_concurrency(
                config.model_concurrency, dev, depth_path is not None, det_path is not None)))
        depth = detector = None
        if depth_path is not None:
            from depthtracker.models.depthtrack import DepthTrackRuntimeConfig
            from depthtracker.models.depthtrack.predictor import DepthTrackPredictor

            runtime = DepthTrackRuntimeConfig(checkpoint=str(depth_path), device=dev,
                                              score_threshold=config.target_score,
                                              max_candidates=config.max_candidates)
            depth = DepthTrackPredictor.from_checkpoint(depth_path, device=dev, runtime=runtime)
        if det_path is not None:
            from depthtracker.models.hsvdet.predictor import HSVDetPredictor

            detector = HSVDetPredictor.from_checkpoint(det_path, device=dev, score_threshold=config.detection_score,
                                                       nms_iou=config.nms_iou, max_detections=config.max_detections)
        pipe = cls(config, depth, detector, target_config)
        pipe.checkpoints = {"depth": str(depth_path) if depth_path else DISABLED,
                            "detector": str(det_path) if det_path else DISABLED}
        return pipe

    # -- single target --------------------------------------------------------------------------------------------
    @property
    def target_camera(self) -> int | None:
        """Camera of the held (or requested) target, None when there is none."""
        if self._request is not None:
            return self._request[0]
        return self._target_camera

    def set_target(self, camera_id: int, box: Sequence[float], stamp_ns: int) -> bool:
        """Start following the object in ``box`` (xyxy pixels) of camera ``camera_id`` drawn on the image at
        ``stamp_ns``. Returns True when the template was cut at once from a buffered image, False when it waits
        for that image. ``ValueError`` when there is no tracking model, the box is bad, or the image is older
        than every buffered one by more than ``target_match_s``."""
        if self.depth is None:
            raise ValueError("single-target tracking needs the DepthTrack model (depth_checkpoint is 'none')")
        b = np.asarray(box, np.float64).reshape(-1)
        if b.size != 4 or not np.isfinite(b).all() or b[2] <= b[0] or b[3] <= b[1]:
            raise ValueError(f"target box must be 4 finite numbers x1 < x2, y1 < y2 (pixels), got {list(box)}")
        self.clear_target()
        buf = self._images.get(int(camera_id), ())
        if not buf or max(stamp for stamp, _ in buf) < int(stamp_ns) - STAMP_EPS_NS:
            self._request = (int(camera_id), b, int(stamp_ns))  # its image has not been processed yet
            return False
        gap, stamp, image = min((abs(stamp - int(stamp_ns)), stamp, image) for stamp, image in buf)
        if gap > self.config.target_match_s * 1e9:
            raise ValueError(f"target request at stamp {stamp_ns} refers to an image older than every buffered "
                             f"image of camera {camera_id} (nearest {gap / 1e9:.3f} s away > target_match_s="
                             f"{self.config.target_match_s}); send it within target_match_s of the image")
        self._start_target(int(camera_id), b, stamp, image)
        return True

    def clear_target(self) -> None:
        self._request = None
        self._template = None
        self._target_camera = None
        self._tracker.clear()

    def _start_target(self, camera_id: int, box: np.ndarray, stamp_ns: int, image: np.ndarray) -> None:
        self._template = self.depth.template(image, box)
        self._tracker.initialize(box, stamp_ns, camera_id)
        self._target_camera = camera_id
        self._target_stamp = stamp_ns
        self._ref_box = np.asarray(box, np.float64)
        self._request = None

    def _target_step(self, frame: Frame) -> TargetCandidates:
        # as DepthTrackPredictor.follow: search around the tracker's box of the previous image
        c = self.depth.candidates(frame.image, self._template, self._ref_box)
        st = self._tracker.update(c.boxes, c.scores, frame.stamp_ns)
        self._ref_box = np.asarray(st.box, np.float64)
        return TargetCandidates(frame.camera_id, frame.stamp_ns, np.asarray(c.boxes, np.float32).reshape(-1, 4),
                                np.asarray(c.scores, np.float32).reshape(-1),
                                np.asarray(c.sigmas, np.float32).reshape(-1, 4))

    # -- one set ------------------------------------------------------------------------------------------------------
    def process(self, frames: Sequence[Frame], cameras: Sequence[CameraModel]) -> PerceptionResult:
        """Run the enabled models on one synchronised set. ``frames[i]``: (H, W, 3) uint8 RGB of ``cameras[i]``
        (same size as its calibration; ``ValueError`` naming the camera otherwise)."""
        if len(frames) != len(cameras) or not frames:
            raise ValueError(f"process needs one camera per frame, got {len(frames)} frames, {len(cameras)} cameras")
        for f, cam in zip(frames, cameras):
            im = f.image
            if im.ndim != 3 or im.shape[2] != 3 or im.dtype != np.uint8:
                raise ValueError(f"camera {cam.camera_id}: image must be (H, W, 3) uint8 RGB, got {im.shape} "
                                 f"{im.dtype}")
            if im.shape[:2] != (cam.height, cam.width):
                raise ValueError(f"camera {cam.camera_id}: image is {im.shape[1]}x{im.shape[0]} but its CameraInfo "
                                 f"says {cam.width}x{cam.height}")
        times: dict[str, float] = {}
        t_start = time.perf_counter()
        for f in frames:
            buf = self._images.setdefault(f.camera_id, collections.deque(maxlen=self.config.image_buffer))
            buf.append((f.stamp_ns, f.image))
        depths = detections = target = None
        pending = None
        if self.detector is not None and self.concurrency == "parallel":
            if self._pool is None:
                import concurrent.futures

                self._pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="perception-detector")
            pending = self._pool.submit(self._detect, frames)
        try:
            if self.depth is not None:
                t = time.perf_counter()
                depths = [DepthMap(d.depth, f.camera_id, f.stamp_ns)
                          for d, f in zip(self.depth.predict_depth([f.image for f in frames], cameras), frames)]
                times["depth"] = 1e3 * (time.perf_counter() - t)
            if self.depth is not None and self.target_camera is not None:
                t = time.perf_counter()
                target = self._target(frames)
                times["target"] = 1e3 * (time.perf_counter() - t)
        finally:
            if pending is not None:
                pending.exception()  # waits: the detector never outlives the set, even when depth failed
        if pending is not None:
            detections, times["detect"] = pending.result()  # its own error, if any, raised here
        elif self.detector is not None:
            detections, times["detect"] = self._detect(frames)
        times["total"] = 1e3 * (time.perf_counter() - t_start)
        return PerceptionResult(depths, detections, target, times)

    def _detect(self, frames: Sequence[Frame]) -> tuple[list[Detections], float]:
        t = time.perf_counter()
        out = self.detector.predict([f.image for f in frames], [f.camera_id for f in frames],
                                    [f.stamp_ns for f in frames])
        return out, 1e3 * (time.perf_counter() - t)

    def close(self) -> None:
        """Stop the detector's worker thread (parallel); the pipeline can still be used (it starts a new one)."""
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None

    def _target(self, frames: Sequence[Frame]) -> TargetCandidates | None:
        frame = next((f for f in frames if f.camera_id == self.target_camera), None)
        if frame is None:
            return None
        if self._request is not None:  # waiting for the request's image (or the first one after it)
            cam, box, stamp = self._request
            if frame.stamp_ns >= stamp - STAMP_EPS_NS:
                self._start_target(cam, box, frame.stamp_ns, frame.image)
            return None  # the template's own image (or an older one): nothing to search
        if frame.stamp_ns <= self._target_stamp:  # the template's own image (or older): nothing to search
            return None
        return self._target_step(frame)
