import numpy as np
import pytest
from depthtracker.geometry import (
    box_area,
    box_iou,
    clip_boxes,
    cxcyah_to_xyxy,
    cxcywh_to_xyxy,
    intrinsics_from_fov,
    look_at,
    matrix_to_quaternion,
    pixel_rays,
    project_points,
    quaternion_to_matrix,
    xywh_to_xyxy,
    xyxy_to_cxcyah,
    xyxy_to_cxcywh,
    xyxy_to_xywh,
)


def _boxes(n=50, seed=0):
    rng = np.random.default_rng(seed)
    xy = rng.uniform(-50, 600, (n, 2))
    wh = rng.uniform(0.5, 200, (n, 2))
    return np.concatenate([xy, xy + wh], axis=1)


@pytest.mark.parametrize(
    "fwd, inv",
    [(xyxy_to_xywh, xywh_to_xyxy), (xyxy_to_cxcywh, cxcywh_to_xyxy), (xyxy_to_cxcyah, cxcyah_to_xyxy)],
    ids=["xywh", "cxcywh", "cxcyah"],
)
def test_box_round_trip(fwd, inv):
    b = _boxes()
    np.testing.assert_allclose(inv(fwd(b)), b, rtol=0, atol=1e-9)
    np.testing.assert_allclose(inv(fwd(b[0])), b[0], atol=1e-9)  # a single box works too
    assert fwd(b.astype(np.float32)).dtype == np.float32


def test_known_conversions():
    b = np.array([10.0, 20.0, 40.0, 80.0])
    np.testing.assert_array_equal(xyxy_to_xywh(b), [10, 20, 30, 60])
    np.testing.assert_array_equal(xyxy_to_cxcywh(b), [25, 50, 30, 60])
    np.testing.assert_array_equal(xyxy_to_cxcyah(b), [25, 50, 0.5, 60])


def test_iou_cases():
    a = np.array([[0, 0, 10, 10]], float)
    b = np.array([[0, 0, 10, 10], [5, 0, 15, 10], [20, 20, 30, 30], [0, 0, 0, 0]], float)
    np.testing.assert_allclose(box_iou(a, b), [[1.0, 50 / 150, 0.0, 0.0]])
    assert box_iou(np.zeros((0, 4)), b).shape == (0, 4)
    np.testing.assert_allclose(box_area(b), [100, 100, 100, 0])
    np.testing.assert_array_equal(clip_boxes(np.array([[-5, -5, 50, 50]], float), 20, 30), [[0, 0, 20, 30]])


def test_projection_and_rays_agree():
    K = intrinsics_from_fov(80, 60, 70)
    T_wc = look_at(np.array([0.0, 0.0, 1.5]), np.array([5.0, 1.0, 0.5]))
    rays = pixel_rays(K, 80, 60)  # (H, W, 3) with z = 1
    depth = 3.7
    v, u = 17, 41
    p_cam = rays[v, u] * depth
    p_world = T_wc[:3, :3] @ p_cam + T_wc[:3, 3]
    T_cw = np.linalg.inv(T_wc)
    uv, z = project_points(K, T_cw, p_world[None])
    np.testing.assert_allclose(uv[0], [u + 0.5, v + 0.5], atol=1e-9)
    np.testing.assert_allclose(z[0], depth, atol=1e-12)


def test_look_at_is_optical_frame():
    T = look_at(np.array([0.0, 0.0, 1.0]), np.array([1.0, 0.0, 1.0]))
    R = T[:3, :3]
    np.testing.assert_allclose(R.T @ R, np.eye(3), atol=1e-12)
    np.testing.assert_allclose(R[:, 2], [1, 0, 0], atol=1e-12)  # z forward
    np.testing.assert_allclose(R[:, 1], [0, 0, -1], atol=1e-12)  # y down
    np.testing.assert_allclose(R[:, 0], [0, -1, 0], atol=1e-12)  # x right (world -y when looking along +x)


def test_quaternion_round_trip():
    rng = np.random.default_rng(1)
    for _ in range(100):
        q = rng.normal(size=4)
        q /= np.linalg.norm(q)
        R = quaternion_to_matrix(q)
        q2 = matrix_to_quaternion(R)
        np.testing.assert_allclose(quaternion_to_matrix(q2), R, atol=1e-12)
        np.testing.assert_allclose(np.abs(q2 @ q), 1.0, atol=1e-12)
