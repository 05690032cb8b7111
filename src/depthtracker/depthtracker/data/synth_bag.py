"""Render the synthetic world into a rosbag2 (what ``depthtracker synth`` runs)."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from pathlib import Path

from depthtracker.data.bags import BagWriter
from depthtracker.data.synth import SynthConfig, SynthWorld


def write_synth_bag(
    config: SynthConfig,
    out: str | os.PathLike[str],
    storage: str = "mcap",
    progress: bool = True,
    on_set: Callable[[int, int], None] | None = None,
) -> Path:
    """Render every frame of ``config``'s world into a new bag at ``out``; returns the bag path.

    The bag appears only when complete (``BagWriter`` writes into a hidden folder and renames it), so an
    interrupted run leaves nothing that looks like a bag. ``on_set(i, total)`` is called after each set.
    """
    world = SynthWorld(config)
    with BagWriter(
        out,
        world.cameras,
        storage=storage,
        class_names=world.class_names,
        stereo_pair=world.stereo_pair,
        baseline_m=world.baseline_m,
        source={"synth": dataclasses.asdict(config)},
    ) as bag:
        frames = range(world.num_frames)
        if progress:
            from tqdm import tqdm

            frames = tqdm(frames, desc=f"synth -> {Path(out).name}", unit="set", leave=False)
        for i in frames:
            bag.write_sample(world.render(i))
            if on_set is not None:
                on_set(i, world.num_frames)
    return Path(out)
