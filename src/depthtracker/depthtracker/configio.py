"""Loading component configs (frozen dataclasses) from the YAML files in ``config/``.

One rule for every component: a YAML mapping fills the fields of the component's dataclass; unknown keys are errors
naming the key, the file and the allowed keys; values are converted to the field's type (lists to tuples) and then
validated by the dataclass's own ``__post_init__``. The same files feed the nodes, training and evaluation.
"""

from __future__ import annotations

import dataclasses
import os
import sys
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

import yaml

T = TypeVar("T")


def config_dir() -> Path:
    """The ``config/`` folder: ``$DEPTHTRACKER_CONFIG_DIR``, else the source checkout's, else the installed share."""
    env = os.environ.get("DEPTHTRACKER_CONFIG_DIR")
    if env:
        return Path(env)
    checkout = Path(__file__).resolve().parents[3] / "config"
    if checkout.is_dir():
        return checkout
    return Path(sys.prefix) / "share" / "depthtracker" / "config"


def _coerce(value: Any, hint: Any, where: str) -> Any:
    origin = typing.get_origin(hint)
    if origin is tuple and isinstance(value, (list, tuple)):
        args = typing.get_args(hint)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_coerce(v, args[0], where) for v in value)
        if args and len(args) != len(value):
            raise ValueError(f"{where}: expected {len(args)} values, got {len(value)}")
        return tuple(_coerce(v, a, where) for v, a in zip(value, args or [Any] * len(value)))
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if hint is int and isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def from_mapping(cls: type[T], data: Mapping[str, Any] | None, source: str = "<mapping>") -> T:
    """Build dataclass ``cls`` from ``data``; unknown keys raise ``ValueError`` naming them and ``source``."""
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise ValueError(f"{source}: expected a mapping of {cls.__name__} fields, got {type(data).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ValueError(f"{source}: unknown key(s) {unknown} for {cls.__name__}; allowed: {sorted(fields)}")
    hints = typing.get_type_hints(cls)
    kwargs = {k: _coerce(v, hints.get(k, Any), f"{source}: {k}") for k, v in data.items()}
    return cls(**kwargs)


def load_yaml(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a YAML mapping; errors name the file."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise ValueError(f"cannot read config file {path}: {exc.strerror}") from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ValueError(f"config file {path} is not valid YAML: {exc}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ValueError(f"config file {path} must hold a mapping at the top level")
    return data


def ros_parameters(data: Mapping[str, Any], source: str = "<mapping>") -> Mapping[str, Any]:
    """The parameter mapping of a ROS 2 params file ``{node_name: {ros__parameters: {...}}}``.

    The files in ``config/`` use this layout so that ``--params-file`` hands them to a node unchanged and the core
    reads the very same values. A plain mapping of fields (no ``ros__parameters``) is returned as it is.
    """
    if len(data) == 1:
        (inner,) = data.values()
        if isinstance(inner, Mapping) and "ros__parameters" in inner:
            extra = sorted(set(inner) - {"ros__parameters"})
            if extra:
                raise ValueError(f"{source}: unexpected key(s) {extra} beside ros__parameters")
            return inner["ros__parameters"] or {}
    return data


def load_config(cls: type[T], path: str | os.PathLike[str] | None = None, name: str | None = None) -> T:
    """Load ``cls`` from a YAML file (default: ``config_dir()/<name>.yaml``), in ROS params layout or plain."""
    if path is None:
        if name is None:
            raise ValueError("load_config needs a path or a config name")
        path = config_dir() / f"{name}.yaml"
    return from_mapping(cls, ros_parameters(load_yaml(path), str(path)), str(path))


def field_docs(cls: type) -> dict[str, str]:
    """Field name -> the trailing ``# comment`` of its line in the dataclass source (the house style puts each
    field's unit and tuning note there), so ROS parameter descriptions and docs need not repeat them."""
    import inspect
    import re

    try:
        lines = inspect.getsource(cls).splitlines()
    except (OSError, TypeError):
        return {}
    names = {f.name for f in dataclasses.fields(cls)}
    out: dict[str, str] = {}
    pattern = re.compile(r"^\s+(\w+)\s*:[^#]*#\s*(.+?)\s*$")
    for line in lines:
        m = pattern.match(line)
        if m and m.group(1) in names and m.group(1) not in out:
            out[m.group(1)] = m.group(2)
    return out
