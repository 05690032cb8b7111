"""Declaring ROS parameters from a config dataclass, field for field, with descriptions and ranges."""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Mapping
from typing import Any, TypeVar

from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor
from rclpy.node import Node

from depthtracker.configio import field_docs, from_mapping

T = TypeVar("T")


def declare_from_dataclass(
    node: Node,
    cls: type[T],
    descriptions: Mapping[str, str] | None = None,
    ranges: Mapping[str, tuple[float, float]] | None = None,
    prefix: str = "",
) -> T:
    """Declare one parameter per field of ``cls`` (defaults from the dataclass), read them back, build ``cls``.

    Values given in a params file or on the command line override the defaults; the dataclass validates them, so
    a bad value stops the node at start-up with the dataclass's message naming the parameter.
    """
    descriptions = {**field_docs(cls), **(descriptions or {})}
    ranges = ranges or {}
    defaults = cls()  # type: ignore[call-arg]
    hints = typing.get_type_hints(cls)
    values: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        name = prefix + f.name
        default = getattr(defaults, f.name)
        if isinstance(default, tuple):
            default = list(default)
        desc = ParameterDescriptor(description=descriptions.get(f.name, f.name))
        if f.name in ranges:
            lo, hi = ranges[f.name]
            if hints.get(f.name) is int:
                desc.integer_range = [IntegerRange(from_value=int(lo), to_value=int(hi), step=0)]
            elif hints.get(f.name) is float:
                desc.floating_point_range = [FloatingPointRange(from_value=float(lo), to_value=float(hi), step=0.0)]
        node.declare_parameter(name, default, desc)
        values[f.name] = node.get_parameter(name).value
    return from_mapping(cls, values, f"parameters of node {node.get_name()}")
