"""Launch files evaluated against a stand-in for launch/launch_ros (not installable here): the nodes they start
exist as console scripts, their arguments are declared, and the large-data transport is set."""

import configparser
import re
from pathlib import Path

import pytest
import yaml
from launch_standin import STANDIN, declared_defaults, entities, load_launch

REPO = Path(__file__).resolve().parents[1]
LAUNCH_FILES = sorted((REPO / "launch").glob("*.launch.py"))
LaunchConfiguration = STANDIN["launch.substitutions"].LaunchConfiguration
IfCondition = STANDIN["launch.conditions"].IfCondition
FindPackageShare = STANDIN["launch_ros.substitutions"].FindPackageShare


def console_scripts() -> set[str]:
    text = (REPO / "src" / "depthtracker" / "setup.py").read_text()
    return set(re.findall(r'"(\w+) = depthtracker\.[\w.]+:main"', text))


def test_there_are_launch_files():
    assert LAUNCH_FILES


@pytest.mark.parametrize("path", LAUNCH_FILES, ids=lambda p: p.name)
def test_launch_file_structure(path):
    desc = load_launch(path)
    declared = {e.args[0] for e in entities(desc, "DeclareLaunchArgument")}
    env = {e.args[0]: e.args[1] for e in entities(desc, "SetEnvironmentVariable")}
    assert env.get("FASTDDS_BUILTIN_TRANSPORTS") == "LARGE_DATA"
    nodes = entities(desc, "Node") + entities(desc, "LifecycleNode")
    assert nodes, "a launch file starts at least one node"
    scripts = console_scripts()
    for node in nodes:
        assert node.kwargs["package"] == "depthtracker"
        assert node.kwargs["executable"] in scripts, f"{node.kwargs['executable']} is not a console script"
        assert "respawn" in node.kwargs
        # Every LaunchConfiguration a node uses is declared as an argument.
        used = re.findall(r"LaunchConfiguration\(\('(\w+)',\)", repr(node))
        assert set(used) <= declared, f"undeclared launch arguments: {set(used) - declared}"


def test_setup_cfg_installs_scripts_where_ros2_run_looks():
    cfg = configparser.ConfigParser()
    cfg.read(REPO / "src" / "depthtracker" / "setup.cfg")
    assert cfg["install"]["install_scripts"] == "$base/lib/depthtracker"


# -- perception.launch.py: the graph, its arguments the same as config/graph.yaml's --------------------------------
PERCEPTION = REPO / "launch" / "perception.launch.py"


def _nodes_by_name(desc, overrides=None):
    nodes = entities(desc, "Node", overrides) + entities(desc, "LifecycleNode", overrides)
    return {n.kwargs["name"]: n for n in nodes}


def _param_files(node):
    return [p for p in node.kwargs["parameters"] if not isinstance(p, dict)]


def test_perception_launch_starts_the_graph():
    desc = load_launch(PERCEPTION)
    nodes = _nodes_by_name(desc)
    assert {k: v.kwargs["executable"] for k, v in nodes.items()} == {
        "ingest": "ingest_node", "perception": "perception_node", "tracking": "tracking_node"}
    assert type(nodes["perception"]).__name__ == "LifecycleNode"
    assert type(nodes["ingest"]).__name__ == type(nodes["tracking"]).__name__ == "Node"
    for name, arg in (("ingest", "cameras_config"), ("perception", "params_file"), ("tracking", "tracking_params")):
        node = nodes[name]
        assert repr(_param_files(node)) == repr([LaunchConfiguration(arg)]), name
        extra = [p for p in node.kwargs["parameters"] if isinstance(p, dict)]
        assert len(extra) == 1 and "use_sim_time" in extra[0] and "use_sim_time" in repr(extra[0]["use_sim_time"])
        assert repr(node.kwargs["condition"]) == repr(IfCondition(LaunchConfiguration(f"enable_{name}")))
        assert repr(node.kwargs["namespace"]) == repr(LaunchConfiguration("namespace"))
        assert repr(node.kwargs["respawn"]) == repr(LaunchConfiguration("respawn"))
        assert node.kwargs["respawn_delay"] == 1.0 and node.kwargs["output"] == "screen"
    perception = nodes["perception"].kwargs["parameters"][1]
    assert perception["autostart"] is True and "'device'" in repr(perception["device"])
    # respawn_delay is read from its argument (launch takes a float there, not a substitution).
    assert {n.kwargs["respawn_delay"] for n in _nodes_by_name(desc, {"respawn_delay": "2.5"}).values()} == {2.5}


def test_perception_launch_arguments_match_graph_yaml():
    desc = load_launch(PERCEPTION)
    declared = declared_defaults(desc)
    graph = yaml.safe_load((REPO / "config" / "graph.yaml").read_text())
    assert set(declared) == set(graph)
    for key, value in graph.items():
        default = declared[key]
        if key in ("params_file", "tracking_params", "cameras_config"):
            # Installed config: PathJoinSubstitution([FindPackageShare("depthtracker"), "config", FILE]).
            parts = default.args[0]
            assert type(default).__name__ == "PathJoinSubstitution" and parts[1:] == ["config", value], key
            assert repr(parts[0]) == repr(FindPackageShare("depthtracker"))
            assert (REPO / "config" / value).is_file(), value
        elif isinstance(value, bool):
            assert default == str(value).lower(), key
        else:
            assert default == str(value), key
