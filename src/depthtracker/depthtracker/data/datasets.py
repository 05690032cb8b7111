"""Detection training data over depthtracker bags and COCO folders, and the collation a YOLO-style loss wants.

Usage::

    cfg = DetectionDataConfig(image_size=(384, 512), augment=True)
    ds = DetectionDataset(bags=["data/world"], config=cfg)
    loader = DataLoader(ds, batch_size=16, shuffle=True, collate_fn=collate_detections)
    for batch in loader:
        batch.images   # (B, 3, H, W) float32 RGB in [0, 1]
        batch.targets  # (T, 6) float32 rows [batch_idx, label, x1, y1, x2, y2], pixels of the network input
        batch.meta     # per image: source, camera, stamp or COCO id, and the Letterbox back to the source image

Samples: every camera image of every set of every bag (cameras with an ``objects_gt`` topic), then every image of
every COCO folder. Ground truth of a bag is its ``objects_gt`` boxes with ``visibility >= min_visibility``; of a
COCO file its non-crowd boxes. Boxes smaller than ``min_box_area`` *after* resizing are dropped, because what
matters is what the network sees.

Resizing: letterbox (keep aspect ratio, scale to fit, pad centred with ``pad_value``) by default, plain stretching
with ``letterbox=False``. ``Letterbox`` holds the mapping both ways; inference must use the same ``Letterbox.apply``
so that the detector sees training-like inputs. Interpolation: area when shrinking, bilinear when enlarging.

Augmentation (``augment=True``): horizontal flip and an HSV jitter (additive hue shift, multiplicative saturation
and value gains, as in YOLOv5/v8's ``augment_hsv`` but with a hue rotation rather than a hue gain). Sample ``i`` of
epoch ``e`` draws from ``numpy.random.default_rng((seed, e, i))``, so augmentation is the same whatever the worker
count or order; the trainer calls ``set_epoch(e)``.

Memory: a bag is read once at construction (one sequential pass; depth topics are skipped) and each image is stored
already letterboxed, as uint8, in a few large chunk arrays (no per-image Python objects, so forked DataLoader
workers share the pages instead of copying them on read). The first ``cache_ram_mb`` MiB stay in RAM; the rest spill
to memory-mapped files in ``cache_dir`` (deleted with the dataset), which workers open read-only. COCO images are
read from disk on demand.
"""

from __future__ import annotations

import os
import tempfile
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from depthtracker.data.bag_format import stamp_ns_of
from depthtracker.data.bags import BagError, BagReader
from depthtracker.data.formats.coco import read_coco
from depthtracker.data.images import image_to_array
from depthtracker.data.transforms import Letterbox, hsv_jitter

__all__ = ["DetectionDataConfig", "Letterbox", "SampleMeta", "DetectionSample", "DetectionBatch",
           "DetectionDataset", "collate_detections", "images_to_float", "split_targets"]


@dataclass(frozen=True)
class DetectionDataConfig:
    """How detection samples are built. Mirrors the ``data:`` part of the detector's training YAML."""

    image_size: tuple[int, int] = (384, 512)  # network input (H, W), pixels; multiples of size_divisor
    size_divisor: int = 32  # image_size must be a multiple of this (the detector's largest stride), >= 1
    letterbox: bool = True  # keep the aspect ratio and pad (True) or stretch to image_size (False)
    pad_value: int = 114  # grey level of the letterbox padding, [0, 255]
    min_visibility: float = 0.25  # keep bag boxes whose visible fraction is >= this, [0, 1]
    min_box_area: float = 16.0  # keep boxes of at least this area in network-input pixels^2, >= 0
    augment: bool = False  # switch for the augmentations below (training sets only)
    hflip_prob: float = 0.5  # probability of a horizontal flip, [0, 1]
    hsv_h: float = 0.015  # largest hue shift as a fraction of the hue circle, [0, 0.5]
    hsv_s: float = 0.7  # saturation gain in 1 +- hsv_s, [0, 1]
    hsv_v: float = 0.4  # value gain in 1 +- hsv_v, [0, 1]
    seed: int = 0  # augmentation seed, >= 0: sample i of epoch e draws from RNG(seed, e, i)
    cache_ram_mb: float = 2048.0  # decoded bag images kept in RAM up to this size, MiB (>= 0); the rest spill to disk
    cache_dir: str = ""  # folder for spilled images (memory-mapped, deleted with the dataset); "" = system temp

    def __post_init__(self) -> None:
        size = self.image_size
        if (not isinstance(size, tuple) or len(size) != 2
                or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in size)):
            raise ValueError(f"image_size must be a tuple (H, W) of positive integers, got {size!r}")
        if isinstance(self.size_divisor, bool) or not isinstance(self.size_divisor, int) or self.size_divisor < 1:
            raise ValueError(f"size_divisor must be an integer >= 1, got {self.size_divisor!r}")
        if any(v % self.size_divisor for v in size):
            raise ValueError(f"image_size {size} must be multiples of size_divisor={self.size_divisor}")
        if isinstance(self.pad_value, bool) or not isinstance(self.pad_value, int) or not 0 <= self.pad_value <= 255:
            raise ValueError(f"pad_value must be an integer in [0, 255], got {self.pad_value!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ValueError(f"seed must be an integer >= 0, got {self.seed!r}")
        for name, lo, hi in (("min_visibility", 0, 1), ("min_box_area", 0, float("inf")), ("hflip_prob", 0, 1),
                             ("hsv_h", 0, 0.5), ("hsv_s", 0, 1), ("hsv_v", 0, 1),
                             ("cache_ram_mb", 0, float("inf"))):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not lo <= v <= hi or v != v:
                raise ValueError(f"{name} must be a number in [{lo}, {hi}], got {v!r}")


@dataclass(frozen=True)
class SampleMeta:
    """Where a sample came from. Bags: ``camera_id`` and ``stamp_ns``; COCO: ``image_id`` (others None)."""

    index: int
    source: str
    letterbox: Letterbox
    flipped: bool = False
    camera_id: int | None = None
    stamp_ns: int | None = None
    image_id: int | None = None


@dataclass(frozen=True, eq=False)
class DetectionSample:
    """One sample: ``image`` (3, H, W) uint8 RGB tensor, ``boxes`` (K, 4) float32 xyxy network-input pixels,
    ``labels`` (K,) int64."""

    image: torch.Tensor
    boxes: torch.Tensor
    labels: torch.Tensor
    meta: SampleMeta


class DetectionBatch(NamedTuple):
    """``images`` (B, 3, H, W) float32 RGB in [0, 1] (uint8 0..255 with ``as_uint8``); ``targets`` (T, 6) float32 rows
    ``[batch_idx, label, x1, y1, x2, y2]`` in network-input pixels, sorted by batch_idx (the flat form a YOLO-style
    task-aligned assigner pads per image); ``meta`` one ``SampleMeta`` per image."""

    images: torch.Tensor
    targets: torch.Tensor
    meta: tuple[SampleMeta, ...]


def collate_detections(samples: Sequence[DetectionSample], *, as_uint8: bool = False) -> DetectionBatch:
    """Stack ``DetectionSample``s into a ``DetectionBatch`` (use as a DataLoader ``collate_fn``).

    Pixels become float32 ``value / 255`` (computed as ``value * float32(1 / 255)``, within one ulp of the
    division). The conversion runs in NumPy (about 3x faster than torch's on CPU) into a batch that, inside a
    DataLoader worker, is allocated in shared memory so that handing it over copies nothing (as ``default_collate``
    does). At 640x480 the float batch costs ~1.5 ms per image in page faults and memory traffic; with
    ``as_uint8=True`` (``functools.partial(collate_detections, as_uint8=True)``, what training uses) ``images`` stay
    uint8 (4x less to move to the GPU) and :func:`images_to_float` converts them where they are, to the same numbers.
    """
    if not samples:
        raise ValueError("collate_detections needs at least one sample")
    shape = tuple(samples[0].image.shape)
    if any(tuple(s.image.shape) != shape for s in samples):
        sizes = sorted({tuple(s.image.shape) for s in samples})
        raise ValueError(f"collate_detections needs equally sized images, got shapes {sizes}")
    if as_uint8:
        images = torch.stack([s.image for s in samples])  # (B, 3, H, W) uint8
    else:
        images = _float_batch((len(samples), *shape))  # (B, 3, H, W)
        out = images.numpy()
        for i, s in enumerate(samples):
            np.multiply(s.image.numpy(), np.float32(1 / 255), out=out[i], dtype=np.float32)
    rows = [torch.cat([torch.full((len(s.labels), 1), float(i)), s.labels[:, None].float(), s.boxes.float()], 1)
            for i, s in enumerate(samples)]
    return DetectionBatch(images, torch.cat(rows, 0).reshape(-1, 6), tuple(s.meta for s in samples))


_INV255 = float(np.float32(1 / 255))  # the collation's factor, exactly representable in float32


def images_to_float(images: torch.Tensor) -> torch.Tensor:
    """``DetectionBatch.images`` as the model takes them: uint8 (``as_uint8`` collation) -> float32
    ``value * float32(1 / 255)`` on the tensor's device, bit-identical to the float collation; float passes through."""
    if images.dtype == torch.uint8:
        return images.float().mul_(_INV255)
    return images


def _float_batch(shape: tuple[int, ...]) -> torch.Tensor:
    if torch.utils.data.get_worker_info() is not None:
        try:  # the private allocation default_collate uses; fall back to a plain tensor if it ever goes away
            proto = torch.empty(0, dtype=torch.float32)
            storage = proto._typed_storage()._new_shared(int(np.prod(shape)), device="cpu")
            return proto.new(storage).resize_(shape)
        except (AttributeError, TypeError, RuntimeError):
            pass
    return torch.empty(shape, dtype=torch.float32)


def split_targets(targets: torch.Tensor, batch_size: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """(T, 6) batch targets -> per image ``(boxes (K, 4) float32, labels (K,) int64)``, the form ``det_metrics``
    takes as ground truth."""
    t = targets.detach().cpu().numpy()
    out = []
    for i in range(batch_size):
        rows = t[t[:, 0] == i]
        out.append((rows[:, 2:6].astype(np.float32), rows[:, 1].astype(np.int64)))
    return out


class _ImageStore:
    """Append-only store of equally sized uint8 images in chunk arrays: RAM up to a budget, then memory-mapped files.

    Pickling (DataLoader workers started with spawn) sends RAM chunks by value and memory-mapped chunks by file
    name; only the creating process deletes the spill folder.
    """

    CHUNK = 64  # images per chunk: large enough to keep the object count low, small enough to bound over-allocation

    def __init__(self, shape: tuple[int, ...], ram_bytes: float, spill_dir: str) -> None:
        self.shape = shape
        self.ram_bytes = ram_bytes
        self.spill_dir = spill_dir
        self.chunks: list[np.ndarray] = []
        self.size = 0
        self._tmp: str | None = None

    def append(self, image: np.ndarray) -> int:
        k, j = divmod(self.size, self.CHUNK)
        if k == len(self.chunks):
            nbytes = self.CHUNK * int(np.prod(self.shape))
            if (k + 1) * nbytes <= self.ram_bytes:
                self.chunks.append(np.empty((self.CHUNK, *self.shape), np.uint8))
            else:
                if self._tmp is None:
                    self._tmp = tempfile.mkdtemp(prefix="depthtracker-images-", dir=self.spill_dir or None)
                    weakref.finalize(self, _remove_tree, self._tmp)
                path = os.path.join(self._tmp, f"chunk{k:06d}.u8")
                self.chunks.append(np.memmap(path, np.uint8, "w+", shape=(self.CHUNK, *self.shape)))
        self.chunks[k][j] = image
        self.size += 1
        return self.size - 1

    def __getitem__(self, i: int) -> np.ndarray:
        k, j = divmod(i, self.CHUNK)
        return self.chunks[k][j]

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["chunks"] = [("memmap", c.filename) if isinstance(c, np.memmap) else c for c in self.chunks]
        state["_tmp"] = None  # the copy never deletes the spill folder
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        shape = (self.CHUNK, *state["shape"])
        state["chunks"] = [np.memmap(c[1], np.uint8, "r", shape=shape) if isinstance(c, tuple) else c
                           for c in state["chunks"]]
        self.__dict__.update(state)


def _remove_tree(path: str) -> None:
    import shutil

    shutil.rmtree(path, ignore_errors=True)


class DetectionDataset(Dataset):
    """Detection samples from bags and COCO folders (see the module docstring for the rules).

    Args:
        bags: depthtracker bag folders (or files) with ``objects_gt`` ground truth.
        coco: ``(annotations_json, image_dir)`` pairs.
        config: the ``DetectionDataConfig``.
        progress: show a progress bar while bags are read.

    All sources must share the class names (bags: ``depthtracker.class_names`` of their metadata; COCO: category
    names in id order); ``class_names`` and ``num_classes`` describe them.
    """

    def __init__(self, bags: Sequence[str | os.PathLike[str]] = (),
                 coco: Sequence[tuple[str | os.PathLike[str], str | os.PathLike[str]]] = (),
                 config: DetectionDataConfig | None = None, progress: bool = False) -> None:
        self.config = config if config is not None else DetectionDataConfig()
        if not isinstance(self.config, DetectionDataConfig):
            raise ValueError(f"config must be a DetectionDataConfig, got {type(self.config).__name__}")
        if isinstance(bags, (str, os.PathLike)) or isinstance(coco, (str, os.PathLike)):
            raise ValueError("bags and coco take lists (of paths / of (json, image_dir) pairs), not a single path")
        if not bags and not coco:
            raise ValueError("DetectionDataset needs at least one bag or COCO folder")
        self.class_names: tuple[str, ...] | None = None
        self.epoch = 0
        H, W = self.config.image_size
        self._store = _ImageStore((H, W, 3), self.config.cache_ram_mb * 2**20, self.config.cache_dir)
        self._sources: list[dict[str, Any]] = []
        self._coco_records: list[Any] = []
        self._letterboxes: list[Letterbox] = []  # one per distinct source size, shared by reference
        # One row per sample: (kind 0 = bag image in the store | 1 = COCO record, index into the store or the
        # records, camera id, stamp or COCO id, letterbox id, boxes, labels); kept below as flat arrays.
        rows: list[tuple[int, int, int, int, int, np.ndarray, np.ndarray]] = []
        for bag in bags:
            for cam, stamp, lb, b, lab in self._read_bag(Path(bag), progress):
                rows.append((0, self._store.size - 1, cam, stamp, self._letterbox_id(lb), b, lab))
        for ann, image_dir in coco:
            data = read_coco(ann, image_dir)
            self._set_classes(data.class_names, str(ann))
            self._sources.append({"kind": "coco", "path": str(ann), "image_dir": str(image_dir),
                                  "images": len(data.records)})
            for rec in data.records:
                lb = Letterbox.fit((rec.height, rec.width), (H, W), self.config.letterbox)
                keep = ~rec.iscrowd
                b, lab = self._filter(lb.boxes_to_input(rec.boxes[keep]), rec.labels[keep])
                rows.append((1, len(self._coco_records), -1, rec.image_id, self._letterbox_id(lb), b, lab))
                self._coco_records.append(rec)
        kinds, refs, cams, stamps, lb_index, boxes, labels = zip(*rows) if rows else ((),) * 7
        self._kind = np.array(kinds, np.int8)
        self._ref = np.array(refs, np.int64)
        self._cam = np.array(cams, np.int64)
        self._stamp = np.array(stamps, np.int64)
        self._lb = np.array(lb_index, np.int32)
        self._offsets = np.cumsum([0] + [len(x) for x in labels]).astype(np.int64)
        self._boxes = np.concatenate([np.zeros((0, 4), np.float32), *boxes]).astype(np.float32)
        self._labels = np.concatenate([np.zeros(0, np.int64), *labels]).astype(np.int64)
        self._source_of = np.array([s for s, src in enumerate(self._sources) for _ in range(src["images"])], np.int32)
        if len(self) == 0:
            raise ValueError(f"DetectionDataset found no images with ground truth in bags={list(map(str, bags))} "
                             f"coco={[str(a) for a, _ in coco]}")

    # -- building -------------------------------------------------------------------------------------------
    def _letterbox_id(self, lb: Letterbox) -> int:
        for i, have in enumerate(self._letterboxes):
            if have == lb:
                return i
        self._letterboxes.append(lb)
        return len(self._letterboxes) - 1

    def _set_classes(self, names: tuple[str, ...], source: str) -> None:
        if not names:
            raise ValueError(f"{source} declares no class names")
        if self.class_names is None:
            self.class_names = tuple(names)
        elif tuple(names) != self.class_names:
            raise ValueError(f"{source} has classes {list(names)} but earlier sources have {list(self.class_names)}; "
                             "all sources of one dataset must share their class names")

    def _filter(self, boxes: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        area = (boxes[:, 2] - boxes[:, 0]).clip(0) * (boxes[:, 3] - boxes[:, 1]).clip(0)
        keep = area >= max(self.config.min_box_area, 1e-9)  # zero-area boxes never train anything
        return boxes[keep].astype(np.float32), labels[keep].astype(np.int64)

    def _read_bag(self, path: Path, progress: bool):
        """Yield ``(camera_id, stamp_ns, letterbox, boxes, labels)`` per image, storing each letterboxed image."""
        H, W = self.config.image_size
        with BagReader(path) as reader:
            self._set_classes(reader.class_names, str(path))
            topics = reader.topics
            cams = [i for i in reader.camera_ids if f"/cam{i}/objects_gt" in topics]
            if not cams:
                raise BagError(f"bag {path} has no /camN/objects_gt ground truth; a detection dataset needs it")
            want = [f"/cam{i}/{kind}" for i in cams for kind in ("image_raw", "objects_gt")]
            pending: dict[tuple[int, int], dict[str, Any]] = {}
            count, skipped = 0, 0
            bar = None
            if progress:
                from tqdm import tqdm

                bar = tqdm(total=reader.num_sets * len(cams), desc=f"index {path.name}", unit="img", leave=False)
            for topic, _, msg in reader.messages(want):
                cam = int(topic[4:topic.index("/", 1)])
                stamp = stamp_ns_of(msg.header)
                parts = pending.setdefault((stamp, cam), {})
                parts[topic.rsplit("/", 1)[1]] = msg
                if len(parts) < 2:
                    continue
                del pending[(stamp, cam)]
                image = image_to_array(parts["image_raw"], f"{path} {topic}")
                if image.ndim != 3 or image.dtype != np.uint8:
                    raise BagError(f"bag {path} /cam{cam}/image_raw has {parts['image_raw'].encoding} images; "
                                   "detection training needs rgb8")
                if parts["image_raw"].encoding == "bgr8":
                    image = np.ascontiguousarray(image[..., ::-1])
                lb = Letterbox.fit(image.shape[:2], (H, W), self.config.letterbox)
                self._store.append(lb.apply(image, self.config.pad_value))
                tracks = parts["objects_gt"].tracks
                vis = np.array([t.visibility for t in tracks], np.float32)
                keep = ~(vis < self.config.min_visibility)  # NaN visibility (unknown) is kept
                b = np.array([t.box for t in tracks], np.float32).reshape(-1, 4)[keep]
                lab = np.array([t.class_id for t in tracks], np.int64)[keep]
                count += 1
                if bar is not None:
                    bar.update()
                yield (cam, stamp, lb, *self._filter(lb.boxes_to_input(b), lab))
            if bar is not None:
                bar.close()
            skipped = len(pending)  # images without ground truth at their stamp (or the reverse)
        self._sources.append({"kind": "bag", "path": str(path), "images": count, "skipped_unpaired": skipped,
                              "cameras": cams, "source": reader.source})

    # -- access ---------------------------------------------------------------------------------------------
    @property
    def num_classes(self) -> int:
        return len(self.class_names or ())

    def __len__(self) -> int:
        return int(self._kind.shape[0])

    def set_epoch(self, epoch: int) -> None:
        """Select the augmentation draws of ``epoch`` (the trainer calls this before each epoch)."""
        self.epoch = int(epoch)

    def ground_truth(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """Boxes (K, 4) float32 in network-input pixels and labels (K,) int64 of a sample, without augmentation."""
        lo, hi = self._offsets[index], self._offsets[index + 1]
        return self._boxes[lo:hi].copy(), self._labels[lo:hi].copy()

    def manifest(self) -> dict[str, Any]:
        """JSON-able description of the data (for the checkpoint sidecar): sources, counts, classes, config."""
        import dataclasses

        return {"sources": self._sources, "samples": len(self), "boxes": int(self._labels.shape[0]),
                "class_names": list(self.class_names or ()), "config": dataclasses.asdict(self.config)}

    def _image(self, index: int) -> np.ndarray:
        if self._kind[index] == 0:
            return self._store[int(self._ref[index])]
        rec = self._coco_records[int(self._ref[index])]
        image = cv2.imread(str(rec.path), cv2.IMREAD_COLOR)
        if image is None:
            raise ValueError(f"cannot read image {rec.path} (COCO image id {rec.image_id}): missing or not an image")
        if image.shape[:2] != (rec.height, rec.width):
            raise ValueError(f"image {rec.path} is {image.shape[1]}x{image.shape[0]} but its COCO file declares "
                             f"{rec.width}x{rec.height}")
        lb = self._letterboxes[int(self._lb[index])]
        return lb.apply(cv2.cvtColor(image, cv2.COLOR_BGR2RGB), self.config.pad_value)

    def __getitem__(self, index: int) -> DetectionSample:
        if not -len(self) <= index < len(self):
            raise IndexError(f"sample index {index} out of range for {len(self)} samples")
        index = int(index) % len(self)
        image = self._image(index)
        boxes, labels = self.ground_truth(index)
        flipped = False
        cfg = self.config
        if cfg.augment:
            rng = np.random.default_rng((cfg.seed, self.epoch, index))
            if rng.random() < cfg.hflip_prob:
                flipped = True
                image = image[:, ::-1]
                W = image.shape[1]
                boxes = np.stack([W - boxes[:, 2], boxes[:, 1], W - boxes[:, 0], boxes[:, 3]], 1).astype(np.float32)
            if cfg.hsv_h or cfg.hsv_s or cfg.hsv_v:
                image = hsv_jitter(image, rng, cfg.hsv_h, cfg.hsv_s, cfg.hsv_v)
        tensor = torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))  # (H, W, 3) -> (3, H, W)
        kind = self._kind[index]
        meta = SampleMeta(index=index, source=self._sources[self._source_of[index]]["path"],
                          letterbox=self._letterboxes[int(self._lb[index])], flipped=flipped,
                          camera_id=int(self._cam[index]) if kind == 0 else None,
                          stamp_ns=int(self._stamp[index]) if kind == 0 else None,
                          image_id=int(self._stamp[index]) if kind == 1 else None)
        return DetectionSample(tensor, torch.from_numpy(boxes.reshape(-1, 4)), torch.from_numpy(labels), meta)
