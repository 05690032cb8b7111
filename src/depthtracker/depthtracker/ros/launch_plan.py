"""The perception graph as data: ``config/graph.yaml`` + overrides -> the command lines of its processes.

``GraphSpec`` mirrors the launch arguments of ``launch/perception.launch.py`` field for field (``config/graph.yaml``
holds their defaults); ``LaunchPlan`` adds what ``depthtracker launch`` can change on top (camera sources, a bag to
record, parameter overrides) and ``LaunchPlan.children()`` turns it into one ``Child`` per process: the nodes
(``python -m depthtracker.ros.<module> --ros-args ...``, as ``ros2 launch`` would run their console scripts), the bag
player replacing the ingest node for ``--camera bag:PATH``, and the recorder for ``--record``.

Pure: no process is started and no ROS module is imported (``depthtracker.ros.launcher`` runs the plan). Reading the
camera count does open files: the synthetic world's YAML, or the bag (read once per plan).

Parameters files and namespaces: rcl applies a params-file entry keyed by a bare node name (``tracking:``) only to
that node in the root namespace. Under a namespace such a file is handed to the node as a copy keyed
``/**/<node>`` (written by the launcher before the node starts; ``Child.files``), so its values are not silently
lost; files keyed ``/**/<node>`` (``config/cameras.yaml``) or ``/**`` are passed unchanged.
"""

from __future__ import annotations

import dataclasses
import functools
import re
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from depthtracker.configio import config_dir, from_mapping, load_yaml

__all__ = ["GraphSpec", "LaunchPlan", "Child", "load_graph", "make_plan", "NODES", "PLAY_DELAY_S", "PLAYED_LINE",
           "RECORD_WAIT_S"]

NODES = ("ingest", "perception", "tracking")
MODULES = {"ingest": "depthtracker.ros.ingest", "perception": "depthtracker.ros.perception_node",
           "tracking": "depthtracker.ros.tracking_node"}
PLAY_DELAY_S = 2.0  # the player waits this long before its first message, so the nodes can subscribe
RECORD_WAIT_S = 30.0  # the recorder waits this long for every topic to appear (the perception node loads weights)
# The player waits this long (at most) for the recorder and the perception node to subscribe to every camera topic.
PLAY_WAIT_S = RECORD_WAIT_S + 10.0
_PLAYED_TOPIC = re.compile(r"^(/cam\d+/(image_raw|camera_info)|/tf_static)$")  # what a bag source publishes
PLAYED_LINE = "played the whole bag"  # what `depthtracker play` logs once the bag is out, before its teardown
STAGE_SOURCES, STAGE_NODES, STAGE_RECORD = 0, 1, 2  # shutdown order: sources first, the recorder last

_NAMESPACE = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*(/[A-Za-z_][A-Za-z0-9_]*)*)?$")
_DEVICE = re.compile(r"^(auto|cpu|cuda(:\d+)?)$")
_PATH_FIELDS = ("params_file", "tracking_params", "cameras_config")


@dataclass(frozen=True)
class GraphSpec:
    """The launch arguments of ``launch/perception.launch.py`` (``config/graph.yaml``).

    Relative params-file paths are taken in ``config_dir()`` (``load_graph`` makes them relative to the YAML's
    folder first), so ``GraphSpec()`` is the default graph on the installed config.
    """

    namespace: str = ""  # namespace of every node and relative topic ("" = root; "/rig/" is read as "rig")
    params_file: Path = Path("perception.yaml")  # perception node params file
    tracking_params: Path = Path("tracking.yaml")  # tracking node params file
    cameras_config: Path = Path("cameras.yaml")  # ingest node params file
    device: str = "auto"  # perception device: auto | cpu | cuda | cuda:N
    use_sim_time: bool = False  # every node follows /clock (the bag player then publishes it)
    enable_ingest: bool = True
    enable_perception: bool = True
    enable_tracking: bool = True
    respawn: bool = True  # restart a node that exits unexpectedly
    respawn_delay: float = 1.0  # wait before a restart, s (>= 0)

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name in _PATH_FIELDS:
                if not isinstance(value, (str, Path)) or not str(value):
                    raise ValueError(f"graph {f.name} must be a file path, got {value!r}")
                object.__setattr__(self, f.name, config_dir() / value)  # an absolute path stays as it is
            elif f.type in ("bool", bool) and not isinstance(value, bool):
                raise ValueError(f"graph {f.name} must be true or false, got {value!r}")
        if not isinstance(self.namespace, str) or not _NAMESPACE.match(self.namespace.strip("/")):
            raise ValueError(f"graph namespace must be empty or names like rig or robot1/front joined by '/', "
                             f"got {self.namespace!r}")
        object.__setattr__(self, "namespace", self.namespace.strip("/"))
        if not isinstance(self.device, str) or not _DEVICE.match(self.device):
            raise ValueError(f"graph device must be auto, cpu, cuda or cuda:N, got {self.device!r}")
        if isinstance(self.respawn_delay, bool) or not isinstance(self.respawn_delay, (int, float)) or not (
                0.0 <= self.respawn_delay <= 3600.0):
            raise ValueError(f"graph respawn_delay must be seconds in [0, 3600], got {self.respawn_delay!r}")
        object.__setattr__(self, "respawn_delay", float(self.respawn_delay))

    def topic(self, name: str) -> str:
        """The absolute name of relative topic ``name`` in this graph's namespace."""
        return f"/{self.namespace}/{name}" if self.namespace else f"/{name}"


def load_graph(path: str | Path | None = None) -> GraphSpec:
    """``GraphSpec`` from a graph YAML (default ``config_dir()/graph.yaml``); relative paths in it are resolved
    against the file's folder. Unknown keys, bad values and a missing file raise ``ValueError`` naming the file."""
    path = Path(path) if path is not None else config_dir() / "graph.yaml"
    data = load_yaml(path)
    base = path.resolve().parent
    data.update({k: str(base / data[k]) for k in _PATH_FIELDS if isinstance(data.get(k), str) and data[k]})
    return from_mapping(GraphSpec, data, str(path))


@dataclass(frozen=True)
class Child:
    """One process of the graph."""

    name: str  # ingest | perception | tracking | play | record: the [name] prefix of its output lines
    argv: tuple[str, ...]
    stage: int  # shutdown order (STAGE_*): lower stops first
    respawn: bool  # restarted after an unexpected exit (nodes of a graph with respawn on)
    files: tuple[tuple[Path, str], ...] = ()  # (path, text) to write before it first starts (namespaced params)
    # A line (its start) the child prints when its work is done; from then on it has ``exit_grace_s`` to exit, after
    # which the launcher kills it and counts it as finished (the player: a blocked DDS teardown must not hold the
    # graph). None: no such line.
    done_line: str | None = None
    exit_grace_s: float = 15.0
    # It prints its threads' stacks on the launcher's STACK_DUMP_SIGNAL (our nodes and CLI: enable_stack_dumps); the
    # signal's default action would end any other process.
    stack_dump: bool = False
    # It writes a heartbeat from its executor when HEARTBEAT_ENV names a file (our nodes: ros.runtime.run_node), so
    # the launcher's watchdog can tell a stuck node from a busy one.
    heartbeat: bool = False


@dataclass(frozen=True)
class _BagContents:
    camera_ids: tuple[int, ...]
    played_topics: tuple[str, ...]  # camera inputs and /tf_static
    rig_yaml: str  # the recorded rig's extrinsics file ("" when the perception node is off)


@dataclass(frozen=True)
class LaunchPlan:
    """A graph plus the overrides of ``depthtracker launch``; ``children()`` gives the processes to run."""

    graph: GraphSpec
    cameras: tuple[str, ...] = ()  # camera SPECs (video:PATH, folder:DIR, v4l2:DEVICE, synth, bag:PATH); () = file's
    record: Path | None = None  # record outputs + camera inputs into this new bag
    set_params: tuple[str, ...] = ()  # NODE:NAME=VALUE parameter overrides (VALUE in YAML, as `-p NAME:=VALUE`)
    python: str = field(default=sys.executable)  # interpreter of the children

    def __post_init__(self) -> None:
        object.__setattr__(self, "cameras", tuple(self.cameras))
        object.__setattr__(self, "set_params", tuple(self.set_params))
        bags = [c for c in self.cameras if c.startswith("bag:")]
        if bags and len(self.cameras) > 1:
            raise ValueError(f"--camera bag:PATH replays a whole recorded rig and cannot be mixed with other "
                             f"cameras, got {list(self.cameras)}")
        if bags and not bags[0][4:]:
            raise ValueError("--camera bag:PATH needs a bag path")
        if bags and self.graph.namespace:
            # The player publishes the bag's topic names as recorded (/camN/...); they would miss a namespaced graph.
            raise ValueError(f"--camera bag:PATH plays the recorded topic names, which a graph in namespace "
                             f"{self.graph.namespace!r} does not subscribe to: launch it without a namespace")
        if not bags:
            from depthtracker.data.sources import parse_source_spec

            kinds = [parse_source_spec(c).kind for c in self.cameras]  # ValueError naming a malformed spec
            if "synth" in kinds and len(kinds) > 1:
                raise ValueError(f"--camera synth stands alone (it is a whole rig), got {list(self.cameras)}")
        for name, _, _ in self.overrides():
            if name == "ingest" and self.bag is not None:
                raise ValueError("--set-param ingest:...: with --camera bag:PATH the ingest node does not run")
            if not getattr(self.graph, f"enable_{name}"):
                raise ValueError(f"--set-param {name}:...: the {name} node is not enabled in this graph")

    @property
    def bag(self) -> Path | None:
        """The bag replayed in place of the ingest node (``--camera bag:PATH``), else None."""
        return Path(self.cameras[0][4:]) if self.cameras and self.cameras[0].startswith("bag:") else None

    def overrides(self) -> list[tuple[str, str, str]]:
        """``set_params`` parsed: ``(node, name, value)``; ``ValueError`` naming a malformed or unknown one."""
        out = []
        for item in self.set_params:
            node, sep, rest = item.partition(":")
            name, eq, value = rest.partition("=")
            if not sep or not eq or node not in NODES or not re.match(r"^[A-Za-z_][\w.]*$", name):
                raise ValueError(f"--set-param takes NODE:NAME=VALUE with NODE one of {list(NODES)}, got {item!r}")
            out.append((node, name, value))
        return out

    # -- cameras ---------------------------------------------------------------------------------------------------
    def ingest_parameters(self) -> dict[str, Any]:
        """The ingest node's parameters as it will see them: its params file, then --set-param, then --camera."""
        params = dict(node_parameters(self.graph.cameras_config, "ingest"))
        params.update({n: yaml.safe_load(v) for node, n, v in self.overrides() if node == "ingest"})
        if self.cameras:
            params["cameras"] = list(self.cameras)
        return params

    def camera_ids(self) -> list[int]:
        """The ids N of the cameras publishing ``camN/*``: the bag's, the synthetic rig's, or one per source SPEC."""
        if self.bag is not None:
            return list(self._bag_contents.camera_ids)
        params = self.ingest_parameters()
        specs = params.get("cameras", ["synth"])
        if not isinstance(specs, list) or not specs:
            raise ValueError(f"ingest parameter cameras must be a list of source SPECs, got {specs!r}")
        if specs != ["synth"]:
            return list(range(len(specs)))
        from depthtracker.configio import load_config
        from depthtracker.data.synth import SynthConfig

        path = params.get("synth_config") or config_dir() / "synth.yaml"
        return list(range(load_config(SynthConfig, path).cameras))

    def record_topics(self) -> list[str]:
        """What ``--record`` records: the camera inputs (so the bag replays) and the outputs of the enabled nodes."""
        g = self.graph
        topics = [g.topic(f"cam{i}/{kind}") for i in self.camera_ids() for kind in ("image_raw", "camera_info")]
        if g.enable_perception:
            topics += [g.topic(t) for t in ("depth_heatmap", "detections", "target/measurement")]
        if g.enable_tracking:
            topics.append(g.topic("tracks"))
        return topics

    def played_topics(self) -> list[str]:
        """What the player of ``--camera bag:PATH`` publishes: the bag's camera inputs and ``/tf_static``, never the
        outputs a recorded graph stored beside them (the running nodes publish those afresh)."""
        return [] if self.bag is None else list(self._bag_contents.played_topics)

    @functools.cached_property
    def _bag_contents(self) -> _BagContents:
        """What the plan needs from ``--camera bag:PATH``, read once (the bag may be large and on slow storage)."""
        from depthtracker.data.bags import BagReader
        from depthtracker.data.extrinsics import rig_file_text

        assert self.bag is not None
        with BagReader(self.bag) as reader:  # BagError (a ValueError) names a missing or broken bag
            played = tuple(sorted(t for t in reader.topics if _PLAYED_TOPIC.match(t)))
            rig = rig_file_text(reader.cameras) if self.graph.enable_perception else ""  # only the model reads it
            return _BagContents(tuple(reader.camera_ids), played, rig)

    # -- processes -------------------------------------------------------------------------------------------------
    def children(self, rundir: Path | None = None) -> list[Child]:
        """The processes, in start order (the recorder first, the sources last). ``rundir`` is where the namespaced
        params copies go (``Child.files``; the launcher passes a fresh temporary folder)."""
        g = self.graph
        rundir = Path(rundir) if rundir is not None else Path(tempfile.gettempdir()) / "depthtracker-launch"
        sim = "true" if g.use_sim_time else "false"
        out: list[Child] = []
        if self.record is not None and self.record.exists():
            raise ValueError(f"--record: {self.record} already exists: choose another path or delete it first")
        if self.record is not None:
            out.append(Child("record", (self.python, "-m", "depthtracker.cli", "record", "--out", str(self.record),
                                        "--topics", *self.record_topics(), "--wait", f"{RECORD_WAIT_S:g}"),
                             STAGE_RECORD, False, stack_dump=True))
        n_cameras = len(self.camera_ids()) if g.enable_perception else 0
        rig_files: tuple[tuple[Path, str], ...] = ()
        perception_extra = [f"device:={g.device}", f"cameras:={n_cameras}", "autostart:=true"]
        if self.bag is not None and g.enable_perception:
            # the recorded rig's poses (its /tf_static, read by rosbags) for the model's camera embedding
            rig_files = ((rundir / "rig.yaml", self._bag_contents.rig_yaml),)
            perception_extra.append(f"extrinsics:={rundir / 'rig.yaml'}")
        extra = {
            "perception": perception_extra,
            "tracking": [],
            "ingest": ([f"cameras:={_yaml_list(self.cameras)}"] if self.cameras and self.bag is None else []),
        }
        params_files = {"perception": g.params_file, "tracking": g.tracking_params, "ingest": g.cameras_config}
        for name in ("perception", "tracking", "ingest"):
            if not getattr(g, f"enable_{name}") or (name == "ingest" and self.bag is not None):
                continue
            path, files = _params_for(params_files[name], name, g.namespace, rundir)
            argv = [self.python, "-m", MODULES[name], "--ros-args", "-r", f"__node:={name}"]
            if g.namespace:
                argv += ["-r", f"__ns:=/{g.namespace}"]
            argv += ["--params-file", str(path), "-p", f"use_sim_time:={sim}"]
            for p in extra[name] + [f"{n}:={v}" for node, n, v in self.overrides() if node == name]:
                argv += ["-p", p]  # after --params-file: the later assignment wins
            if name == "perception":
                files = files + rig_files
            out.append(Child(name, tuple(argv), STAGE_SOURCES if name == "ingest" else STAGE_NODES, g.respawn,
                             files, stack_dump=True, heartbeat=True))
        if self.bag is not None:
            argv = [self.python, "-m", "depthtracker.cli", "play", str(self.bag), "--delay", f"{PLAY_DELAY_S:g}",
                    "--topics", *self.played_topics()]
            # The first set must reach the recorder and the perception node: wait for both to subscribe.
            subscribers = int(self.record is not None) + int(g.enable_perception)
            if subscribers:
                argv += ["--wait-subscribers", f"{PLAY_WAIT_S:g}", "--subscribers", str(subscribers)]
            if g.enable_perception:  # ... and for the perception node to hear the player from its side
                argv += ["--wait-perception"]
            out.append(Child("play", tuple(argv + (["--clock"] if g.use_sim_time else [])), STAGE_SOURCES, False,
                             done_line=PLAYED_LINE, stack_dump=True))
        if not out:
            raise ValueError("the graph starts no process: enable a node, give --camera bag:PATH or --record")
        return out


def make_plan(
    config: str | Path | None = None,
    cameras: Sequence[str] = (),
    record: str | Path | None = None,
    device: str | None = None,
    namespace: str | None = None,
    respawn: bool | None = None,
    set_params: Sequence[str] = (),
) -> LaunchPlan:
    """The plan of ``depthtracker launch``: the graph YAML ``config`` (default ``config/graph.yaml``) with the
    command line's overrides applied; ``ValueError`` naming the problem when they do not fit together."""
    graph = load_graph(config)
    changes = {k: v for k, v in (("device", device), ("namespace", namespace), ("respawn", respawn)) if v is not None}
    return LaunchPlan(dataclasses.replace(graph, **changes), tuple(cameras), None if record is None else Path(record),
                      tuple(set_params))


# -- params files --------------------------------------------------------------------------------------------------
def _key_matches(key: str, node: str) -> bool:
    return key.strip("/") == node or key in ("/**", "/**/" + node) or key.endswith("/" + node)


def node_parameters(path: Path, node: str) -> Mapping[str, Any]:
    """The ``ros__parameters`` a params file gives ``node`` (entries keyed ``node``, ``/node``, ``/**/node``,
    ``/**`` or ``/ns/node``, merged in file order); ``ValueError`` naming the file when it cannot be read."""
    data = load_yaml(path)
    out: dict[str, Any] = {}
    for key, entry in data.items():
        if not isinstance(entry, Mapping) or "ros__parameters" not in entry:
            raise ValueError(f"{path} is not a ROS 2 params file: entry {key!r} has no ros__parameters")
        if _key_matches(str(key), node):
            out.update(entry["ros__parameters"] or {})
    return out


def _params_for(path: Path, node: str, namespace: str, rundir: Path) -> tuple[Path, tuple[tuple[Path, str], ...]]:
    """The params file to hand ``node``: ``path`` itself, or under a namespace a copy whose bare-name entries
    (which rcl would apply only in the root namespace) are keyed ``/**/<node>``."""
    if not path.is_file():
        raise ValueError(f"params file {path} of the {node} node does not exist")
    data = load_yaml(path)
    if not namespace or not any(str(k).strip("/") == node for k in data):
        return path, ()
    rekeyed = {f"/**/{node}" if str(k).strip("/") == node else k: v for k, v in data.items()}
    copy = rundir / f"{node}.params.yaml"
    text = f"# {path} for node {node} in namespace /{namespace} (written by depthtracker launch)\n"
    return copy, ((copy, text + yaml.safe_dump(rekeyed, sort_keys=False)),)


def _yaml_list(items: Sequence[str]) -> str:
    """``['a', 'b']`` as a YAML flow sequence of single-quoted strings: how ``-p cameras:=...`` takes a list."""
    return "[" + ", ".join("'" + s.replace("'", "''") + "'" for s in items) + "]"
