"""Tests of the synthetic world: geometry against independent analytic computations, ground truth, determinism."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np
import pytest
from depthtracker.configio import config_dir, load_config, load_yaml, ros_parameters
from depthtracker.data.synth import CLASS_NAMES, SynthConfig, SynthSample, SynthWorld
from depthtracker.data.synth import render as synth_render
from depthtracker.geometry.camera import project_points
from depthtracker.types import Annotations, DepthMap, Frame

W, H = 160, 120
SMALL = SynthConfig(width=W, height=H, seconds=4.0)  # 60 frames, 4 cameras


@pytest.fixture(scope="module")
def world() -> SynthWorld:
    return SynthWorld(SMALL)


@pytest.fixture(scope="module")
def samples(world: SynthWorld) -> list[SynthSample]:
    return list(world)


def _rays(cam, us: np.ndarray, vs: np.ndarray) -> np.ndarray:
    """(N, 3) world ray directions with optical z = 1 through pixel centres (us, vs), from K and T_world_cam."""
    pix = np.stack([us + 0.5, vs + 0.5, np.ones_like(us, dtype=np.float64)], axis=1)
    return (pix @ np.linalg.inv(cam.K).T) @ cam.T_world_cam[:3, :3].T


def _sphere_t(origin: np.ndarray, dirs: np.ndarray, centre: np.ndarray, r: float) -> np.ndarray:
    """Near ray-sphere distance, NaN on a miss (written independently of the renderer's formulation)."""
    oc = origin - centre
    a = np.einsum("ij,ij->i", dirs, dirs)
    b = 2.0 * dirs @ oc
    c = oc @ oc - r * r
    disc = b * b - 4 * a * c
    with np.errstate(invalid="ignore"):
        t = (-b - np.sqrt(disc)) / (2 * a)
    return np.where(t > 0, t, np.nan)


# --- API ------------------------------------------------------------------------------------------------------------


def test_api_and_types(world: SynthWorld, samples: list[SynthSample]) -> None:
    assert world.num_frames == len(world) == len(samples) == 60
    assert [c.camera_id for c in world.cameras] == [0, 1, 2, 3]
    assert [c.frame_id for c in world.cameras] == [f"cam{i}_optical" for i in range(4)]
    assert world.class_names == CLASS_NAMES and len(CLASS_NAMES) >= 3
    assert {o.label for o in world.objects} == set(range(len(CLASS_NAMES)))
    assert [o.object_id for o in world.objects] == list(range(1, SMALL.num_objects + 1))
    for i, s in enumerate(samples[:5]):
        assert s.index == i
        assert s.stamp_ns == SMALL.start_time_ns + round(i * 1e9 / SMALL.fps)
        for cam in world.cameras:
            k = cam.camera_id
            f, d, a, inst = s.frames[k], s.depths[k], s.annotations[k], s.instance[k]
            assert isinstance(f, Frame) and isinstance(d, DepthMap) and isinstance(a, Annotations)
            assert f.image.shape == (H, W, 3) and f.image.dtype == np.uint8 and f.frame_id == cam.frame_id
            assert d.depth.shape == (H, W) and d.depth.dtype == np.float32 and np.isfinite(d.depth).all()
            assert d.depth.min() > 0
            assert inst.shape == (H, W) and inst.dtype == np.int32
            assert f.stamp_ns == d.stamp_ns == a.stamp_ns == s.stamp_ns
            assert f.camera_id == d.camera_id == a.camera_id == k


@pytest.mark.parametrize("index", [-1, 60, 1000])
def test_render_out_of_range(world: SynthWorld, index: int) -> None:
    with pytest.raises(ValueError, match=rf"{index}.*\[0, 59\]"):
        world.render(index)


# --- geometry against independent computations ------------------------------------------------------------------------


def test_ground_depth_is_ray_plane_distance(world: SynthWorld, samples: list[SynthSample]) -> None:
    L, Wr, _ = SMALL.room_size_m
    vs, us = np.mgrid[0:H, 0:W]
    us, vs = us.ravel().astype(np.float64), vs.ravel().astype(np.float64)
    checked = 0
    for s in samples[::20]:
        for cam in world.cameras:
            o = cam.T_world_cam[:3, 3]
            d = _rays(cam, us, vs)
            with np.errstate(divide="ignore", invalid="ignore"):
                t = -o[2] / d[:, 2]  # plane z = 0
            p = o + t[:, None] * d
            floor = (t > 0) & (np.abs(p[:, 0]) < L / 2) & (np.abs(p[:, 1]) < Wr / 2)  # convex room: first exit
            floor &= s.instance[cam.camera_id].ravel() == 0
            depth = s.depths[cam.camera_id].depth.ravel().astype(np.float64)
            np.testing.assert_allclose(depth[floor], t[floor], rtol=1e-5)
            checked += int(floor.sum())
    assert checked > 1000


def test_sphere_depth_is_analytic(world: SynthWorld, samples: list[SynthSample]) -> None:
    spheres = [o for o in world.objects if o.class_name == "sphere"]
    checked = 0
    for s in samples[::7]:
        states = world.object_states(s.index)
        for cam in world.cameras:
            inst = s.instance[cam.camera_id]
            for o in spheres:
                vs, us = np.nonzero(inst == o.object_id)
                if us.size == 0:
                    continue
                t = _sphere_t(cam.T_world_cam[:3, 3], _rays(cam, us.astype(float), vs.astype(float)),
                              states.centers[o.object_id - 1], o.half_extents[0])
                assert not np.isnan(t).any()
                np.testing.assert_allclose(s.depths[cam.camera_id].depth[vs, us], t, rtol=1e-6)
                checked += us.size
    assert checked > 100


def test_object_depth_lies_on_object_surface(world: SynthWorld, samples: list[SynthSample]) -> None:
    """Back-projected depth of every object pixel lies on that object's surface (all classes)."""
    for s in samples[::9]:
        states = world.object_states(s.index)
        for cam in world.cameras:
            inst = s.instance[cam.camera_id]
            vs, us = np.nonzero(inst)
            d = _rays(cam, us.astype(float), vs.astype(float))
            p = cam.T_world_cam[:3, 3] + s.depths[cam.camera_id].depth[vs, us, None].astype(np.float64) * d
            for o in world.objects:
                m = inst[vs, us] == o.object_id
                if not m.any():
                    continue
                c, yaw = states.centers[o.object_id - 1], states.yaws[o.object_id - 1]
                rel = p[m] - c
                q = np.stack([math.cos(yaw) * rel[:, 0] + math.sin(yaw) * rel[:, 1],
                              -math.sin(yaw) * rel[:, 0] + math.cos(yaw) * rel[:, 1], rel[:, 2]], axis=1)
                a, b, h = o.half_extents
                tol = 1e-5 * np.linalg.norm(rel + c - cam.T_world_cam[:3, 3], axis=1).max() + 1e-6
                if o.class_name == "box":
                    dist = np.abs(np.abs(q) - [a, b, h]).min(axis=1)  # distance to the nearest face plane
                    assert (dist < tol).all() and (np.abs(q) <= np.array([a, b, h]) + tol).all()
                elif o.class_name == "sphere":
                    np.testing.assert_allclose(np.linalg.norm(q, axis=1), a, atol=tol)
                else:
                    rho = np.hypot(q[:, 0], q[:, 1])
                    on_side = (np.abs(rho - a) < tol) & (np.abs(q[:, 2]) <= h + tol)
                    on_cap = (np.abs(np.abs(q[:, 2]) - h) < tol) & (rho <= a + tol)
                    assert (on_side | on_cap).all()


def test_boxes_are_tight_bounds_of_instance_pixels(samples: list[SynthSample]) -> None:
    for s in samples:
        for a, inst in zip(s.annotations, s.instance):
            present = sorted(set(np.unique(inst).tolist()) - {0})
            assert sorted(a.ids.tolist()) == present  # no box without pixels, no pixels without a box
            for oid, box, vis in zip(a.ids, a.boxes, a.visibility):
                vs, us = np.nonzero(inst == oid)
                assert box.tolist() == [us.min(), vs.min(), us.max() + 1, vs.max() + 1]
                assert 0 < vis <= 1


def test_projected_centre_inside_box(world: SynthWorld, samples: list[SynthSample]) -> None:
    checked = 0
    for s in samples:
        centers = world.object_states(s.index).centers
        for cam, a in zip(world.cameras, s.annotations):
            uv, z = project_points(cam.K, cam.T_cam_world, centers[a.ids - 1])
            for (u, v), zc, box, vis in zip(uv, z, a.boxes, a.visibility):
                if zc > 0 and 0 <= u < W and 0 <= v < H and vis >= 0.9:
                    assert box[0] <= u <= box[2] and box[1] <= v <= box[3]
                    checked += 1
    assert checked > 50


def test_visibility_matches_independent_count_for_spheres(world: SynthWorld, samples: list[SynthSample]) -> None:
    """Visibility = visible pixels / pixels the sphere alone covers on the image grown by the margin per side."""
    m = SMALL.visibility_margin
    vs, us = np.mgrid[-round(m * H):H + round(m * H), -round(m * W):W + round(m * W)]
    us, vs = us.ravel().astype(np.float64), vs.ravel().astype(np.float64)
    spheres = {o.object_id: o for o in world.objects if o.class_name == "sphere"}
    checked = 0
    for s in samples[::6]:
        centers = world.object_states(s.index).centers
        for cam, a, inst in zip(world.cameras, s.annotations, s.instance):
            d = _rays(cam, us, vs)
            for oid, vis in zip(a.ids, a.visibility):
                if oid not in spheres:
                    continue
                ref = np.count_nonzero(~np.isnan(_sphere_t(cam.T_world_cam[:3, 3], d, centers[oid - 1],
                                                           spheres[oid].half_extents[0])))
                assert vis == pytest.approx(np.count_nonzero(inst == oid) / ref, rel=1e-6)
                checked += 1
    assert checked > 10


def test_culling_does_not_change_output(world: SynthWorld, samples: list[SynthSample],
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """Casting every object over the whole reference window gives the same images as the culled fast path."""
    monkeypatch.setattr(synth_render, "_rect", lambda view, corners: view.window)
    brute = SynthWorld(SMALL)
    for i in (0, 31, 59):
        fast, slow = samples[i], brute.render(i)
        for k in range(SMALL.cameras):
            assert np.array_equal(fast.frames[k].image, slow.frames[k].image)
            assert np.array_equal(fast.depths[k].depth, slow.depths[k].depth)
            assert np.array_equal(fast.instance[k], slow.instance[k])
            assert np.array_equal(fast.annotations[k].visibility, slow.annotations[k].visibility)


# --- rig, ids, dynamics -------------------------------------------------------------------------------------------


def test_stereo_pair_is_rectified(world: SynthWorld) -> None:
    left, right = (world.cameras[i] for i in world.stereo_pair)
    assert world.baseline_m == SMALL.stereo_baseline_m
    np.testing.assert_array_equal(left.K, right.K)
    np.testing.assert_allclose(left.T_world_cam[:3, :3], right.T_world_cam[:3, :3], atol=1e-12)
    offset = right.T_world_cam[:3, 3] - left.T_world_cam[:3, 3]
    np.testing.assert_allclose(offset, world.baseline_m * left.T_world_cam[:3, 0], atol=1e-12)
    single = SynthWorld(dataclasses.replace(SMALL, cameras=1, num_objects=2))
    assert single.stereo_pair is None and len(single.cameras) == 1


def test_ids_consistent_across_cameras(world: SynthWorld, samples: list[SynthSample]) -> None:
    label_of = {o.object_id: o.label for o in world.objects}
    multi_view = 0
    for s in samples:
        seen: dict[int, int] = {}
        for a in s.annotations:
            for oid, label in zip(a.ids.tolist(), a.labels.tolist()):
                assert label == label_of[oid]
                seen[oid] = seen.get(oid, 0) + 1
        multi_view += sum(n >= 2 for n in seen.values())
    assert multi_view > 20  # objects regularly appear in several cameras at once


def test_objects_enter_leave_and_occlude(world: SynthWorld, samples: list[SynthSample]) -> None:
    presence = {}  # (camera, id) -> frames where annotated
    occluded = False
    for s in samples:
        for k, (a, inst) in enumerate(zip(s.annotations, s.instance)):
            for oid, box, vis in zip(a.ids.tolist(), a.boxes, a.visibility):
                presence.setdefault((k, oid), []).append(s.index)
                x1, y1, x2, y2 = box.astype(int)
                inside = x1 > 1 and y1 > 1 and x2 < W - 1 and y2 < H - 1
                others = np.setdiff1d(np.unique(inst[y1:y2, x1:x2]), [0, oid]).size > 0
                occluded |= bool(inside and others and vis < 0.95)
    assert occluded
    assert any(len(f) < len(samples) for f in presence.values())  # some object enters or leaves some view


def test_motion_stays_in_room_and_bounces(world: SynthWorld) -> None:
    L, Wr, _ = SMALL.room_size_m
    c = np.stack([world.object_states(i).centers for i in range(world.num_frames)])  # (T, K, 3)
    radius = np.array([o.radius_xy for o in world.objects])
    assert (np.abs(c[..., 0]) <= L / 2 - radius + 1e-9).all() and (np.abs(c[..., 1]) <= Wr / 2 - radius + 1e-9).all()
    v = np.diff(c[..., :2], axis=0)  # (T-1, K, 2) displacement per frame
    assert (np.sign(v[1:]) * np.sign(v[:-1]) < 0).any()  # some velocity component reverses: a bounce
    half_heights = np.array([o.half_extents[2] for o in world.objects])
    np.testing.assert_allclose(c[..., 2], np.broadcast_to(half_heights, c.shape[:2]))  # standing on the floor


# --- determinism, noise -------------------------------------------------------------------------------------------


def _assert_same(a: SynthSample, b: SynthSample) -> None:
    for k in range(len(a.frames)):
        assert a.frames[k].image.tobytes() == b.frames[k].image.tobytes()
        assert a.depths[k].depth.tobytes() == b.depths[k].depth.tobytes()
        assert a.instance[k].tobytes() == b.instance[k].tobytes()
        for f in ("ids", "boxes", "labels", "visibility"):
            assert getattr(a.annotations[k], f).tobytes() == getattr(b.annotations[k], f).tobytes()


def test_deterministic_by_seed() -> None:
    cfg = dataclasses.replace(SMALL, noise_std=3.0, seconds=1.0)
    w1, w2 = SynthWorld(cfg), SynthWorld(cfg)
    late_first = w2.render(9)  # render order must not matter
    for i in (0, 4, 9):
        _assert_same(w1.render(i), w2.render(i))
    _assert_same(late_first, w1.render(9))
    other = SynthWorld(dataclasses.replace(cfg, seed=1)).render(4)
    assert not np.array_equal(other.frames[0].image, w1.render(4).frames[0].image)
    assert not np.array_equal(other.depths[2].depth, w1.render(4).depths[2].depth)


def test_noise_is_seeded_sensor_noise() -> None:
    cfg = dataclasses.replace(SMALL, seconds=1.0)
    clean = SynthWorld(cfg).render(3)
    noisy = SynthWorld(dataclasses.replace(cfg, noise_std=4.0)).render(3)
    diff = noisy.frames[0].image.astype(np.float64) - clean.frames[0].image
    assert 3.0 < diff.std() < 5.0 and abs(diff.mean()) < 0.5
    assert np.array_equal(noisy.depths[0].depth, clean.depths[0].depth)  # noise touches only the image


# --- config -----------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("cameras", 0), ("cameras", 1.5), ("width", 8), ("height", 15), ("fps", 0.0), ("fps", -1.0),
        ("seconds", 0.0), ("seconds", 0.01), ("seed", -1), ("start_time_ns", -5), ("hfov_deg", 5.0),
        ("stereo_baseline_m", 0.0), ("stereo_baseline_m", 5.0), ("camera_height_m", 0.5), ("camera_height_m", 3.0),
        ("ring_fraction", 1.0), ("look_at_height_m", 2.0), ("room_size_m", (1.0, 8.0, 3.0)),
        ("room_size_m", (10.0, 8.0)), ("floor_tile_m", 0.0), ("num_objects", -1), ("num_objects", 100),
        ("object_size_m", (0.8, 0.3)), ("object_size_m", (0.0, 0.5)), ("speed_mps", (-1.0, 1.0)),
        ("spin_dps", -1.0), ("physics_substeps", 0), ("ambient", 1.5), ("light_dir", (0.0, 0.0, 0.0)),
        ("noise_std", -1.0), ("noise_std", float("nan")), ("visibility_margin", -0.5),
    ],
)
def test_bad_config_names_field(field: str, value: object) -> None:
    with pytest.raises(ValueError, match=field):
        SynthConfig(**{field: value})


def test_bad_config_message() -> None:
    with pytest.raises(ValueError, match=r"^cameras must be >= 1, got 0$"):
        SynthConfig(cameras=0)


def test_too_many_objects_for_room() -> None:
    with pytest.raises(ValueError, match="num_objects"):
        SynthWorld(SynthConfig(room_size_m=(2.0, 2.0, 3.0), object_size_m=(0.5, 0.5), num_objects=40))


def test_yaml_matches_dataclass_defaults() -> None:
    path = config_dir() / "synth.yaml"
    params = ros_parameters(load_yaml(path))
    assert set(params) == {f.name for f in dataclasses.fields(SynthConfig)}
    assert load_config(SynthConfig, name="synth") == SynthConfig()


def test_large_object_bench_world_differs_only_in_object_size() -> None:
    # bench/hsvdet_large_objects' world: its results compare against the shipped world's, so nothing else may drift.
    path = Path(__file__).resolve().parents[1] / "bench" / "configs" / "synth_large_objects.yaml"
    assert load_config(SynthConfig, path) == dataclasses.replace(SynthConfig(), object_size_m=(0.9, 1.5))
