"""COCO instances reader: boxes, contiguous labels, crowd flags, and errors that name the file and the problem."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
from depthtracker.data.formats import read_coco


def _write_folder(tmp_path, **overrides):
    images_dir = tmp_path / "images"
    images_dir.mkdir(exist_ok=True)
    sizes = [(40, 30), (64, 48), (32, 32)]
    for i, (w, h) in enumerate(sizes):
        img = np.full((h, w, 3), 40 * i, np.uint8)
        cv2.imwrite(str(images_dir / f"im{i}.png"), img)
    data = {
        "images": [{"id": 10 + i, "file_name": f"im{i}.png", "width": w, "height": h}
                   for i, (w, h) in enumerate(sizes)],
        "categories": [{"id": 7, "name": "cat"}, {"id": 3, "name": "dog"}, {"id": 90, "name": "bird"}],
        "annotations": [
            {"id": 1, "image_id": 10, "category_id": 7, "bbox": [1, 2, 10, 5], "iscrowd": 0},
            {"id": 2, "image_id": 10, "category_id": 90, "bbox": [0.5, 0, 4, 4.5], "iscrowd": 1},
            {"id": 3, "image_id": 11, "category_id": 3, "bbox": [10, 10, 20, 30]},
            {"id": 4, "image_id": 11, "category_id": 3, "bbox": [10, 10, 0, 30]},  # degenerate: dropped
        ],
    }
    data.update(overrides)
    path = tmp_path / "instances.json"
    path.write_text(json.dumps(data))
    return path, images_dir


def test_reads_boxes_labels_and_crowd(tmp_path):
    path, images = _write_folder(tmp_path)
    ds = read_coco(path, images)
    assert ds.class_names == ("dog", "cat", "bird") and ds.category_ids == (3, 7, 90)
    assert [r.image_id for r in ds.records] == [10, 11, 12]
    r0, r1, r2 = ds.records
    assert r0.path == images / "im0.png" and (r0.width, r0.height) == (40, 30) and r0.path.is_file()
    np.testing.assert_array_equal(r0.boxes, np.array([[1, 2, 11, 7], [0.5, 0, 4.5, 4.5]], np.float32))
    assert r0.boxes.dtype == np.float32 and r0.labels.tolist() == [1, 2] and r0.iscrowd.tolist() == [False, True]
    np.testing.assert_array_equal(r1.boxes, [[10, 10, 30, 40]])
    assert r1.labels.tolist() == [0]
    assert r2.boxes.shape == (0, 4) and r2.labels.dtype == np.int64


@pytest.mark.parametrize("override, message", [
    ({"annotations": [{"id": 5, "image_id": 99, "category_id": 7, "bbox": [0, 0, 1, 1]}]},
     r"annotations\[0\] \(id 5\) refers to unknown image id 99"),
    ({"annotations": [{"id": 5, "image_id": 10, "category_id": 4, "bbox": [0, 0, 1, 1]}]},
     r"refers to unknown category id 4"),
    ({"annotations": [{"id": 5, "image_id": 10, "category_id": 7, "bbox": [0, 0, 1]}]}, r"malformed bbox"),
    ({"images": [{"id": 1, "file_name": "a.png", "width": -3, "height": 4}]}, r"non-positive size -3x4"),
    ({"images": [{"id": 1, "file_name": "a.png", "width": 3}]}, r"no integer 'height'"),
    ({"categories": "x"}, r"'categories' must be a list"),
])
def test_bad_content_names_file_and_problem(tmp_path, override, message):
    path, images = _write_folder(tmp_path, **override)
    with pytest.raises(ValueError, match=message) as err:
        read_coco(path, images)
    assert str(path) in str(err.value)


def test_missing_and_invalid_files(tmp_path):
    with pytest.raises(ValueError, match="nope.json does not exist"):
        read_coco(tmp_path / "nope.json", tmp_path)
    bad = tmp_path / "bad.json"
    bad.write_text("{\"images\": [")
    with pytest.raises(ValueError, match="bad.json is not valid JSON"):
        read_coco(bad, tmp_path)
