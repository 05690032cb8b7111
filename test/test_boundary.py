"""The core never imports ROS: only depthtracker/ros/ may import rclpy or a *_msgs package (STYLE.md rule 1)."""

import ast
import subprocess
import sys
from pathlib import Path

PKG = Path(__file__).resolve().parents[1] / "src" / "depthtracker" / "depthtracker"


def _is_ros_module(name: str) -> bool:
    top = name.split(".")[0]
    return top in {"rclpy", "rosidl_runtime_py", "launch", "launch_ros", "message_filters", "cv_bridge"} or (
        top.endswith("_msgs") or top.endswith("_interfaces")
    )


def ros_imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [a.name for a in node.names if _is_ros_module(a.name)]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0 and _is_ros_module(node.module):
            found.append(node.module)
        elif isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", "")) in {
            "import_module", "__import__"
        }:
            for arg in node.args[:1]:
                if isinstance(arg, ast.Constant) and isinstance(arg.value, str) and _is_ros_module(arg.value):
                    found.append(arg.value)
    return found


def test_detector_finds_ros_imports(tmp_path):
    # The check must be able to fail: a planted import is found in every form.
    bad = tmp_path / "bad.py"
    bad.write_text("import rclpy\nfrom sensor_msgs.msg import Image\nimport importlib\n"
                   "importlib.import_module('depthtracker_msgs.msg')\n")
    assert ros_imports(bad) == ["rclpy", "sensor_msgs.msg", "depthtracker_msgs.msg"]


def test_core_has_no_ros_imports():
    offenders = {}
    for path in PKG.rglob("*.py"):
        if "ros" in path.relative_to(PKG).parts[:1]:
            continue
        found = ros_imports(path)
        if found:
            offenders[str(path.relative_to(PKG))] = found
    assert not offenders, f"ROS imports outside depthtracker/ros/: {offenders}"


def test_importing_the_core_loads_no_ros():
    modules = [
        p.relative_to(PKG.parent).with_suffix("").as_posix().replace("/", ".").removesuffix(".__init__")
        for p in PKG.rglob("*.py")
        if "ros" not in p.relative_to(PKG).parts[:1]
    ]
    code = (
        "import importlib, sys\n"
        f"for m in {sorted(modules)!r}:\n"
        "    importlib.import_module(m)\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] == 'rclpy' or m.split('.')[0].endswith('_msgs'))\n"
        "print(bad)\n"
        "sys.exit(1 if bad else 0)\n"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, f"core import pulled in ROS modules: {res.stdout} {res.stderr[-2000:]}"
