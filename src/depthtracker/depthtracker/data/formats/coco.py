"""COCO "instances" detection files: a JSON of images, categories and box annotations beside an image folder.

Usage::

    data = read_coco("annotations/instances_val2017.json", "val2017/")
    data.class_names            # ('person', 'bicycle', ...): label i is the i-th category by ascending id
    rec = data.records[0]        # CocoImage: path, width, height, boxes (K,4) float32 xyxy px, labels, iscrowd

Conventions: COCO stores boxes as ``[x, y, w, h]`` with the top-left corner in pixels (no +1, as pycocotools since
2.0); they become ``[x1, y1, x2, y2]`` here. Category ids (sparse, e.g. 1..90) map to contiguous labels 0..C-1 in
ascending id order. Annotations of zero or negative width or height are dropped (COCO has a few); crowd regions are
kept with ``iscrowd = True`` so that a trainer can drop them and an evaluator can ignore them. Every problem raises a
``ValueError`` that names the file and the offending entry.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["CocoImage", "CocoDataset", "read_coco"]


@dataclass(frozen=True, eq=False)
class CocoImage:
    """One image of a COCO file and its annotations.

    Attributes:
        image_id: the COCO image id.
        path: the image file (``image_dir / file_name``); existence is checked when the file is read.
        width, height: image size in pixels, as the JSON declares it.
        boxes: (K, 4) float32 ``[x1, y1, x2, y2]`` pixels.
        labels: (K,) int64 contiguous labels in ``[0, C)``.
        iscrowd: (K,) bool, true for crowd regions.
    """

    image_id: int
    path: Path
    width: int
    height: int
    boxes: np.ndarray
    labels: np.ndarray
    iscrowd: np.ndarray


@dataclass(frozen=True, eq=False)
class CocoDataset:
    """A parsed COCO file: ``records`` in the JSON's image order, ``class_names`` indexed by label,
    ``category_ids[label]`` the COCO id of each label."""

    source: Path
    image_dir: Path
    records: list[CocoImage]
    class_names: tuple[str, ...]
    category_ids: tuple[int, ...]


def _int_field(path: Path, where: str, entry: dict[str, Any], key: str, minimum: int | None = None) -> int:
    value = entry.get(key)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (isinstance(value, float)
                                                                           and not value.is_integer()):
        raise ValueError(f"{path}: {where} has no integer '{key}' (got {value!r})")
    if minimum is not None and value < minimum:
        raise ValueError(f"{path}: {where} has {key}={value}, expected >= {minimum}")
    return int(value)


def _list(path: Path, data: dict[str, Any], key: str, required: bool = True) -> list[Any]:
    value = data.get(key, None if required else [])
    if not isinstance(value, list):
        raise ValueError(f"{path}: top-level '{key}' must be a list, got {type(value).__name__}")
    if not all(isinstance(v, dict) for v in value):
        raise ValueError(f"{path}: every entry of '{key}' must be a JSON object")
    return value


def read_coco(annotations: str | os.PathLike[str], image_dir: str | os.PathLike[str]) -> CocoDataset:
    """Read a COCO instances JSON; image paths are ``image_dir / file_name``.

    Raises:
        ValueError: missing or unreadable file, invalid JSON, missing top-level lists, an image with a non-positive
            size or a duplicate id, an annotation naming an unknown image or category, a malformed bbox.
    """
    path = Path(annotations)
    if not path.is_file():
        raise ValueError(f"COCO annotation file {path} does not exist")
    try:
        data = json.loads(path.read_text())
    except OSError as exc:
        raise ValueError(f"cannot read COCO annotation file {path}: {exc.strerror}") from exc
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"COCO annotation file {path} is not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a JSON object with 'images', 'annotations', 'categories'")
    images = _list(path, data, "images")
    categories = _list(path, data, "categories")
    anns = _list(path, data, "annotations", required=False)
    image_dir = Path(image_dir)

    cat_names: dict[int, str] = {}
    for i, c in enumerate(categories):
        cid = _int_field(path, f"categories[{i}]", c, "id")
        if cid in cat_names:
            raise ValueError(f"{path}: categories[{i}] repeats category id {cid}")
        cat_names[cid] = str(c.get("name", cid))
    cat_ids = tuple(sorted(cat_names))
    label_of = {cid: k for k, cid in enumerate(cat_ids)}

    info: dict[int, tuple[str, int, int]] = {}
    for i, im in enumerate(images):
        iid = _int_field(path, f"images[{i}]", im, "id")
        w = _int_field(path, f"images[{i}] (id {iid})", im, "width")
        h = _int_field(path, f"images[{i}] (id {iid})", im, "height")
        if w <= 0 or h <= 0:
            raise ValueError(f"{path}: images[{i}] (id {iid}) has a non-positive size {w}x{h}")
        name = im.get("file_name")
        if not isinstance(name, str) or not name:
            raise ValueError(f"{path}: images[{i}] (id {iid}) has no 'file_name'")
        if iid in info:
            raise ValueError(f"{path}: images[{i}] repeats image id {iid}")
        info[iid] = (name, w, h)

    per_image: dict[int, list[tuple[list[float], int, bool]]] = {iid: [] for iid in info}
    for i, a in enumerate(anns):
        where = f"annotations[{i}] (id {a.get('id')})"
        iid = _int_field(path, where, a, "image_id")
        if iid not in info:
            raise ValueError(f"{path}: {where} refers to unknown image id {iid}")
        cid = _int_field(path, where, a, "category_id")
        if cid not in label_of:
            raise ValueError(f"{path}: {where} refers to unknown category id {cid}; known: {list(cat_ids)}")
        bbox = a.get("bbox")
        if (not isinstance(bbox, list) or len(bbox) != 4
                or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in bbox)
                or not np.isfinite(bbox).all()):
            raise ValueError(f"{path}: {where} has a malformed bbox {bbox!r}; expected [x, y, w, h] numbers")
        x, y, w, h = (float(v) for v in bbox)
        if w <= 0 or h <= 0:
            continue  # degenerate boxes carry no training signal; COCO itself has a handful
        per_image[iid].append(([x, y, x + w, y + h], label_of[cid], bool(a.get("iscrowd", 0))))

    records = []
    for iid, (name, w, h) in info.items():
        objs = per_image[iid]
        records.append(CocoImage(
            image_id=iid,
            path=image_dir / name,
            width=w,
            height=h,
            boxes=np.array([o[0] for o in objs], np.float32).reshape(-1, 4),
            labels=np.array([o[1] for o in objs], np.int64),
            iscrowd=np.array([o[2] for o in objs], np.bool_),
        ))
    return CocoDataset(path, image_dir, records, tuple(cat_names[c] for c in cat_ids), cat_ids)
