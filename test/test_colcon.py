"""colcon (from PyPI) builds a workspace holding this repository and installs what `ros2 launch` / `ros2 run` use."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
VENV = Path(sys.prefix)
COLCON = VENV / "bin" / "colcon"
IGNORE = shutil.ignore_patterns(".venv", "build", "install", "log", "out", ".git", "__pycache__", "*.egg-info",
                                ".pytest_cache", ".ruff_cache")


@pytest.mark.slow
@pytest.mark.skipif(not COLCON.exists(), reason="colcon not installed in this environment (make setup installs it)")
def test_colcon_build_installs_packages(tmp_path):
    ws = tmp_path / "ws"
    shutil.copytree(REPO, ws / "src" / "depthtracker_repo", ignore=IGNORE)
    env = dict(os.environ, AMENT_PREFIX_PATH=str(VENV), PATH=f"{VENV / 'bin'}{os.pathsep}{os.environ['PATH']}")
    res = subprocess.run(
        [str(COLCON), "build", "--event-handlers", "console_direct-", "--cmake-args",
         f"-DPython3_EXECUTABLE={sys.executable}", "-DBUILD_TESTING=OFF"],
        cwd=ws, env=env, capture_output=True, text=True, timeout=900,
    )
    assert res.returncode == 0, res.stdout[-4000:] + res.stderr[-4000:]
    install = ws / "install"
    share = install / "depthtracker" / "share" / "depthtracker"
    assert sorted(p.name for p in (share / "launch").glob("*.launch.py")) == sorted(
        p.name for p in (REPO / "launch").glob("*.launch.py"))
    assert sorted(p.name for p in (share / "config").glob("*.yaml")) == sorted(
        p.name for p in (REPO / "config").glob("*.yaml"))
    assert (share / "package.xml").is_file()
    # The shipped checkpoints, where default_checkpoint() and the perception node look for them.
    assert sorted(p.name for p in (share / "models").iterdir()) == sorted(
        p.name for p in (REPO / "models").iterdir() if p.suffix in (".safetensors", ".json"))
    index = install / "depthtracker" / "share" / "ament_index" / "resource_index" / "packages"
    assert (index / "depthtracker").exists()
    lib = install / "depthtracker" / "lib" / "depthtracker"
    for exe in ("ingest_node", "perception_node", "tracking_node", "depthtracker"):
        assert os.access(lib / exe, os.X_OK), f"{exe} not installed under lib/depthtracker"
    # The interface package's Python module comes from the workspace install, not from the venv.
    msgs = install / "depthtracker_msgs"
    site = next(msgs.glob("lib/python3*/site-packages"))
    code = ("import depthtracker_msgs.msg as m; t = m.TrackArray(tracks=[m.Track(id=7)]); "
            "print(m.__file__); print(t.tracks[0].id)")
    env_run = dict(os.environ, PYTHONPATH=str(site), LD_LIBRARY_PATH=str(msgs / "lib"))
    out = subprocess.run([sys.executable, "-c", code], env=env_run, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-3000:]
    path, tid = out.stdout.split()
    assert path.startswith(str(site)) and tid == "7"
    assert (msgs / "share" / "depthtracker_msgs" / "msg" / "TrackArray.msg").is_file()
