"""Launch files evaluated against a stand-in for launch/launch_ros (not installable here): the nodes they start
exist as console scripts, their arguments are declared, and the large-data transport is set."""

import configparser
import re
from pathlib import Path

import pytest
from launch_standin import entities, load_launch

REPO = Path(__file__).resolve().parents[1]
LAUNCH_FILES = sorted((REPO / "launch").glob("*.launch.py"))


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
