"""Build and install the ``depthtracker_msgs`` interface package into a virtual environment made from PyPI wheels.

The ROS 2 ``ros-*`` wheels export CMake files that point at the interpreter of the manylinux machine that built them
(``/opt/python/cp311-cp311/...``). This script rewrites those paths to the running interpreter, then configures,
builds and installs the package with plain CMake into the venv prefix, where rclpy finds it with no extra variables.
It is idempotent: the rewrite is skipped when nothing is left to rewrite and CMake rebuilds only what changed.

Usage: ``python tools/build_msgs.py [--build-dir DIR]`` (run with the venv's python).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import sysconfig
from pathlib import Path

# The two paths baked into the wheels' *Export.cmake files (see ROS_FROM_PYPI.md).
_FOREIGN_INCLUDE = "/opt/python/cp311-cp311/include/python3.11"
_FOREIGN_NUMPY = "/opt/python/cp311-cp311/lib/python3.11/site-packages/numpy/_core/include"


def fix_exported_cmake(prefix: Path) -> int:
    """Rewrite foreign interpreter paths in ``prefix/share/**/*.cmake``; returns the number of files changed."""
    import numpy

    own_include = sysconfig.get_paths()["include"]
    own_numpy = numpy.get_include()
    changed = 0
    for path in (prefix / "share").rglob("*.cmake"):
        text = path.read_text(errors="surrogateescape")
        if _FOREIGN_INCLUDE not in text and _FOREIGN_NUMPY not in text:
            continue
        # Numpy first: the include path is a prefix of neither, but keep the order explicit.
        text = text.replace(_FOREIGN_NUMPY, own_numpy).replace(_FOREIGN_INCLUDE, own_include)
        path.write_text(text, errors="surrogateescape")
        changed += 1
    return changed


def main(argv: list[str] | None = None) -> int:
    root = Path(__file__).resolve().parents[1]
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--build-dir", type=Path, default=root / "build" / "depthtracker_msgs")
    args = parser.parse_args(argv)

    prefix = Path(sys.prefix)
    if prefix == Path(sys.base_prefix):
        print("build_msgs: run this with the virtual environment's python (make setup does)", file=sys.stderr)
        return 2
    if not (prefix / "share" / "rosidl_default_generators").is_dir():
        print(f"build_msgs: {prefix} has no rosidl_default_generators; install requirements first", file=sys.stderr)
        return 2
    n = fix_exported_cmake(prefix)
    if n:
        print(f"build_msgs: rewrote interpreter paths in {n} exported CMake files")

    env = dict(os.environ)
    env["AMENT_PREFIX_PATH"] = str(prefix)
    env["PATH"] = f"{prefix / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    cmake = str(prefix / "bin" / "cmake")
    src = root / "src" / "depthtracker_msgs"
    args.build_dir.mkdir(parents=True, exist_ok=True)
    steps = [
        [cmake, "-S", str(src), "-B", str(args.build_dir), f"-DCMAKE_PREFIX_PATH={prefix}",
         f"-DCMAKE_INSTALL_PREFIX={prefix}", f"-DPython3_EXECUTABLE={sys.executable}", "-DBUILD_TESTING=OFF",
         "-DCMAKE_BUILD_TYPE=Release"],
        [cmake, "--build", str(args.build_dir), "--parallel", str(os.cpu_count() or 1)],
        [cmake, "--install", str(args.build_dir)],
    ]
    for step in steps:
        result = subprocess.run(step, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        if result.returncode != 0:
            print(result.stdout[-8000:], file=sys.stderr)
            print(f"build_msgs: failed: {' '.join(step)}", file=sys.stderr)
            return result.returncode
    print(f"build_msgs: depthtracker_msgs installed into {prefix}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
