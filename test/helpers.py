"""Helpers shared by tests (importable as ``helpers``: pytest puts test/ on sys.path)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench"


def have_ros() -> bool:
    try:
        import rclpy  # noqa: F401

        from depthtracker_msgs.msg import TrackArray  # noqa: F401
    except Exception:  # noqa: BLE001 - any import failure means the same: no usable ROS here
        return False
    return True


requires_ros = pytest.mark.skipif(not have_ros(), reason="rclpy / depthtracker_msgs not installed (run make setup)")


def load_bench(monkeypatch: pytest.MonkeyPatch, name: str) -> ModuleType:
    """``bench/NAME.py`` as a module, run as the bench scripts run: bench/ on sys.path (they import their siblings,
    e.g. ``_machine``) and the module registered in sys.modules (its dataclasses resolve annotations there)."""
    monkeypatch.syspath_prepend(str(BENCH))
    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCH / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)
    spec.loader.exec_module(module)
    return module
