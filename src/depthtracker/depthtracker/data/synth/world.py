"""``SynthWorld``: the synthetic multi-camera world, rendered frame by frame with exact depth and ground truth.

Usage::

    world = SynthWorld(SynthConfig(cameras=4, width=640, height=480))
    for sample in world:  # render(0), render(1), ...
        sample.frames[i].image, sample.depths[i].depth, sample.annotations[i], sample.instance[i]

Everything is ray cast analytically (room planes, ray-box slabs, ray-sphere and ray-capped-cylinder quadrics), so
depth is exact up to float32 storage. Output is a pure function of the config: the same seed gives byte-identical
arrays, whatever order frames are rendered in. See ``render`` for the definition of visibility.
"""

from __future__ import annotations

import operator
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from depthtracker.data.synth.config import SynthConfig
from depthtracker.data.synth.motion import Motion, ObjectStates
from depthtracker.data.synth.objects import CLASS_NAMES, ObjectSpec, sample_objects
from depthtracker.data.synth.render import CameraView, render_view
from depthtracker.data.synth.rig import build_rig
from depthtracker.data.synth.room import make_seed_table, render_background
from depthtracker.data.synth.shading import light_vector
from depthtracker.types import Annotations, CameraModel, DepthMap, Frame

__all__ = ["SynthSample", "SynthWorld"]

# Independent RNG streams derived from the seed, so adding draws to one part never changes another.
_STREAM_OBJECTS, _STREAM_MOTION, _STREAM_NOISE = 1, 2, 3


@dataclass(frozen=True, eq=False)
class SynthSample:
    """One synchronised set of the rig at frame ``index``; list entry i belongs to camera i.

    Attributes:
        index: frame index; stamp_ns: ``start_time_ns + round(index * 1e9 / fps)``, the same for every camera.
        frames: RGB images (H, W, 3) uint8 (``Frame.frame_id`` = ``camN_optical``).
        depths: (H, W) float32 metres along the optical axis (z, not ray length); finite everywhere.
        annotations: visible objects: global ids (>= 1, same object = same id in every camera), tight xyxy boxes of
            their visible pixels, labels (index into ``CLASS_NAMES``), visibility in (0, 1].
        instance: (H, W) int32 object id per pixel, 0 = room (read-only).
    """

    index: int
    stamp_ns: int
    frames: list[Frame]
    depths: list[DepthMap]
    annotations: list[Annotations]
    instance: list[np.ndarray]


class SynthWorld:
    """A rig of cameras in a closed textured room with moving boxes, spheres and cylinders.

    Attributes:
        config: the ``SynthConfig``.
        cameras: ``CameraModel`` per camera (ids 0..N-1, frame ids ``camN_optical``); the rig is static.
        stereo_pair: ``(left_id, right_id)`` of the rectified stereo pair, or None with a single camera.
        baseline_m: the stereo baseline in metres.
        num_frames: ``round(seconds * fps)``.
        class_names: ``CLASS_NAMES``; a label is an index into it.
        objects: the objects' fixed properties (``objects[k].object_id == k + 1``).
    """

    def __init__(self, config: SynthConfig | None = None) -> None:
        if config is None:
            config = SynthConfig()
        if not isinstance(config, SynthConfig):
            raise ValueError(f"SynthWorld needs a SynthConfig, got {type(config).__name__}")
        self.config = config
        self.cameras: list[CameraModel]
        self.cameras, self.stereo_pair = build_rig(config)
        self.baseline_m = float(config.stereo_baseline_m)
        self.num_frames = config.num_frames
        self.class_names: tuple[str, ...] = CLASS_NAMES
        self.objects: tuple[ObjectSpec, ...] = sample_objects(
            config.num_objects, config.object_size_m, np.random.default_rng([config.seed, _STREAM_OBJECTS]))
        self._motion = Motion(config, self.objects, np.random.default_rng([config.seed, _STREAM_MOTION]))
        self._light = light_vector(config)
        table = make_seed_table(config.seed)
        self._views = []
        for cam in self.cameras:
            depth, rgb = render_background(config, cam, table)
            self._views.append(CameraView.create(cam, depth, rgb, config.visibility_margin))

    def __len__(self) -> int:
        return self.num_frames

    def __iter__(self) -> Iterator[SynthSample]:
        for i in range(self.num_frames):
            yield self.render(i)

    def _check_index(self, index: int) -> int:
        try:
            i = operator.index(index)
        except TypeError:
            raise ValueError(f"frame index must be an integer, got {index!r}") from None
        if not 0 <= i < self.num_frames:
            raise ValueError(f"frame index {i} out of range [0, {self.num_frames - 1}] (num_frames={self.num_frames})")
        return i

    def object_states(self, index: int) -> ObjectStates:
        """World poses of all objects at frame ``index``: centres (K, 3) metres and yaws (K,) radians."""
        return self._motion.state(self._check_index(index))

    def render(self, index: int) -> SynthSample:
        """Render frame ``index`` (0 <= index < num_frames) for every camera; ValueError outside that range."""
        i = self._check_index(index)
        cfg = self.config
        stamp = cfg.stamp_ns(i)
        states = self._motion.state(i)
        frames, depths, annotations, instance = [], [], [], []
        for view in self._views:
            cam = view.camera
            rgb, depth, inst, hits = render_view(view, self.objects, states, self._light, cfg.ambient)
            if cfg.noise_std > 0:
                rng = np.random.default_rng([cfg.seed, _STREAM_NOISE, i, cam.camera_id])
                noise = rng.standard_normal(rgb.shape, dtype=np.float32)
                noise *= np.float32(cfg.noise_std)
                noise += rgb  # in place throughout: this path is memory bound
                np.rint(noise, out=noise)
                np.clip(noise, 0, 255, out=noise)
                rgb = noise.astype(np.uint8)
            inst.flags.writeable = False
            frames.append(Frame(rgb, cam.camera_id, stamp, cam.frame_id))
            depths.append(DepthMap(depth, cam.camera_id, stamp))
            annotations.append(Annotations(hits.ids, hits.boxes, hits.labels, hits.visibility, cam.camera_id, stamp))
            instance.append(inst)
        return SynthSample(index=i, stamp_ns=stamp, frames=frames, depths=depths, annotations=annotations,
                           instance=instance)
