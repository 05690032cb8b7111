"""A minimal stand-in for the ``launch`` / ``launch_ros`` API (not on PyPI), enough to evaluate a launch file.

Every class records its constructor arguments; substitutions keep their parts. ``load_launch(path)`` installs the
stand-in modules, imports the file and returns its ``generate_launch_description()``. ``entities()`` runs the
``OpaqueFunction``s of a description with a context holding the declared arguments' defaults (``LaunchConfiguration
.perform`` reads them), so the actions they return are checked like the others.
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


class LaunchConfiguration(Recorded):
    def perform(self, context: StandinContext) -> str:
        return context.launch_configurations[self.args[0]]


class StandinContext:
    """What an ``OpaqueFunction`` gets: ``launch_configurations`` maps argument names to their values (strings)."""

    def __init__(self, launch_configurations: dict[str, str]) -> None:
        self.launch_configurations = launch_configurations


STANDIN = {
    "launch": _module("launch", LaunchDescription=_cls("LaunchDescription")),
    "launch.actions": _module("launch.actions", **{n: _cls(n) for n in (
        "DeclareLaunchArgument", "SetEnvironmentVariable", "IncludeLaunchDescription", "GroupAction",
        "ExecuteProcess", "LogInfo", "TimerAction", "OpaqueFunction")}),
    "launch.conditions": _module("launch.conditions", IfCondition=_cls("IfCondition"),
                                 UnlessCondition=_cls("UnlessCondition")),
    "launch.substitutions": _module("launch.substitutions", LaunchConfiguration=LaunchConfiguration, **{
        n: _cls(n) for n in ("PathJoinSubstitution", "TextSubstitution", "EnvironmentVariable", "PythonExpression")}),
    "launch_ros": _module("launch_ros"),
    "launch_ros.actions": _module("launch_ros.actions", Node=_cls("Node"), LifecycleNode=_cls("LifecycleNode"),
                                  PushRosNamespace=_cls("PushRosNamespace")),
    "launch_ros.substitutions": _module("launch_ros.substitutions", FindPackageShare=_cls("FindPackageShare")),
    "launch_ros.parameter_descriptions": _module("launch_ros.parameter_descriptions",
                                                 ParameterValue=_cls("ParameterValue"),
                                                 ParameterFile=_cls("ParameterFile")),
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


def declared_defaults(desc: Recorded) -> dict[str, Any]:
    """Argument name -> its ``default_value`` as declared (a string or a recorded substitution)."""
    return {e.args[0]: e.kwargs.get("default_value") for e in desc.args[0]
            if type(e).__name__ == "DeclareLaunchArgument"}


def expanded(desc: Recorded, overrides: dict[str, str] | None = None) -> list[Recorded]:
    """The description's actions with every ``OpaqueFunction`` replaced by what it returns, run with the declared
    defaults (string defaults as they are, substitutions as their repr) updated by ``overrides``."""
    values = {k: v if isinstance(v, str) else repr(v) for k, v in declared_defaults(desc).items()}
    context = StandinContext({**values, **(overrides or {})})
    out: list[Recorded] = []
    for e in desc.args[0]:
        if type(e).__name__ == "OpaqueFunction":
            out.extend(e.kwargs["function"](context) or [])
        else:
            out.append(e)
    return out


def entities(desc: Recorded, kind: str, overrides: dict[str, str] | None = None) -> list[Recorded]:
    return [e for e in expanded(desc, overrides) if type(e).__name__ == kind]
