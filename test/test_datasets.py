"""Detection datasets over bags and COCO folders: ground truth, letterbox, augmentation, collation, caching."""

from __future__ import annotations

import json
import pickle

import cv2
import numpy as np
import pytest
import torch
from depthtracker.data.datasets import (
    DetectionDataConfig,
    DetectionDataset,
    Letterbox,
    collate_detections,
    images_to_float,
    split_targets,
)
from depthtracker.data.synth import SynthConfig, SynthWorld

SMALL = SynthConfig(cameras=2, width=96, height=72, fps=10.0, seconds=0.4, seed=3, num_objects=10)


@pytest.fixture(scope="module")
def bag(make_synth_bag):
    return make_synth_bag(SMALL)


@pytest.fixture(scope="module")
def world():
    return SynthWorld(SMALL)


def test_bag_samples_match_the_world(bag, world):
    cfg = DetectionDataConfig(image_size=(64, 64), min_visibility=0.5, min_box_area=20.0)
    ds = DetectionDataset(bags=[bag], config=cfg)
    assert len(ds) == world.num_frames * 2 and ds.class_names == world.class_names and ds.num_classes == 3
    lb = Letterbox.fit((72, 96), (64, 64))
    assert (lb.scale_x, lb.scale_y, lb.pad_x, lb.pad_y) == (64 / 96, 48 / 72, 0, 8)
    total, dropped = 0, 0
    for i in range(len(ds)):
        s = ds[i]
        w = world.render(i // 2)
        cam = i % 2  # samples are in bag order: per set, cameras in order
        assert s.meta.camera_id == cam and s.meta.stamp_ns == w.stamp_ns and s.meta.letterbox == lb
        assert s.image.shape == (3, 64, 64) and s.image.dtype == torch.uint8
        np.testing.assert_array_equal(s.image.permute(1, 2, 0).numpy(), lb.apply(w.frames[cam].image))
        ann = w.annotations[cam]
        boxes = lb.boxes_to_input(ann.boxes)
        area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
        keep = (ann.visibility >= 0.5) & (area >= 20.0)
        np.testing.assert_allclose(s.boxes.numpy(), boxes[keep], rtol=0, atol=1e-5)
        assert s.labels.tolist() == ann.labels[keep].tolist()
        total += int(keep.sum())
        dropped += int((~keep).sum())
    assert total > 0 and dropped > 0 and ds.manifest()["boxes"] == total
    assert ds.manifest()["sources"][0]["source"]["synth"]["seed"] == 3


def test_filters_and_plain_resize(bag):
    loose = DetectionDataset(bags=[bag], config=DetectionDataConfig(image_size=(64, 64), min_visibility=0.0,
                                                                    min_box_area=0.0))
    strict = DetectionDataset(bags=[bag], config=DetectionDataConfig(image_size=(64, 64), min_visibility=0.9,
                                                                     min_box_area=30.0))
    assert strict.manifest()["boxes"] < loose.manifest()["boxes"]
    stretched = DetectionDataset(bags=[bag], config=DetectionDataConfig(image_size=(64, 64), letterbox=False))
    lb = stretched[0].meta.letterbox
    assert (lb.scale_x, lb.scale_y, lb.pad_x, lb.pad_y) == (64 / 96, 64 / 72, 0, 0)
    boxes = np.array([[3.0, 4.0, 50.5, 70.0]], np.float32)
    np.testing.assert_allclose(lb.boxes_to_source(lb.boxes_to_input(boxes)), boxes, atol=1e-4)


def test_collate_gives_yolo_targets(bag):
    ds = DetectionDataset(bags=[bag], config=DetectionDataConfig(image_size=(64, 96), min_box_area=0.0))
    samples = [ds[i] for i in range(4)]
    batch = collate_detections(samples)
    assert batch.images.shape == (4, 3, 64, 96) and batch.images.dtype == torch.float32
    assert 0.0 <= batch.images.min() and batch.images.max() <= 1.0
    torch.testing.assert_close(batch.images[1], samples[1].image.float() / 255)
    assert batch.targets.shape == (sum(len(s.labels) for s in samples), 6)
    for i, (boxes, labels) in enumerate(split_targets(batch.targets, 4)):
        np.testing.assert_array_equal(boxes, samples[i].boxes.numpy())
        np.testing.assert_array_equal(labels, samples[i].labels.numpy())
    assert [m.index for m in batch.meta] == [0, 1, 2, 3]
    raw = collate_detections(samples, as_uint8=True)
    assert raw.images.dtype == torch.uint8 and torch.equal(raw.images[2], samples[2].image)
    assert torch.equal(raw.targets, batch.targets)
    # What training does (uint8 batches, converted on the device): the very numbers of the float collation.
    assert torch.equal(images_to_float(raw.images), batch.images) and images_to_float(batch.images) is batch.images
    every = torch.arange(256, dtype=torch.uint8).reshape(1, 1, 16, 16)
    want = np.multiply(every.numpy(), np.float32(1 / 255), dtype=np.float32)
    np.testing.assert_array_equal(images_to_float(every).numpy(), want)
    loader = torch.utils.data.DataLoader(ds, batch_size=3, collate_fn=collate_detections)
    assert [b.images.shape[0] for b in loader] == [3, 3, 2]
    workers = torch.utils.data.DataLoader(ds, batch_size=3, collate_fn=collate_detections, num_workers=1)
    for got, want in zip(workers, loader):  # shared-memory batches built in a worker process
        assert torch.equal(got.images, want.images) and torch.equal(got.targets, want.targets)


def test_augmentation_is_seeded_and_flips_boxes(bag):
    base = DetectionDataConfig(image_size=(64, 96), min_box_area=0.0)
    plain = DetectionDataset(bags=[bag], config=base)
    flip = DetectionDataset(bags=[bag], config=DetectionDataConfig(**{**base.__dict__, "augment": True,
                                                                      "hflip_prob": 1.0, "hsv_h": 0.0,
                                                                      "hsv_s": 0.0, "hsv_v": 0.0}))
    a, b = plain[2], flip[2]
    assert b.meta.flipped and not a.meta.flipped
    torch.testing.assert_close(b.image, a.image.flip(-1))
    want = a.boxes.clone()
    want[:, 0], want[:, 2] = 96 - a.boxes[:, 2], 96 - a.boxes[:, 0]
    torch.testing.assert_close(b.boxes, want)
    jitter = DetectionDataset(bags=[bag], config=DetectionDataConfig(**{**base.__dict__, "augment": True}))
    first = jitter[3].image.clone()
    assert torch.equal(jitter[3].image, first)  # same (seed, epoch, index): same draw
    jitter.set_epoch(1)
    assert not torch.equal(jitter[3].image, first)


def test_spilled_cache_survives_pickling(bag):
    cfg = DetectionDataConfig(image_size=(64, 96), cache_ram_mb=0.0)
    ds = DetectionDataset(bags=[bag], config=cfg)
    assert all(isinstance(c, np.memmap) for c in ds._store.chunks)
    copy = pickle.loads(pickle.dumps(ds))  # what a spawned DataLoader worker receives
    assert len(pickle.dumps(ds)) < 64 * 96 * 3 * len(ds)  # images travel by file name, not by value
    assert torch.equal(copy[5].image, ds[5].image) and torch.equal(copy[5].boxes, ds[5].boxes)


def _coco_folder(tmp_path, names=("box", "sphere", "cylinder")):
    (tmp_path / "img").mkdir()
    for i, (w, h) in enumerate([(128, 64), (64, 64), (50, 100)]):
        cv2.imwrite(str(tmp_path / "img" / f"{i}.png"), np.full((h, w, 3), (10, 20, 30 * i), np.uint8))
    data = {"images": [{"id": i + 1, "file_name": f"{i}.png", "width": w, "height": h}
                       for i, (w, h) in enumerate([(128, 64), (64, 64), (50, 100)])],
            "categories": [{"id": k + 1, "name": n} for k, n in enumerate(names)],
            "annotations": [{"id": 1, "image_id": 1, "category_id": 2, "bbox": [8, 4, 40, 20]},
                            {"id": 2, "image_id": 1, "category_id": 1, "bbox": [0, 0, 60, 60], "iscrowd": 1},
                            {"id": 3, "image_id": 3, "category_id": 3, "bbox": [5, 10, 20, 40]}]}
    (tmp_path / "ann.json").write_text(json.dumps(data))
    return tmp_path / "ann.json", tmp_path / "img"


def test_coco_folder_and_mixed_sources(tmp_path, bag):
    ann, img = _coco_folder(tmp_path)
    ds = DetectionDataset(bags=[bag], coco=[(ann, img)], config=DetectionDataConfig(image_size=(64, 64),
                                                                                     min_box_area=0.0))
    n_bag = 2 * SMALL.num_frames
    assert len(ds) == n_bag + 3
    s0 = ds[n_bag]
    assert s0.meta.image_id == 1 and s0.meta.camera_id is None
    np.testing.assert_allclose(s0.boxes.numpy(), [[4, 18, 24, 28]])  # 128x64 -> 64x32, padded 16 rows on top
    assert s0.labels.tolist() == [1]  # the crowd box is dropped
    rgb = s0.image.permute(1, 2, 0).numpy()
    assert rgb[0, 0].tolist() == [114] * 3 and rgb[32, 32].tolist() == [0, 20, 10]  # BGR file -> RGB
    # 50x100 -> 32x64 (scale 0.64), padded 16 columns on the left
    np.testing.assert_allclose(ds[n_bag + 2].boxes.numpy(), [[5 * 0.64 + 16, 6.4, 25 * 0.64 + 16, 32.0]], atol=1e-5)
    (tmp_path / "x").mkdir()
    other, img2 = _coco_folder(tmp_path / "x", ("a", "b", "c"))
    with pytest.raises(ValueError, match="all sources of one dataset must share their class names"):
        DetectionDataset(bags=[bag], coco=[(other, img2)])


def test_config_and_source_errors(tmp_path):
    with pytest.raises(ValueError, match="image_size"):
        DetectionDataConfig(image_size=(100, 64))
    with pytest.raises(ValueError, match="min_visibility"):
        DetectionDataConfig(min_visibility=1.5)
    with pytest.raises(ValueError, match="at least one bag"):
        DetectionDataset()
    with pytest.raises(ValueError, match="does not exist"):
        DetectionDataset(bags=[tmp_path / "missing"])
