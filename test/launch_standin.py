"""A minimal stand-in for the ``launch`` / ``launch_ros`` API (not on PyPI), enough to evaluate a launch file.

Every class records its constructor arguments; substitutions keep their parts. ``load_launch(path)`` installs the
stand-in modules, imports the file and returns its ``generate_launch_description()``.
"""

from __future__ import annotations

import importlib.util
import sys
import types
from pathlib import Path
from typing import Any


class Recorded:
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.args = args
        self.kwargs = kwargs

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.args}, {self.kwargs})"


def _module(name: str, **classes: type) -> types.ModuleType:
    mod = types.ModuleType(name)
    for k, v in classes.items():
        setattr(mod, k, v)
    return mod


def _cls(name: str) -> type:
    return type(name, (Recorded,), {})


STANDIN = {
    "launch": _module("launch", LaunchDescription=_cls("LaunchDescription")),
    "launch.actions": _module("launch.actions", **{n: _cls(n) for n in (
        "DeclareLaunchArgument", "SetEnvironmentVariable", "IncludeLaunchDescription", "GroupAction",
        "ExecuteProcess", "LogInfo", "TimerAction", "OpaqueFunction")}),
    "launch.conditions": _module("launch.conditions", IfCondition=_cls("IfCondition"),
                                 UnlessCondition=_cls("UnlessCondition")),
    "launch.substitutions": _module("launch.substitutions", **{n: _cls(n) for n in (
        "LaunchConfiguration", "PathJoinSubstitution", "TextSubstitution", "EnvironmentVariable",
        "PythonExpression")}),
    "launch_ros": _module("launch_ros"),
    "launch_ros.actions": _module("launch_ros.actions", Node=_cls("Node"), LifecycleNode=_cls("LifecycleNode"),
                                  PushRosNamespace=_cls("PushRosNamespace")),
    "launch_ros.substitutions": _module("launch_ros.substitutions", FindPackageShare=_cls("FindPackageShare")),
}


def load_launch(path: Path) -> Recorded:
    saved = {k: sys.modules.get(k) for k in STANDIN}
    sys.modules.update(STANDIN)
    try:
        spec = importlib.util.spec_from_file_location(f"launchfile_{path.stem.replace('.', '_')}", path)
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        return mod.generate_launch_description()
    finally:
        for k, v in saved.items():
            if v is None:
                sys.modules.pop(k, None)
            else:
                sys.modules[k] = v


def entities(desc: Recorded, kind: str) -> list[Recorded]:
    return [e for e in desc.args[0] if type(e).__name__ == kind]
