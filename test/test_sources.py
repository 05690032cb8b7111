"""Camera sources (video, folder, v4l2 error path, retry with back-off) and camera_info YAML calibration files."""

import cv2
import numpy as np
import pytest
from depthtracker.data.calibration import CalibrationError, load_calibration, pinhole_calibration
from depthtracker.data.sources import (
    FolderSource,
    RetryingSource,
    SourceError,
    SourceSpec,
    V4L2Source,
    VideoSource,
    open_source,
    parse_source_spec,
)

CALIB = """\
image_width: 64
image_height: 48
camera_name: front
camera_matrix: {rows: 3, cols: 3, data: [50.0, 0.0, 32.0, 0.0, 51.0, 24.0, 0.0, 0.0, 1.0]}
distortion_model: plumb_bob
distortion_coefficients: {rows: 1, cols: 5, data: [-0.1, 0.01, 0.0, 0.0, 0.0]}
rectification_matrix: {rows: 3, cols: 3, data: [1, 0, 0, 0, 1, 0, 0, 0, 1]}
projection_matrix: {rows: 3, cols: 4, data: [49.0, 0.0, 32.0, -3.0, 0.0, 49.0, 24.0, 0.0, 0.0, 0.0, 1.0, 0.0]}
"""


def frame(k, h=48, w=64):
    """RGB test frame: flat colour per k (video codecs keep flat colours nearly exact)."""
    img = np.zeros((h, w, 3), np.uint8)
    img[..., 0], img[..., 1], img[..., 2] = 40 * k % 256, 200, 255 - 40 * k % 256
    return img


def write_folder(folder, n=3):
    folder.mkdir()
    for k in range(n):
        cv2.imwrite(str(folder / f"img_{k:03d}.png"), cv2.cvtColor(frame(k), cv2.COLOR_RGB2BGR))
    (folder / "notes.txt").write_text("not an image")
    return folder


def test_parse_source_spec():
    assert parse_source_spec("video:/a/b.mp4") == SourceSpec("video", "/a/b.mp4")
    assert parse_source_spec("folder:imgs") == SourceSpec("folder", "imgs")
    assert parse_source_spec("v4l2:/dev/video0") == SourceSpec("v4l2", "/dev/video0")
    assert parse_source_spec("synth") == SourceSpec("synth", "")
    for bad in ("", "rtsp://x", "video:", "video", "synth:3"):
        with pytest.raises(ValueError, match="camera source|non-empty"):
            parse_source_spec(bad)


def test_folder_source_reads_sorted_rgb_and_loops(tmp_path):
    src = FolderSource(write_folder(tmp_path / "imgs"), loop=False)
    got = [src.read() for _ in range(4)]
    assert got[3] is None and [f.shape for f in got[:3]] == [(48, 64, 3)] * 3
    for k in range(3):
        np.testing.assert_array_equal(got[k], frame(k))  # PNG is lossless; channels in RGB order
    looping = open_source(f"folder:{tmp_path / 'imgs'}", loop=True)
    seq = [looping.read() for _ in range(5)]
    np.testing.assert_array_equal(seq[3], frame(0))
    with pytest.raises(SourceError, match="no such folder"):
        FolderSource(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(SourceError, match="no images"):
        FolderSource(tmp_path / "empty")


def test_video_source_reads_and_loops(tmp_path):
    path = tmp_path / "clip.mp4"
    vw = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10.0, (64, 48))
    assert vw.isOpened()
    for k in range(4):
        vw.write(cv2.cvtColor(frame(k), cv2.COLOR_RGB2BGR))
    vw.release()
    src = VideoSource(path)
    assert src.fps == pytest.approx(10.0)
    got = []
    while (f := src.read()) is not None:
        got.append(f)
    assert len(got) == 4
    for k, f in enumerate(got):
        assert np.abs(f.astype(int) - frame(k)).mean() < 6  # lossy codec, flat colours
    looping = VideoSource(path, loop=True)
    seq = [looping.read() for _ in range(6)]
    assert all(f is not None for f in seq)
    assert np.abs(seq[4].astype(int) - frame(0)).mean() < 6
    with pytest.raises(SourceError, match="no such file"):
        VideoSource(tmp_path / "nope.mp4")
    (tmp_path / "bad.mp4").write_bytes(b"not a video")
    with pytest.raises(SourceError, match="cannot open"):
        VideoSource(tmp_path / "bad.mp4")


def test_missing_v4l2_device_is_a_source_error():
    with pytest.raises(SourceError, match="no such device"):
        V4L2Source("/dev/video_does_not_exist")
    with pytest.raises(SourceError):
        open_source("v4l2:97")  # an index with no camera behind it


def test_retrying_source_backs_off_and_recovers():
    attempts = []

    class Flaky:
        name = "flaky"

        def read(self):
            return np.zeros((2, 2, 3), np.uint8)

        def close(self):
            pass

    def factory():
        attempts.append(len(attempts))
        if len(attempts) <= 3:
            raise SourceError("camera unplugged")
        return Flaky()

    src = RetryingSource(factory, initial_backoff_s=1.0, max_backoff_s=3.0)
    assert src.read(now=0.0) is None and not src.ok and src.error == "camera unplugged" and src.failures == 1
    assert src.read(now=0.5) is None and len(attempts) == 1  # waiting: no attempt before the back-off ends
    assert src.read(now=1.0) is None and src.failures == 2  # retry at 1 s fails, next in 2 s
    assert src.read(now=2.9) is None and len(attempts) == 2
    assert src.read(now=3.0) is None and src.failures == 3  # next in 3 s (capped)
    assert src.read(now=5.9) is None and len(attempts) == 3
    assert src.read(now=6.0) is not None and src.ok and src.error == ""  # it came back


def test_calibration_yaml(tmp_path):
    path = tmp_path / "front.yaml"
    path.write_text(CALIB)
    cal = load_calibration(path)
    assert (cal.width, cal.height, cal.camera_name) == (64, 48, "front")
    assert cal.K[0, 0] == 50.0 and cal.K[1, 1] == 51.0 and cal.D.tolist() == [-0.1, 0.01, 0.0, 0.0, 0.0]
    f = cal.info_fields()
    assert f["p"][3] == -3.0 and f["k"].shape == (9,) and f["r"].tolist() == np.eye(3).ravel().tolist()
    cam = cal.camera_model(2)
    assert cam.frame_id == "cam2_optical" and cam.width == 64 and cam.distortion[0] == -0.1


@pytest.mark.parametrize("text, match", [
    ("image_width: 64\n", "image_height"),
    ("image_width: 64\nimage_height: 48\n", "camera_matrix"),
    (CALIB.replace("rows: 3, cols: 3, data: [50.0", "rows: 2, cols: 3, data: [50.0"), "camera_matrix must be 3x3"),
    (CALIB.replace("[50.0,", "[0.0,"), "positive focal"),
    (CALIB.replace("cols: 5, data: [-0.1, 0.01, 0.0, 0.0, 0.0]", "cols: 5, data: [1]"), "distortion_coefficients"),
    ("- a\n- b\n", "mapping"),
    ("image_width: [\n", "not valid YAML"),
])
def test_bad_calibration_files_name_the_problem(tmp_path, text, match):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(CalibrationError, match=match):
        load_calibration(path)


def test_missing_calibration_file_and_pinhole(tmp_path):
    with pytest.raises(CalibrationError, match="cannot read"):
        load_calibration(tmp_path / "none.yaml")
    cal = pinhole_calibration(640, 480, 90.0)
    assert cal.K[0, 0] == pytest.approx(320.0) and cal.K[0, 2] == 320.0 and cal.K[1, 2] == 240.0
    with pytest.raises(CalibrationError, match="hfov"):
        pinhole_calibration(640, 480, 180.0)
