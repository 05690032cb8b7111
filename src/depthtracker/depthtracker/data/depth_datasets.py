"""DepthTrack training data: multi-camera depth samples and template/search pairs from bags (and SOT folders).

Usage::

    ds = DepthTrackDataset(bags=["data/world"], config=DepthTrackDataConfig(input_size=(120, 160)))
    loader = DataLoader(ds, batch_size=8, shuffle=True, collate_fn=collate_depthtrack)
    batch.images (B, V, 3, H, W) float [0, 1]; batch.intrinsics (B, V, 3, 3) input pixels; batch.extrinsics
    (B, V, 4, 4) T_world_cam; batch.depth (B, V, H, W) metres (NaN = unknown); batch.template (B, 3, St, St);
    batch.search (B, 3, Ss, Ss); batch.boxes (B, 4) xyxy search pixels; batch.box_valid (B,)

One sample = one synchronised set of a bag (every camera) + one template/search pair drawn for it.

**Depth.** Each camera image and its exact metric ground truth are cropped (``augment``: a random window of
``crop_scale`` of the image side, same aspect ratio) and resized to ``input_size``; ``K`` is scaled and shifted
with the crop (:func:`~depthtracker.data.crops.resize_camera`), so metric depth stays consistent with the rays
the model sees. Depth is resampled by nearest neighbour: values are never blended across object edges.

**Pairs.** A track is one object id in one camera (bags) or one sequence (GOT-10k / LaSOT), restricted to frames
where the target is visible (visibility >= ``min_visibility``, both box sides >= ``min_box_px``). The template is
cropped around the box in frame ``j`` (side ``template_factor * sqrt(w h)``); the search frame is drawn within a
temporal gap of ``j`` that grows over epochs (curriculum: ``gap_start`` up to ``max_gap`` by
``curriculum_epochs``), cropped around its box with centre and scale jitter (OSTrack-style). The centre shift is
limited so the target box stays inside the search crop; a box larger than the crop is clipped to it.

Determinism: sample ``i`` of epoch ``e`` draws from ``numpy.random.default_rng((seed, e, i))``.

Memory: bag images and depth are kept in RAM at ``cache_scale x input_size`` (uint8 RGB + float16 metres, about
``5 * cache_scale**2 * H * W`` bytes per camera image), read once at construction.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
from torch.utils.data import Dataset

from depthtracker.data.bags import BagError, BagReader
from depthtracker.data.crops import crop_box_side, crop_intrinsics, crop_square, resize_camera
from depthtracker.data.formats.sot_sequence import SOTTrack

__all__ = ["DepthTrackDataConfig", "DepthTrackSample", "DepthTrackBatch", "DepthTrackDataset", "SOTTrack",
           "collate_depthtrack", "max_gap_at"]


@dataclass(frozen=True)
class DepthTrackDataConfig:
    """How DepthTrack samples are built (mirrors the ``data`` part of a training config)."""

    input_size: tuple[int, int] = (120, 160)  # network input per camera (H, W), pixels
    cache_scale: float = 2.0  # bag frames are cached at this multiple of input_size (capped at the source), >= 1
    augment: bool = False  # random depth crops and pair jitter (training sets only)
    crop_scale: tuple[float, float] = (0.6, 1.0)  # depth crop side as a fraction of the image side, (0, 1]
    template_size: int = 64  # template crop side, pixels
    search_size: int = 128  # search crop side, pixels
    template_factor: float = 2.0  # template side = factor * sqrt(w h) of the box
    search_factor: float = 4.0  # search side = factor * sqrt(w h) of the box
    center_jitter: float = 0.2  # largest search-centre shift as a fraction of the search side, [0, 0.5]
    scale_jitter: float = 0.25  # search side multiplied by exp(U(-s, s)), >= 0
    gap_start: int = 2  # largest template -> search gap (frames) in epoch 0, >= 0
    max_gap: int = 20  # largest gap once the curriculum is done, >= gap_start
    curriculum_epochs: int = 10  # epochs over which the largest gap grows linearly, >= 0
    min_visibility: float = 0.5  # a frame joins a track when the target's visible fraction is >= this
    min_box_px: float = 4.0  # ... and both box sides are >= this many pixels (source image)
    seed: int = 0  # sample i of epoch e draws from RNG(seed, e, i), >= 0

    def __post_init__(self) -> None:
        for name in ("input_size", "crop_scale"):
            v = getattr(self, name)
            if not isinstance(v, tuple) or len(v) != 2:
                raise ValueError(f"DepthTrackDataConfig.{name} must be a pair, got {v!r}")
        if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 8 for v in self.input_size):
            raise ValueError(f"DepthTrackDataConfig.input_size must be two integers >= 8, got {self.input_size!r}")
        lo, hi = self.crop_scale
        if not 0 < lo <= hi <= 1:
            raise ValueError(f"DepthTrackDataConfig.crop_scale must satisfy 0 < lo <= hi <= 1, got {self.crop_scale}")
        checks = {"cache_scale": (1, 16), "template_factor": (1, 16), "search_factor": (1, 32),
                  "center_jitter": (0, 0.5), "scale_jitter": (0, 2), "min_visibility": (0, 1), "min_box_px": (0, 1e4)}
        for name, (a, b) in checks.items():
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not a <= v <= b:
                raise ValueError(f"DepthTrackDataConfig.{name} must be a number in [{a}, {b}], got {v!r}")
        for name in ("template_size", "search_size", "gap_start", "max_gap", "curriculum_epochs", "seed"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < (8 if name.endswith("size") else 0):
                raise ValueError(f"DepthTrackDataConfig.{name} must be an integer >= "
                                 f"{8 if name.endswith('size') else 0}, got {v!r}")
        if self.max_gap < self.gap_start:
            raise ValueError(f"DepthTrackDataConfig.max_gap={self.max_gap} must be >= gap_start={self.gap_start}")


def max_gap_at(config: DepthTrackDataConfig, epoch: int) -> int:
    """Largest template -> search gap (frames) in ``epoch`` under the linear curriculum."""
    if config.curriculum_epochs == 0:
        return config.max_gap
    t = min(1.0, epoch / config.curriculum_epochs)
    return int(round(config.gap_start + t * (config.max_gap - config.gap_start)))


class DepthTrackSample(NamedTuple):
    """One sample (uint8 images; see the module docstring for the batch form)."""

    images: torch.Tensor  # (V, 3, H, W) uint8
    intrinsics: torch.Tensor  # (V, 3, 3) float32, input pixels
    extrinsics: torch.Tensor  # (V, 4, 4) float64 T_world_cam
    depth: torch.Tensor  # (V, H, W) float32 metres, NaN = unknown
    template: torch.Tensor  # (3, St, St) uint8
    search: torch.Tensor  # (3, Ss, Ss) uint8
    box: torch.Tensor  # (4,) float32 xyxy search pixels
    box_valid: bool
    index: int


class DepthTrackBatch(NamedTuple):
    images: torch.Tensor
    intrinsics: torch.Tensor
    extrinsics: torch.Tensor
    depth: torch.Tensor
    template: torch.Tensor
    search: torch.Tensor
    boxes: torch.Tensor
    box_valid: torch.Tensor
    index: torch.Tensor


def collate_depthtrack(samples: Sequence[DepthTrackSample]) -> DepthTrackBatch:
    """Stack samples; images become float32 in [0, 1]."""
    if not samples:
        raise ValueError("collate_depthtrack needs at least one sample")
    views = {s.images.shape for s in samples}
    if len(views) != 1:
        raise ValueError(f"collate_depthtrack needs equal camera counts and sizes, got {sorted(views)}")
    return DepthTrackBatch(
        torch.stack([s.images for s in samples]).float() / 255, torch.stack([s.intrinsics for s in samples]),
        torch.stack([s.extrinsics for s in samples]), torch.stack([s.depth for s in samples]),
        torch.stack([s.template for s in samples]).float() / 255,
        torch.stack([s.search for s in samples]).float() / 255,
        torch.stack([s.box for s in samples]), torch.tensor([s.box_valid for s in samples]),
        torch.tensor([s.index for s in samples]))


class _BagImages:
    """``frame -> image`` of one camera of a cached bag (a class, not a lambda, so DataLoader workers can pickle)."""

    def __init__(self, store: np.ndarray, camera: int) -> None:
        self.store, self.camera = store, camera

    def __call__(self, frame: int) -> np.ndarray:
        return self.store[frame, self.camera]


def _chw(image: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))  # (H, W, 3) -> (3, H, W)


class DepthTrackDataset(Dataset):
    """Depth samples and template/search pairs (see the module docstring).

    Args:
        bags: depthtracker bags with ``depth_gt`` (and ``objects_gt`` for pairs).
        config: the data config.
        sot_tracks: extra tracks for pairs (e.g. from :func:`~depthtracker.data.formats.got10k.got10k_tracks`).
        progress: progress bar while bags are read.
    """

    def __init__(self, bags: Sequence[str | os.PathLike[str]], config: DepthTrackDataConfig | None = None,
                 sot_tracks: Sequence[SOTTrack] = (), progress: bool = False) -> None:
        self.config = config if config is not None else DepthTrackDataConfig()
        if isinstance(bags, (str, os.PathLike)):
            raise ValueError("bags takes a list of paths, not a single path")
        if not bags:
            raise ValueError("DepthTrackDataset needs at least one bag")
        self.epoch = 0
        self._images: list[np.ndarray] = []  # per bag (N, V, Hs, Ws, 3) uint8
        self._depths: list[np.ndarray] = []  # per bag (N, V, Hs, Ws) float16 metres
        self._K: list[np.ndarray] = []  # per bag (V, 3, 3) at cache resolution
        self._T: list[np.ndarray] = []  # per bag (V, 4, 4)
        self._sources: list[dict[str, Any]] = []
        self.tracks: list[SOTTrack] = []
        views = set()
        for b, bag in enumerate(bags):
            self._read_bag(Path(bag), b, progress)
            views.add(self._images[-1].shape[1:])
        if len(views) != 1:
            raise ValueError(f"all bags must have the same cameras and image sizes, got {sorted(views)}")
        self.tracks.extend(sot_tracks)
        self._index = np.array([(b, i) for b, im in enumerate(self._images) for i in range(im.shape[0])], np.int64)

    def _read_bag(self, path: Path, b: int, progress: bool) -> None:
        cfg = self.config
        with BagReader(path) as reader:
            cams = reader.cameras
            H0, W0 = cams[0].height, cams[0].width
            if any((c.height, c.width) != (H0, W0) for c in cams):
                raise BagError(f"bag {path}: DepthTrack needs equally sized cameras")
            s = min(1.0, cfg.cache_scale * cfg.input_size[0] / H0, cfg.cache_scale * cfg.input_size[1] / W0)
            hs, ws = max(8, round(H0 * s)), max(8, round(W0 * s))
            n, v = reader.num_sets, len(cams)
            images = np.zeros((n, v, hs, ws, 3), np.uint8)
            depths = np.full((n, v, hs, ws), np.nan, np.float16)
            Ks = np.stack([crop_intrinsics(c.K, 0, 0, ws / W0, hs / H0) for c in cams])
            boxes_by_track: dict[tuple[int, int], list[tuple[int, np.ndarray]]] = {}
            it = reader.samples()
            if progress:
                from tqdm import tqdm

                it = tqdm(it, total=n, desc=f"read {path.name}", unit="set", leave=False)
            count = 0
            for i, sample in enumerate(it):
                if i >= n:
                    break
                for j, (frame, dm, ann) in enumerate(zip(sample.frames, sample.depths, sample.annotations)):
                    img, _, d = resize_camera(frame.image, cams[j].K, (hs, ws),
                                              depth=None if dm is None else dm.depth)
                    images[i, j] = img
                    if d is not None:
                        depths[i, j] = d
                    if ann is None:
                        continue
                    bw, bh = ann.boxes[:, 2] - ann.boxes[:, 0], ann.boxes[:, 3] - ann.boxes[:, 1]
                    keep = (ann.visibility >= cfg.min_visibility) & (np.minimum(bw, bh) >= cfg.min_box_px)
                    for oid, box in zip(ann.ids[keep], ann.boxes[keep]):
                        boxes_by_track.setdefault((j, int(oid)), []).append((i, box * np.float32(s)))
                count = i + 1
        self._images.append(images[:count])
        self._depths.append(depths[:count])
        self._K.append(Ks)
        self._T.append(np.stack([np.asarray(c.T_world_cam) for c in cams]))
        store = self._images[-1]
        for (cam, oid), rows in sorted(boxes_by_track.items()):
            frames = np.array([r[0] for r in rows], np.int64)
            self.tracks.append(SOTTrack(f"{path.name}/cam{cam}/id{oid}", frames,
                                        np.stack([r[1] for r in rows]).astype(np.float32),
                                        _BagImages(store, cam)))
        self._sources.append({"kind": "bag", "path": str(path), "sets": count, "cameras": [c.camera_id for c in cams],
                              "cache_size": [hs, ws], "tracks": len(boxes_by_track), "source": reader.source})

    # -- access ---------------------------------------------------------------------------------------------
    def __len__(self) -> int:
        return int(self._index.shape[0])

    def set_epoch(self, epoch: int) -> None:
        """Select the draws (and the gap curriculum) of ``epoch``; the trainer calls it before each epoch."""
        self.epoch = int(epoch)

    def manifest(self) -> dict[str, Any]:
        """JSON-able description for the checkpoint sidecar."""
        return {"sources": self._sources, "samples": len(self), "tracks": len(self.tracks),
                "config": dataclasses.asdict(self.config)}

    def depth_sample(self, index: int, rng: np.random.Generator | None = None
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """``(images (V, H, W, 3) uint8, K (V, 3, 3), T (V, 4, 4), depth (V, H, W) float32)`` of sample
        ``index``; a random crop per camera when ``rng`` is given (augmentation)."""
        b, i = self._index[index]
        H, W = self.config.input_size
        ims, Ks, ds = [], [], []
        for v in range(self._images[b].shape[1]):
            img, dep = self._images[b][i, v], self._depths[b][i, v].astype(np.float32)
            crop = None
            if rng is not None:
                hs, ws = img.shape[:2]
                f = rng.uniform(*self.config.crop_scale)
                cw, ch = max(1, round(ws * f)), max(1, round(hs * f))
                crop = (int(rng.integers(0, ws - cw + 1)), int(rng.integers(0, hs - ch + 1)), cw, ch)
            im, K, d = resize_camera(img, self._K[b][v], (H, W), crop, dep)
            ims.append(im)
            Ks.append(K)
            ds.append(d)
        return np.stack(ims), np.stack(Ks), self._T[b].copy(), np.stack(ds)

    def pair(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray, bool]:
        """A template/search pair: ``(template (St, St, 3), search (Ss, Ss, 3), box (4,) search px, valid)``."""
        cfg = self.config
        if not self.tracks:
            z = np.zeros(4, np.float32)
            return (np.zeros((cfg.template_size,) * 2 + (3,), np.uint8),
                    np.zeros((cfg.search_size,) * 2 + (3,), np.uint8), z, False)
        tr = self.tracks[int(rng.integers(len(self.tracks)))]
        j = int(rng.integers(len(tr.frames)))
        gap = np.abs(tr.frames - tr.frames[j])
        ok = np.flatnonzero(gap <= max_gap_at(cfg, self.epoch))  # includes j itself (gap 0) as a fallback
        near = ok[gap[ok] > 0]
        k = int(rng.choice(near)) if near.size else j
        tb = tr.boxes[j]
        template, _ = crop_square(tr.image(int(tr.frames[j])), ((tb[0] + tb[2]) / 2, (tb[1] + tb[3]) / 2),
                                  crop_box_side(tb, cfg.template_factor), cfg.template_size)
        sb = tr.boxes[k]
        side = crop_box_side(sb, cfg.search_factor)
        cx, cy = (sb[0] + sb[2]) / 2, (sb[1] + sb[3]) / 2
        if cfg.augment:
            side *= math.exp(rng.uniform(-cfg.scale_jitter, cfg.scale_jitter))
            for axis, half in ((0, (sb[2] - sb[0]) / 2), (1, (sb[3] - sb[1]) / 2)):
                room = max(0.0, side / 2 - half)  # shift that keeps the box inside the crop
                shift = float(np.clip(rng.uniform(-1, 1) * cfg.center_jitter * side, -room, room))
                if axis == 0:
                    cx += shift
                else:
                    cy += shift
        search, tf = crop_square(tr.image(int(tr.frames[k])), (cx, cy), side, cfg.search_size)
        box = np.clip(tf.boxes_to_crop(sb), 0, cfg.search_size).astype(np.float32)
        return template, search, box, bool((box[2:] - box[:2]).min() > 1.0)

    def __getitem__(self, index: int) -> DepthTrackSample:
        if not -len(self) <= index < len(self):
            raise IndexError(f"sample index {index} out of range for {len(self)} samples")
        index = int(index) % len(self)
        rng = np.random.default_rng((self.config.seed, self.epoch, index))
        ims, K, T, d = self.depth_sample(index, rng if self.config.augment else None)
        template, search, box, valid = self.pair(rng)
        return DepthTrackSample(torch.from_numpy(np.ascontiguousarray(ims.transpose(0, 3, 1, 2))),
                                torch.from_numpy(K).float(), torch.from_numpy(T), torch.from_numpy(d),
                                _chw(template), _chw(search), torch.from_numpy(box), valid, index)
