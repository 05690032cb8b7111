import numpy as np
import pytest
from depthtracker.geometry import intrinsics_from_fov, look_at
from depthtracker.types import Annotations, CameraModel, DepthMap, Detections, Frame, TargetState, Tracks


def _det(n=2, **kw):
    args = dict(boxes=np.tile(np.array([[1, 2, 3, 4]], np.float32), (n, 1)), scores=np.ones(n, np.float32),
                labels=np.zeros(n, np.int64), camera_id=0, stamp_ns=5)
    args.update(kw)
    return Detections(**args)


def test_detections_valid_and_frozen():
    d = _det()
    assert len(d) == 2
    with pytest.raises(ValueError, match="read-only"):
        d.boxes[0, 0] = 7
    with pytest.raises(AttributeError):
        d.camera_id = 3


def test_detections_does_not_freeze_the_callers_array():
    boxes = np.array([[1, 2, 3, 4]], np.float32)
    _det(1, boxes=boxes)
    boxes[0, 0] = 0.5  # the caller's array stays writable
    assert boxes[0, 0] == 0.5


@pytest.mark.parametrize(
    "kw, field",
    [
        (dict(boxes=np.zeros((2, 4), np.float64)), "boxes"),
        (dict(boxes=np.zeros((2, 3), np.float32)), "boxes"),
        (dict(scores=np.ones(3, np.float32)), "scores"),
        (dict(labels=np.zeros(2, np.int32)), "labels"),
        (dict(camera_id=-1), "camera_id"),
        (dict(stamp_ns=1.5), "stamp_ns"),
        (dict(sigmas=np.ones((2, 3), np.float32)), "sigmas"),
        (dict(boxes=[[1, 2, 3, 4], [1, 2, 3, 4]]), "boxes"),
    ],
)
def test_detections_bad_field_named(kw, field):
    with pytest.raises(ValueError, match=f"Detections.{field}"):
        _det(**kw)


@pytest.mark.parametrize(
    "bad, what",
    [(np.nan, "non-finite"), (np.inf, "non-finite"), (-np.inf, "non-finite")],
)
def test_detections_non_finite_box_rows_named(bad, what):
    boxes = np.array([[1, 2, 3, 4], [1, 2, bad, 4]], np.float32)
    with pytest.raises(ValueError, match=rf"{what}.*\[1\]"):
        _det(boxes=boxes)


def test_detections_negative_size_named():
    boxes = np.array([[5, 2, 3, 4], [1, 2, 3, 4]], np.float32)
    with pytest.raises(ValueError, match=r"negative width or height in rows \[0\]"):
        _det(boxes=boxes)


def test_tracks_and_annotations_shapes():
    t = Tracks.empty(1, 0)
    assert len(t) == 0 and t.camera_id == 1
    with pytest.raises(ValueError, match="Tracks.states"):
        Tracks(np.zeros(1, np.int64), np.zeros((1, 4), np.float32), np.zeros((1, 4), np.float32),
               np.zeros(1, np.float32), np.zeros(1, np.int64), np.zeros(1, np.int64), 0, 0)
    with pytest.raises(ValueError, match="Annotations.visibility"):
        Annotations(np.zeros(1, np.int64), np.zeros((1, 4), np.float32), np.zeros(1, np.int64),
                    np.zeros(2, np.float32), 0, 0)


def test_frame_depth_camera_target():
    Frame(np.zeros((4, 5, 3), np.uint8), 0, 1)
    with pytest.raises(ValueError, match="Frame.image"):
        Frame(np.zeros((4, 5), np.uint8), 0, 1)
    with pytest.raises(ValueError, match="DepthMap.depth"):
        DepthMap(np.zeros((4, 5), np.float64), 0, 1)
    K = intrinsics_from_fov(64, 48, 60)
    cam = CameraModel(2, 64, 48, K, look_at(np.zeros(3), np.array([1.0, 0, 0])))
    assert cam.frame_id == "cam2_optical"
    np.testing.assert_allclose(cam.T_cam_world @ cam.T_world_cam, np.eye(4), atol=1e-12)
    with pytest.raises(ValueError, match="CameraModel.K"):
        CameraModel(0, 64, 48, np.eye(3, dtype=np.float32), np.eye(4))
    with pytest.raises(ValueError, match="TargetState.box"):
        TargetState(np.array([0, 0, np.nan, 1], np.float32), np.zeros(4, np.float32), 0.5, 0, 0)
