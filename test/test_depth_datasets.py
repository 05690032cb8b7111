"""DepthTrack data: exact GT depth under crop + resize (K kept consistent), template/search pairs, curriculum."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from depthtracker.data.bags import BagReader
from depthtracker.data.crops import crop_square, resize_camera
from depthtracker.data.depth_datasets import (
    DepthTrackDataConfig,
    DepthTrackDataset,
    collate_depthtrack,
    max_gap_at,
)
from depthtracker.data.synth import SynthConfig

WORLD = SynthConfig(cameras=2, width=128, height=96, fps=10.0, seconds=0.8, seed=3, num_objects=6)


@pytest.fixture(scope="module")
def bag(make_synth_bag):
    return make_synth_bag(WORLD)


def _cfg(**kw) -> DepthTrackDataConfig:
    # cache_scale 2 x (48, 64) = the bag's 96 x 128: the cache holds the source resolution
    return DepthTrackDataConfig(**{"input_size": (48, 64), "template_size": 32, "search_size": 64, **kw})


def test_depth_crops_match_ground_truth_through_the_intrinsics(bag):
    ds = DepthTrackDataset([bag], _cfg(augment=True, crop_scale=(0.5, 0.8)))
    with BagReader(bag) as r:
        samples = list(r.samples())
        cams = r.cameras
    for index in (0, 5):
        s = ds[index]
        assert s.images.shape == (2, 3, 48, 64) and s.depth.shape == (2, 48, 64) and s.images.dtype == torch.uint8
        for v in range(2):
            K, K0 = s.intrinsics[v].double().numpy(), cams[v].K
            assert K[0, 0] > K0[0, 0] * 0.5  # a crop zooms in: focal length in input pixels grows vs plain resize
            # every input pixel centre -> source pixel through K' and K: its GT depth must be what the sample holds
            u, w = np.meshgrid(np.arange(64) + 0.5, np.arange(48) + 0.5)
            us = np.floor((u - K[0, 2]) / K[0, 0] * K0[0, 0] + K0[0, 2] + 1e-6).astype(int)
            vs = np.floor((w - K[1, 2]) / K[1, 1] * K0[1, 1] + K0[1, 2] + 1e-6).astype(int)
            gt = samples[index].depths[v].depth[vs, us]
            np.testing.assert_allclose(s.depth[v].numpy(), gt, rtol=1e-3)  # float16 cache
            assert torch.equal(s.extrinsics[v], torch.tensor(np.array(cams[v].T_world_cam)))


def test_resize_camera_keeps_projection_exact():
    K = np.array([[100.0, 0, 64], [0, 100, 48], [0, 0, 1]])
    image = np.zeros((96, 128, 3), np.uint8)
    _, K2, _ = resize_camera(image, K, (30, 40), crop=(16, 8, 80, 60))
    p = np.array([0.3, -0.2, 2.0])  # a point in the optical frame
    uv = (K @ p)[:2] / p[2]
    uv2 = (K2 @ p)[:2] / p[2]
    np.testing.assert_allclose(uv2, (uv - [16, 8]) * 0.5)


def test_crop_square_maps_boxes_exactly():
    image = np.zeros((90, 120, 3), np.uint8)
    image[30:50, 40:70] = 255  # box [40, 30, 70, 50]
    crop, tf = crop_square(image, (55.0, 40.0), 60.0, 120)
    box = tf.boxes_to_crop(np.array([40, 30, 70, 50], np.float32))
    np.testing.assert_allclose(box, [30, 40, 90, 80])
    ys, xs = np.nonzero(crop[..., 0] > 127)
    np.testing.assert_allclose([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], box, atol=1)
    np.testing.assert_allclose(tf.boxes_to_image(box), [40, 30, 70, 50], atol=1e-4)


def test_pairs_have_the_target_inside_the_search_crop(bag):
    ds = DepthTrackDataset([bag], _cfg(augment=True, center_jitter=0.5, scale_jitter=0.5))
    assert len(ds) == 8 and len(ds.tracks) > 0
    for i in range(len(ds)):
        s = ds[i]
        assert s.template.shape == (3, 32, 32) and s.search.shape == (3, 64, 64)
        b = s.box.numpy()
        assert s.box_valid and (b >= 0).all() and (b[[0, 2]] <= 64).all() and (b[[1, 3]] <= 64).all()
        assert b[2] - b[0] > 1 and b[3] - b[1] > 1
    a, b2 = ds[3], ds[3]
    assert torch.equal(a.search, b2.search)  # deterministic for (seed, epoch, index)
    ds.set_epoch(1)
    assert not torch.equal(ds[3].images, a.images)
    batch = collate_depthtrack([ds[0], ds[1]])
    assert batch.images.shape == (2, 2, 3, 48, 64) and batch.images.dtype == torch.float32
    assert batch.boxes.shape == (2, 4) and batch.box_valid.all()
    manifest = ds.manifest()
    assert manifest["samples"] == 8 and manifest["sources"][0]["source"]["synth"]["seed"] == 3


def test_search_box_follows_the_object_in_the_search_frame(bag):
    ds = DepthTrackDataset([bag], _cfg(augment=False, gap_start=0, max_gap=0))
    rng = np.random.default_rng(0)
    for _ in range(5):  # gap 0: template and search frame coincide; unjittered search is centred on the box
        _, search, box, valid = ds.pair(rng)
        assert valid
        np.testing.assert_allclose((box[:2] + box[2:]) / 2, [32, 32], atol=0.5)


def test_gap_curriculum_and_config_errors():
    cfg = _cfg(gap_start=2, max_gap=12, curriculum_epochs=5)
    assert [max_gap_at(cfg, e) for e in (0, 1, 5, 9)] == [2, 4, 12, 12]
    with pytest.raises(ValueError, match="max_gap"):
        _cfg(gap_start=5, max_gap=2)
    with pytest.raises(ValueError, match="crop_scale"):
        _cfg(crop_scale=(0.0, 1.0))
    with pytest.raises(ValueError, match="at least one bag"):
        DepthTrackDataset([], _cfg())
