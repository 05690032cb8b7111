"""rosbag2 round trips (mcap and sqlite3), Foxglove-compatible reading, determinism, and bad input."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from depthtracker.data.bags import BagError, BagReader, BagWriter
from depthtracker.data.synth import SynthConfig, SynthWorld
from depthtracker.data.synth_bag import write_synth_bag
from rosbags.rosbag2 import Reader

SMALL = SynthConfig(cameras=3, width=96, height=72, fps=10.0, seconds=0.4, seed=3)


@pytest.fixture(scope="module")
def world() -> SynthWorld:
    return SynthWorld(SMALL)


@pytest.fixture(scope="module", params=["mcap", "sqlite3"])
def bag(request, tmp_path_factory) -> tuple[str, Path]:
    path = tmp_path_factory.mktemp(request.param) / "world"
    write_synth_bag(SMALL, path, storage=request.param, progress=False)
    return request.param, path


def raw_messages(path: Path) -> list[tuple[str, int, bytes]]:
    with Reader(path) as r:
        return [(c.topic, t, bytes(d)) for c, t, d in r.messages()]


def test_round_trip_is_bit_exact(bag, world):
    storage, path = bag
    assert (path / "metadata.yaml").is_file()
    assert [p.suffix for p in path.iterdir() if p.name != "metadata.yaml"] == [".mcap" if storage == "mcap" else ".db3"]
    with BagReader(path) as r:
        assert r.camera_ids == [0, 1, 2]
        assert r.num_sets == world.num_frames == 4
        assert r.class_names == world.class_names
        assert r.stereo_pair == world.stereo_pair and r.baseline_m == world.baseline_m
        assert r.source["synth"]["seed"] == SMALL.seed
        for got, want in zip(r.cameras, world.cameras, strict=True):
            np.testing.assert_array_equal(got.K, want.K)
            np.testing.assert_allclose(got.T_world_cam, want.T_world_cam, atol=1e-12)
            assert got.frame_id == want.frame_id and (got.width, got.height) == (want.width, want.height)
        samples = list(r.samples())
    assert len(samples) == world.num_frames
    for i, s in enumerate(samples):
        w = world.render(i)
        assert s.stamp_ns == w.stamp_ns
        for a, b in zip(s.frames, w.frames, strict=True):
            assert a.image.tobytes() == b.image.tobytes() and a.frame_id == b.frame_id
        for a, b in zip(s.depths, w.depths, strict=True):
            assert a.depth.dtype == np.float32 and a.depth.tobytes() == b.depth.tobytes()
        for a, b in zip(s.annotations, w.annotations, strict=True):
            np.testing.assert_array_equal(a.ids, b.ids)
            assert a.boxes.tobytes() == b.boxes.tobytes()
            np.testing.assert_array_equal(a.labels, b.labels)
            assert a.visibility.tobytes() == b.visibility.tobytes()


def test_stereo_camera_info_carries_the_baseline(bag, world):
    _, path = bag
    with BagReader(path) as r:
        infos = {}
        for topic, _, msg in r.messages([f"/cam{i}/camera_info" for i in r.camera_ids]):
            infos.setdefault(topic, msg)
    left, right = world.stereo_pair
    fx = world.cameras[right].K[0, 0]
    assert infos[f"/cam{left}/camera_info"].p[3] == 0.0
    np.testing.assert_allclose(infos[f"/cam{right}/camera_info"].p[3], -fx * world.baseline_m)
    assert infos["/cam0/camera_info"].distortion_model == "plumb_bob"


def test_objects_gt_median_depth(bag, world):
    _, path = bag
    with BagReader(path) as r:
        topic, _, msg = next(iter(r.messages(["/cam0/objects_gt"])))
    s = world.render(0)
    for t in msg.tracks:
        x1, y1, x2, y2 = (int(round(v)) for v in t.box)
        assert t.depth == pytest.approx(float(np.median(s.depths[0].depth[y1:y2, x1:x2])), rel=1e-6)
        assert t.state == 1 and t.score == 1.0 and 0 < t.visibility <= 1


def test_mcap_reads_back_through_mcap_ros2(tmp_path, world):
    from mcap.reader import make_reader
    from mcap_ros2.decoder import DecoderFactory

    path = write_synth_bag(SMALL, tmp_path / "b", storage="mcap", progress=False)
    (mcap_file,) = path.glob("*.mcap")
    counts: dict[str, int] = {}
    first_objects = first_image = None
    with open(mcap_file, "rb") as f:
        for schema, channel, _, msg in make_reader(f, decoder_factories=[DecoderFactory()]).iter_decoded_messages():
            counts[channel.topic] = counts.get(channel.topic, 0) + 1
            if channel.topic == "/cam1/objects_gt" and first_objects is None:
                first_objects = msg
                assert schema.name == "depthtracker_msgs/msg/TrackArray"
            if channel.topic == "/cam1/image_raw" and first_image is None:
                first_image = msg
    assert counts["/tf_static"] == 1
    assert all(counts[f"/cam{i}/{k}"] == 4 for i in range(3) for k in ("image_raw", "camera_info", "depth_gt",
                                                                        "objects_gt"))
    w = world.render(0)
    assert bytes(first_image.data) == w.frames[1].image.tobytes()
    assert [t.id for t in first_objects.tracks] == w.annotations[1].ids.tolist()


def test_same_seed_same_bytes_other_seed_differs(tmp_path):
    a = raw_messages(write_synth_bag(SMALL, tmp_path / "a", progress=False))
    b = raw_messages(write_synth_bag(SMALL, tmp_path / "b", progress=False))
    assert a == b
    other = SynthConfig(**{**SMALL.__dict__, "seed": SMALL.seed + 1})
    c = raw_messages(write_synth_bag(other, tmp_path / "c", progress=False))
    img = [d for t, _, d in a if t == "/cam0/image_raw"]
    img_c = [d for t, _, d in c if t == "/cam0/image_raw"]
    assert img != img_c


# -- bad input ------------------------------------------------------------------------------------------------------
def test_unknown_storage(tmp_path, world):
    with pytest.raises(BagError, match="unknown bag storage 'rosbag1'.*mcap, sqlite3"):
        BagWriter(tmp_path / "x", world.cameras, storage="rosbag1")
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize("field, value", [("cameras", 0), ("fps", -5.0), ("seconds", 0.0), ("width", 3)])
def test_bad_world_config_named(field, value):
    with pytest.raises(ValueError, match=field):
        SynthConfig(**{field: value})


def test_unwritable_output_path(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    with pytest.raises(BagError, match="cannot create the folder"):
        write_synth_bag(SMALL, blocker / "bag", progress=False)


def test_existing_output_is_kept(tmp_path):
    out = tmp_path / "bag"
    out.mkdir()
    (out / "precious.txt").write_text("keep me")
    with pytest.raises(BagError, match="already exists"):
        write_synth_bag(SMALL, out, progress=False)
    assert (out / "precious.txt").read_text() == "keep me"


def test_failure_mid_write_leaves_nothing(tmp_path, world):
    out = tmp_path / "bag"
    with pytest.raises(RuntimeError, match="boom"):
        with BagWriter(out, world.cameras) as w:
            w.write_sample(world.render(0))
            raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


def test_truncated_bag_is_named(tmp_path):
    path = write_synth_bag(SMALL, tmp_path / "t", progress=False)
    (f,) = path.glob("*.mcap")
    data = f.read_bytes()
    f.write_bytes(data[: len(data) // 2])
    with pytest.raises(BagError, match=rf"{path}.*truncated or corrupt"):
        with BagReader(path) as r:
            list(r.samples())


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_corrupt_bag_is_named(tmp_path, storage):
    path = write_synth_bag(SMALL, tmp_path / "c", storage=storage, progress=False)
    (f,) = [p for p in path.iterdir() if p.name != "metadata.yaml"]
    data = bytearray(f.read_bytes())
    rng = np.random.default_rng(0)
    for pos in rng.integers(len(data) // 4, len(data) * 3 // 4, 400):
        data[pos] ^= 0xA5
    f.write_bytes(bytes(data))
    with pytest.raises(BagError, match=str(path)):
        with BagReader(path) as r:
            for _ in r.samples():
                pass


def test_not_a_bag(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(BagError, match="not a rosbag2 folder"):
        BagReader(tmp_path / "empty")
    with pytest.raises(BagError, match="does not exist"):
        BagReader(tmp_path / "missing")


def test_write_rejects_frames_of_unknown_camera(tmp_path, world):
    from depthtracker.types import Frame

    with pytest.raises(BagError, match="camera 9"):
        with BagWriter(tmp_path / "b", world.cameras[:1]) as w:
            w.write(1, [Frame(np.zeros((72, 96, 3), np.uint8), 9, 1)])
    assert not any(p.name == "b" for p in tmp_path.iterdir())
    assert os.listdir(tmp_path) == []
