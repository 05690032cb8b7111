import numpy as np
from depthtracker.data.calibration import pinhole_calibration, read_camera_info_yaml, stereo_rig


def _yaml(path, tx=0.0, fx=300.0):
    path.write_text(
        "image_width: 320\nimage_height: 240\ncamera_name: c\n"
        f"camera_matrix: {{rows: 3, cols: 3, data: [{fx}, 0, 160, 0, {fx}, 120, 0, 0, 1]}}\n"
        "distortion_model: plumb_bob\ndistortion_coefficients: {rows: 1, cols: 5, data: [0, 0, 0, 0, 0]}\n"
        "rectification_matrix: {rows: 3, cols: 3, data: [1, 0, 0, 0, 1, 0, 0, 0, 1]}\n"
        f"projection_matrix: {{rows: 3, cols: 4, data: [{fx}, 0, 160, {tx}, 0, {fx}, 120, 0, 0, 0, 1, 0]}}\n")
    return path


def test_stereo_rig_from_camera_info_files(tmp_path):
    left = read_camera_info_yaml(_yaml(tmp_path / "l.yaml"))
    right = read_camera_info_yaml(_yaml(tmp_path / "r.yaml", tx=-300.0 * 0.12))
    cam_l, cam_r = stereo_rig(left, right)
    np.testing.assert_allclose(cam_r.T_world_cam[:3, 3], [0.12, 0, 0])
    np.testing.assert_array_equal(cam_l.T_world_cam, np.eye(4))
    assert (cam_l.camera_id, cam_r.camera_id) == (0, 1) and left.camera.width == 320


def test_not_a_stereo_pair(tmp_path):
    a = read_camera_info_yaml(_yaml(tmp_path / "a.yaml"))
    assert stereo_rig(a, a) is None  # no baseline
    other_fx = read_camera_info_yaml(_yaml(tmp_path / "b.yaml", tx=-10.0, fx=310.0))
    assert stereo_rig(a, other_fx) is None  # different K
    assert stereo_rig(a, pinhole_calibration(640, 480, 70)) is None  # different size
