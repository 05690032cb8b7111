"""ament_python package ``depthtracker``; also installable with pip (the core runs without ROS).

Launch files, config and the shipped checkpoints live at the repository top level (``launch/``, ``config/``,
``models/``) and are installed to ``share/depthtracker/{launch,config,models}`` where ``ros2 launch depthtracker ...``
and the nodes find them (``configio.config_dir()``, ``models.depthtrack.predictor.default_checkpoint()``).
"""

import os
from glob import glob
from pathlib import Path

from setuptools import find_packages, setup

PACKAGE = "depthtracker"
HERE = Path(__file__).resolve().parent
TOP = HERE.parent.parent  # repository root: launch/, config/, models/ sit there


def _rel(pattern: str) -> list[str]:
    # setuptools wants data_files paths relative to setup.py; the top-level folders are two levels up.
    return sorted(os.path.relpath(p, HERE) for p in glob(str(TOP / pattern)))


setup(
    name=PACKAGE,
    version="0.1.0",
    packages=find_packages(include=[PACKAGE, f"{PACKAGE}.*"]),
    data_files=[
        ("share/ament_index/resource_index/packages", ["resource/" + PACKAGE]),
        (f"share/{PACKAGE}", ["package.xml"]),
        (f"share/{PACKAGE}/launch", _rel("launch/*.launch.py")),
        (f"share/{PACKAGE}/config", _rel("config/*.yaml")),
        (f"share/{PACKAGE}/models", _rel("models/*.safetensors") + _rel("models/*.json")),
    ],
    python_requires=">=3.10",
    install_requires=["numpy", "scipy", "pyyaml"],
    zip_safe=True,
    maintainer="depthtracker maintainers",
    maintainer_email="maintainers@depthtracker.dev",
    description="Multi-camera depth heatmaps, detection and tracking for ROS 2.",
    license="Apache-2.0",
    entry_points={
        "console_scripts": [
            "depthtracker = depthtracker.cli:main",
            "ingest_node = depthtracker.ros.ingest:main",
            "perception_node = depthtracker.ros.perception_node:main",
            "tracking_node = depthtracker.ros.tracking_node:main",
        ],
    },
)
