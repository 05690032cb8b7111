"""Shared fixtures: hermetic ROS settings (own log dir and domain id per test) and the small synthetic world."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _domain_id(nodeid: str) -> int:
    # Fast DDS accepts 0..232; stay clear of 0 (the default every stray ROS process uses).
    return 1 + (uuid.uuid5(uuid.NAMESPACE_URL, nodeid + str(os.getpid())).int % 200)


@pytest.fixture
def ros_env(tmp_path: Path, request: pytest.FixtureRequest) -> dict[str, str]:
    """Environment for ROS subprocesses: own ROS_DOMAIN_ID, logs in tmp, localhost only, large-data transport."""
    env = dict(os.environ)
    env.update(
        ROS_DOMAIN_ID=str(_domain_id(request.node.nodeid)),
        ROS_LOG_DIR=str(tmp_path / "ros_log"),
        ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST",
        FASTDDS_BUILTIN_TRANSPORTS="LARGE_DATA",
        PYTHONUNBUFFERED="1",
    )
    return env


@pytest.fixture(scope="session")
def make_synth_bag(tmp_path_factory: pytest.TempPathFactory):
    """``make_synth_bag(config, storage="mcap") -> Path``: the synthetic world of ``config`` as a bag, rendered once
    per session and shared by every test that asks for the same config (tests only read it)."""
    from depthtracker.data.synth_bag import write_synth_bag

    made: dict = {}

    def make(config, storage: str = "mcap") -> Path:
        key = (config, storage)
        if key not in made:
            made[key] = write_synth_bag(config, tmp_path_factory.mktemp("synth") / "world", storage=storage,
                                        progress=False)
        return made[key]

    return make


@pytest.fixture(scope="session")
def depth_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A DepthTrack ``edge`` checkpoint with seeded, untrained weights: for tests of plumbing (nodes, evaluation,
    demo), never of accuracy (the shipped ``models/depthtrack-edge`` is measured by ``depthtracker eval``)."""
    import torch
    from depthtracker.models.depthtrack import DepthTrack, DepthTrackConfig
    from depthtracker.train.checkpoints import save_checkpoint

    torch.manual_seed(0)
    model = DepthTrack(DepthTrackConfig.from_preset("edge"))
    return save_checkpoint(tmp_path_factory.mktemp("ckpt") / "depthtrack-test", model, model.config.to_dict())
