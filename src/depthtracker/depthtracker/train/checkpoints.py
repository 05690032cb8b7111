"""Checkpoints as safetensors plus a JSON sidecar; resumable training state the same way. Nothing is ever pickled.

Usage::

    save_checkpoint("runs/det/last", model, config=asdict(model_cfg), manifest=dataset.manifest(),
                    metrics={"map50": 0.61})
    state_dict, sidecar = load_checkpoint("runs/det/last.safetensors")
    model = build_model(sidecar["model_config"]); model.load_state_dict(state_dict)

    save_train_state("runs/det/last", optimizer=opt, scheduler=sched, epoch=3, step=1200, ema=ema.state_dict())
    state = load_train_state("runs/det/last", optimizer=opt, scheduler=sched)   # restores them, returns the rest

Files for a checkpoint ``NAME``:

* ``NAME.safetensors``: the model ``state_dict`` (tensors moved to CPU; tied tensors stored once each as copies).
* ``NAME.json``: ``format``, ``model_config``, ``data_manifest``, ``metrics``, ``extra``, ``git_revision``
  (``git rev-parse HEAD`` of the source checkout, or ``"unknown"``), ``git_dirty``, ``torch_version``,
  ``depthtracker_version``, ``created_utc``, ``weights_file`` and ``weights_sha256`` (a sidecar paired with
  other weights is detected on load).
* ``NAME.state.safetensors`` + ``NAME.state.json``: optimizer, scheduler, EMA, epoch/step and RNG states. Nested
  state dicts are flattened: every tensor goes to safetensors under a generated key, the structure (dicts with int
  or str keys, lists, tuples, numbers, strings) goes to JSON with ``{"__tensor__": key}`` where a tensor was.

Each file is written to a temporary name and renamed into place, weights before sidecar, so a sidecar that exists
describes complete weights. Every load error is a ``CheckpointError`` (a ``ValueError``) naming the file.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import random
import subprocess
from collections.abc import Mapping
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from depthtracker.machine import machine_info

__all__ = ["CheckpointError", "save_checkpoint", "load_checkpoint", "save_train_state", "load_train_state",
           "checkpoint_paths", "git_revision", "rng_state", "set_rng_state"]

FORMAT = "depthtracker-checkpoint/1"
STATE_FORMAT = "depthtracker-train-state/1"


class CheckpointError(ValueError):
    """A checkpoint cannot be written or read; the message names the file."""


def checkpoint_paths(path: str | os.PathLike[str]) -> tuple[Path, Path]:
    """``(NAME.safetensors, NAME.json)`` for ``NAME``, ``NAME.safetensors`` or ``NAME.json``."""
    p = Path(path)
    if p.suffix in (".safetensors", ".json"):
        p = p.with_suffix("")
    return p.with_name(p.name + ".safetensors"), p.with_name(p.name + ".json")


def _state_paths(path: str | os.PathLike[str]) -> tuple[Path, Path]:
    weights, _ = checkpoint_paths(path)
    base = weights.with_suffix("")
    if base.suffix == ".state":
        base = base.with_suffix("")
    return base.with_name(base.name + ".state.safetensors"), base.with_name(base.name + ".state.json")


def git_revision() -> dict[str, Any]:
    """``{"git_revision": sha or "unknown", "git_dirty": bool or None}`` of the checkout holding this package."""
    here = Path(__file__).resolve().parent
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=10,
                             check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=here,
                               capture_output=True, text=True, timeout=10, check=True).stdout.strip() != ""
        return {"git_revision": sha, "git_dirty": dirty}
    except (OSError, subprocess.SubprocessError):
        return {"git_revision": "unknown", "git_dirty": None}


def _jsonable(value: Any, where: str) -> Any:
    """Plain JSON types from dataclasses, tuples, paths, numpy scalars and 0-d tensors; errors name ``where``."""
    if is_dataclass(value) and not isinstance(value, type):
        return _jsonable(asdict(value), where)
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v, f"{where}.{k}") for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, (str, bool, int, float)) or value is None:
        return value
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        return value.item()
    raise CheckpointError(f"{where} holds a {type(value).__name__}, which a JSON sidecar cannot store")


def _atomic_write(path: Path, write: Any) -> None:
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _tensors_for_file(tensors: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """CPU, contiguous, no two entries sharing memory (safetensors refuses shared storage, e.g. tied weights)."""
    out: dict[str, torch.Tensor] = {}
    seen: set[int] = set()
    for k, v in tensors.items():
        t = v.detach().cpu().contiguous()
        if t.numel():
            storage = t.untyped_storage()
            if storage.data_ptr() in seen or t.numel() * t.element_size() != storage.nbytes():
                t = t.clone()  # shares memory with another entry, or is a view into a larger buffer
            seen.add(t.untyped_storage().data_ptr())
        out[k] = t
    return out


def _write_pair(weights: Path, sidecar: Path, tensors: Mapping[str, torch.Tensor], meta: dict[str, Any]) -> None:
    weights.parent.mkdir(parents=True, exist_ok=True)
    data = _tensors_for_file(tensors)
    _atomic_write(weights, lambda p: save_file(data, str(p), metadata={"format": "pt"}))
    meta = dict(meta, weights_file=weights.name, weights_sha256=_sha256(weights))
    text = json.dumps(meta, indent=2, sort_keys=True, allow_nan=True)
    _atomic_write(sidecar, lambda p: p.write_text(text + "\n"))


def _read_pair(weights: Path, sidecar: Path, what: str) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    for p in (weights, sidecar):
        if not p.is_file():
            raise CheckpointError(f"{what} file {p} does not exist")
    try:
        meta = json.loads(sidecar.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{what} sidecar {sidecar} is not valid JSON ({exc}); the checkpoint is corrupt") from exc
    if not isinstance(meta, dict):
        raise CheckpointError(f"{what} sidecar {sidecar} must hold a JSON object")
    want = meta.get("weights_sha256")
    if want is not None and _sha256(weights) != want:
        raise CheckpointError(f"{what} weights {weights} do not match their sidecar {sidecar} (sha256 differs); "
                              "the pair is corrupt or mixed up")
    try:
        tensors = load_file(str(weights))
    except Exception as exc:  # noqa: BLE001 - safetensors raises SafetensorError, OSError, ...; all mean corrupt
        raise CheckpointError(f"{what} weights {weights} cannot be read ({exc}); the file is corrupt") from exc
    return tensors, meta


def save_checkpoint(path: str | os.PathLike[str], model: torch.nn.Module | Mapping[str, torch.Tensor],
                    config: Mapping[str, Any] | Any, manifest: Mapping[str, Any] | None = None,
                    metrics: Mapping[str, Any] | None = None, extra: Mapping[str, Any] | None = None) -> Path:
    """Write ``NAME.safetensors`` + ``NAME.json`` (``path`` is NAME, NAME.safetensors or NAME.json).

    ``model`` is a module (DDP wrappers are unwrapped) or a state dict; ``config`` the model config (a mapping or a
    dataclass) that rebuilds it. Returns the weights path.
    """
    weights, sidecar = checkpoint_paths(path)
    if isinstance(model, torch.nn.Module):
        model = getattr(model, "module", model)
        state = model.state_dict()
    else:
        state = dict(model)
    bad = [k for k, v in state.items() if not isinstance(v, torch.Tensor)]
    if bad:
        raise CheckpointError(f"cannot save {weights}: state entries {bad[:5]} are not tensors")
    import depthtracker

    meta = {
        "format": FORMAT,
        "model_config": _jsonable(config, "config"),
        "data_manifest": _jsonable(manifest or {}, "manifest"),
        "metrics": _jsonable(metrics or {}, "metrics"),
        "extra": _jsonable(extra or {}, "extra"),
        **git_revision(),
        "torch_version": torch.__version__,
        "depthtracker_version": depthtracker.__version__,
        "machine": machine_info(),  # the CPU and kernel settings: another CPU trains other weights from the seed
        "created_utc": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    }
    _write_pair(weights, sidecar, state, meta)
    return weights


def load_checkpoint(path: str | os.PathLike[str]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """``(state_dict, sidecar)`` of a checkpoint written by ``save_checkpoint`` (tensors on CPU)."""
    weights, sidecar = checkpoint_paths(path)
    tensors, meta = _read_pair(weights, sidecar, "checkpoint")
    if meta.get("format") != FORMAT:
        raise CheckpointError(f"checkpoint sidecar {sidecar} has format {meta.get('format')!r}, expected {FORMAT!r}")
    return tensors, meta


# The model families a checkpoint can hold: (module of the config dataclass, its name, the shipped checkpoint,
# the command that trains one). The sidecar does not name its family: the model_config's fields tell them apart.
_FAMILIES = {
    "DepthTrack": ("depthtracker.models.depthtrack.config", "DepthTrackConfig", "models/depthtrack-edge.safetensors",
                   "depthtracker train depthtrack"),
    "HSV-DET": ("depthtracker.models.hsvdet.config", "HSVDetConfig", "models/hsvdet-n.safetensors",
                "depthtracker train hsvdet"),
}


def model_config(sidecar: Mapping[str, Any], path: str | os.PathLike[str], family: str) -> Any:
    """The sidecar's ``model_config`` as ``family``'s config dataclass (``"DepthTrack"`` or ``"HSV-DET"``).

    A checkpoint of the other family (a depth checkpoint given where the detector's belongs, or the reverse) is
    a ``CheckpointError`` that says so and names the checkpoint to pass instead."""
    import dataclasses
    import importlib

    def config_class(name: str) -> type:
        module, cls, _, _ = _FAMILIES[name]
        return getattr(importlib.import_module(module), cls)

    data = sidecar.get("model_config")
    if not isinstance(data, Mapping) or not data:
        raise CheckpointError(f"checkpoint {path}: its sidecar has no model_config; was it written by "
                              f"`{_FAMILIES[family][3]}`?")
    keys = set(data)
    fields = {name: {f.name for f in dataclasses.fields(config_class(name)) if f.init} for name in _FAMILIES}
    other = next((name for name in _FAMILIES if name != family and keys <= fields[name]), None)
    if not keys <= fields[family] and other is not None:
        raise CheckpointError(f"checkpoint {path} holds the {other} model, not {family}: pass a checkpoint of "
                              f"{family} ({_FAMILIES[family][2]}, or one written by `{_FAMILIES[family][3]}`)")
    return config_class(family).from_dict(dict(data))


# -- nested state <-> (tensors, JSON) ------------------------------------------------------------------------
def _flatten(obj: Any, tensors: dict[str, torch.Tensor], where: str) -> Any:
    if isinstance(obj, torch.Tensor):
        key = f"t{len(tensors)}"
        tensors[key] = obj
        return {"__tensor__": key}
    if isinstance(obj, np.ndarray):
        return _flatten(torch.from_numpy(np.ascontiguousarray(obj)), tensors, where)
    if isinstance(obj, Mapping):
        for k in obj:
            if isinstance(k, bool) or not isinstance(k, (int, str)):
                raise CheckpointError(f"training state {where} has a {type(k).__name__} key {k!r}; only int/str")
        return {"__dict__": [[k, _flatten(v, tensors, f"{where}.{k}")] for k, v in obj.items()]}
    if isinstance(obj, tuple):
        return {"__tuple__": [_flatten(v, tensors, f"{where}[{i}]") for i, v in enumerate(obj)]}
    if isinstance(obj, list):
        return [_flatten(v, tensors, f"{where}[{i}]") for i, v in enumerate(obj)]
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, (str, bool, int, float)) or obj is None:
        return obj
    raise CheckpointError(f"training state {where} holds a {type(obj).__name__}, which cannot be stored without "
                          "pickle; keep state dicts to tensors, numbers, strings, lists, tuples and dicts")


def _unflatten(obj: Any, tensors: Mapping[str, torch.Tensor]) -> Any:
    if isinstance(obj, dict):
        if "__tensor__" in obj:
            return tensors[obj["__tensor__"]]
        if "__dict__" in obj:
            return {k: _unflatten(v, tensors) for k, v in obj["__dict__"]}
        if "__tuple__" in obj:
            return tuple(_unflatten(v, tensors) for v in obj["__tuple__"])
    if isinstance(obj, list):
        return [_unflatten(v, tensors) for v in obj]
    return obj


def rng_state() -> dict[str, Any]:
    """Python, NumPy (global) and torch (CPU and every CUDA device) RNG states."""
    py = random.getstate()
    np_state = np.random.get_state()  # noqa: NPY002 - the global RNG is what third-party code draws from
    return {
        "python": [py[0], list(py[1]), py[2]],
        "numpy": [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), int(np_state[2]), int(np_state[3]),
                  float(np_state[4])],
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def set_rng_state(state: Mapping[str, Any]) -> None:
    """Restore what ``rng_state`` returned."""
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    n = state["numpy"]
    np.random.set_state((n[0], n[1].numpy().astype(np.uint32), n[2], n[3], n[4]))  # noqa: NPY002
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_train_state(path: str | os.PathLike[str], *, optimizer: torch.optim.Optimizer | None = None,
                     scheduler: Any = None, epoch: int = 0, step: int = 0, ema: Mapping[str, Any] | None = None,
                     model: torch.nn.Module | None = None, extra: Mapping[str, Any] | None = None) -> Path:
    """Write ``NAME.state.safetensors`` + ``NAME.state.json`` with everything needed to resume (RNG included).

    ``model`` (optional) stores the raw training weights too, for when the main checkpoint holds EMA weights.
    Returns the state weights path.
    """
    weights, sidecar = _state_paths(path)
    state = {
        "optimizer": optimizer.state_dict() if optimizer is not None else None,
        "scheduler": scheduler.state_dict() if scheduler is not None else None,
        "ema": dict(ema) if ema is not None else None,
        "model": getattr(model, "module", model).state_dict() if model is not None else None,
        "rng": rng_state(),
        "extra": dict(extra or {}),
    }
    tensors: dict[str, torch.Tensor] = {}
    skeleton = _flatten(state, tensors, "state")
    meta = {"format": STATE_FORMAT, "epoch": int(epoch), "step": int(step), "state": skeleton,
            "torch_version": torch.__version__,
            "created_utc": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")}
    _write_pair(weights, sidecar, tensors, meta)
    return weights


def load_train_state(path: str | os.PathLike[str], *, optimizer: torch.optim.Optimizer | None = None,
                     scheduler: Any = None, restore_rng: bool = True) -> dict[str, Any]:
    """Read a training state; load it into ``optimizer`` and ``scheduler`` (when given) and restore the RNGs.

    Returns ``{"epoch", "step", "ema", "model", "extra", "optimizer", "scheduler"}`` (state dicts or None).
    """
    weights, sidecar = _state_paths(path)
    tensors, meta = _read_pair(weights, sidecar, "training state")
    if meta.get("format") != STATE_FORMAT:
        raise CheckpointError(f"training state {sidecar} has format {meta.get('format')!r}, expected {STATE_FORMAT!r}")
    try:
        state = _unflatten(meta["state"], tensors)
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"training state {sidecar} does not match {weights} ({exc!r})") from exc
    try:
        if optimizer is not None:
            if state["optimizer"] is None:
                raise CheckpointError(f"training state {sidecar} holds no optimizer state")
            optimizer.load_state_dict(state["optimizer"])
        if scheduler is not None and state["scheduler"] is not None:
            scheduler.load_state_dict(state["scheduler"])
    except (KeyError, ValueError, RuntimeError) as exc:
        if isinstance(exc, CheckpointError):
            raise
        raise CheckpointError(f"training state {sidecar} does not fit this optimizer/scheduler ({exc})") from exc
    if restore_rng:
        set_rng_state(state["rng"])
    return {"epoch": int(meta["epoch"]), "step": int(meta["step"]), **{k: state[k] for k in
            ("ema", "model", "extra", "optimizer", "scheduler")}}
