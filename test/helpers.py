"""Helpers shared by tests (importable as ``helpers``: pytest puts test/ on sys.path)."""

from __future__ import annotations

import pytest


def have_ros() -> bool:
    try:
        import rclpy  # noqa: F401

        from depthtracker_msgs.msg import TrackArray  # noqa: F401
    except Exception:  # noqa: BLE001 - any import failure means the same: no usable ROS here
        return False
    return True


requires_ros = pytest.mark.skipif(not have_ros(), reason="rclpy / depthtracker_msgs not installed (run make setup)")
