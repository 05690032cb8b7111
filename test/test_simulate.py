import numpy as np
import pytest
from depthtracker.eval.simulate import DetectionNoise, simulate_detections
from depthtracker.types import Annotations


def _ann(vis=(1.0, 1.0, 0.1)):
    n = len(vis)
    boxes = np.array([[10, 10, 50, 60], [100, 40, 140, 120], [200, 10, 220, 30]], np.float32)[:n]
    return Annotations(np.arange(1, n + 1), boxes, np.array([0, 1, 2])[:n], np.array(vis, np.float32), 0, 7)


def test_noise_free_returns_visible_ground_truth():
    clean = DetectionNoise(jitter=0.0, miss_rate=0.0, fp_rate=0.0, min_visibility=0.2, tp_score=(0.9, 0.0))
    d = simulate_detections(_ann(), 320, 240, np.random.default_rng(0), clean)
    # the barely visible object (0.1 < 0.2) is never detected; the others exactly
    np.testing.assert_array_equal(d.boxes, _ann().boxes[:2])
    np.testing.assert_array_equal(d.labels, [0, 1])
    np.testing.assert_allclose(d.scores, 0.9)
    assert d.camera_id == 0 and d.stamp_ns == 7


def test_noise_is_seeded_and_clipped():
    noisy = DetectionNoise(jitter=0.3, fp_rate=5.0)
    a = simulate_detections(_ann(), 64, 48, np.random.default_rng(3), noisy)
    b = simulate_detections(_ann(), 64, 48, np.random.default_rng(3), noisy)
    np.testing.assert_array_equal(a.boxes, b.boxes)
    assert (a.boxes[:, [0, 2]] <= 64).all() and (a.boxes[:, [1, 3]] <= 48).all() and (a.boxes >= 0).all()


@pytest.mark.parametrize("field, value", [("jitter", -1.0), ("miss_rate", 1.5), ("num_classes", 0)])
def test_bad_noise_named(field, value):
    with pytest.raises(ValueError, match=field):
        DetectionNoise(**{field: value})
