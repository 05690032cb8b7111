"""DepthTrack inference on camera images: depth for every camera of a rig, and single-target candidates.

Usage::

    pred = DepthTrackPredictor.from_checkpoint()                    # the shipped models/depthtrack-edge
    depths = pred.predict_depth([rgb0, rgb1], [cam0, cam1])         # list[DepthMap], metres at image size
    boxes = pred.follow(frames, init_box)                           # (T, 4) target boxes through TargetTracker

Pre-processing is the training pipeline's: each image is resized to the checkpoint's input size with
:func:`~depthtracker.data.crops.resize_camera` (which scales ``K`` so the ray embedding stays exact); tracking
crops use :func:`~depthtracker.data.crops.crop_square` with the config's template and search factors.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from depthtracker.data.crops import crop_box_side, crop_square, resize_camera
from depthtracker.models.depthtrack.config import DepthTrackConfig, DepthTrackRuntimeConfig
from depthtracker.models.depthtrack.model import DepthTrack
from depthtracker.models.depthtrack.postprocess import SOTCandidates, decode_sot, depth_to_image
from depthtracker.tracking import TargetTracker
from depthtracker.tracking.config import TargetTrackerConfig
from depthtracker.train.checkpoints import CheckpointError
from depthtracker.types import CameraModel, DepthMap

__all__ = ["DepthTrackPredictor", "default_checkpoint", "predict_depth_files", "resolve_device"]

SHIPPED = "depthtrack-edge"


def resolve_device(device: str | torch.device) -> torch.device:
    """``"auto"`` -> CUDA when available, else CPU; anything else as given."""
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def default_checkpoint() -> Path:
    """The shipped ``models/depthtrack-edge.safetensors``: the source checkout's, else the installed share's."""
    checkout = Path(__file__).resolve().parents[5] / "models"
    for root in (checkout, Path(sys.prefix) / "share" / "depthtracker" / "models"):
        path = root / f"{SHIPPED}.safetensors"
        if path.is_file():
            return path
    raise CheckpointError(f"no shipped {SHIPPED}.safetensors found (looked in the checkout's models/ and "
                            f"{sys.prefix}/share/depthtracker/models); pass --checkpoint, or train one with "
                            "'depthtracker train depthtrack --bag BAG'")


def _to_tensor(image: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).float() / 255.0  # (3, H, W)


class DepthTrackPredictor:
    """A DepthTrack model with its pre- and post-processing (eval mode, no gradients). ``runtime`` supplies the
    candidate count and score threshold (``config/depthtrack.yaml``); defaults when None."""

    def __init__(self, model: DepthTrack, device: str | torch.device = "cpu",
                 runtime: DepthTrackRuntimeConfig | None = None) -> None:
        self.device = resolve_device(device)
        self.model = model.to(self.device).eval()
        self.config: DepthTrackConfig = model.config
        self.runtime = runtime if runtime is not None else DepthTrackRuntimeConfig()

    @classmethod
    def from_checkpoint(cls, path: str | os.PathLike[str] | None = None, device: str | torch.device = "auto",
                        runtime: DepthTrackRuntimeConfig | None = None) -> DepthTrackPredictor:
        """Rebuild the model from a checkpoint's sidecar and weights alone (None = the shipped checkpoint)."""
        from depthtracker.train.checkpoints import load_checkpoint, model_config

        path = default_checkpoint() if path is None else path
        state, side = load_checkpoint(path)
        model = DepthTrack(model_config(side, path, "DepthTrack"))
        model.load_state_dict(state)
        return cls(model, device, runtime)

    # -- depth ---------------------------------------------------------------------------------------------
    @torch.no_grad()
    def predict_depth(self, images: Sequence[np.ndarray], cameras: Sequence[CameraModel],
                      stamp_ns: int = 0) -> list[DepthMap]:
        """Metric depth of each camera of one synchronised set.

        ``images``: (H, W, 3) uint8 RGB per camera; ``cameras``: their models (intrinsics at image resolution,
        poses in a common frame). Returns one ``DepthMap`` (float32 metres at the image's resolution) each.
        """
        if len(images) != len(cameras) or not images:
            raise ValueError(f"predict_depth needs one camera per image, got {len(images)} images and "
                             f"{len(cameras)} cameras")
        cfg = self.config
        ims, Ks, Ts = [], [], []
        for image, cam in zip(images, cameras):
            if image.shape[:2] != (cam.height, cam.width):
                raise ValueError(f"image of camera {cam.camera_id} is {image.shape[1]}x{image.shape[0]} but its "
                                 f"calibration says {cam.width}x{cam.height}")
            im, K, _ = resize_camera(image, cam.K, (cfg.input_height, cfg.input_width))
            ims.append(_to_tensor(im))
            Ks.append(torch.from_numpy(K).float())
            Ts.append(torch.tensor(np.array(cam.T_world_cam), dtype=torch.float64))
        dev = self.device
        log_depth, _ = self.model.forward_depth(torch.stack(ims)[None].to(dev), torch.stack(Ks)[None].to(dev),
                                                torch.stack(Ts)[None].to(dev))  # (1, V, H', W')
        return [DepthMap(depth_to_image(log_depth[0, v], cam.height, cam.width), cam.camera_id, stamp_ns)
                for v, cam in enumerate(cameras)]

    # -- single target -------------------------------------------------------------------------------------
    def template(self, image: np.ndarray, box: np.ndarray) -> torch.Tensor:
        """Template crop ``(3, S, S)`` around ``box`` (xyxy image pixels)."""
        b = np.asarray(box, np.float64)
        side = crop_box_side(b, self.config.template_factor)
        crop, _ = crop_square(image, ((b[0] + b[2]) / 2, (b[1] + b[3]) / 2), side, self.config.template_size)
        return _to_tensor(crop)

    @torch.no_grad()
    def candidates(self, image: np.ndarray, template: torch.Tensor, ref_box: np.ndarray,
                   max_candidates: int | None = None) -> SOTCandidates:
        """Candidate target boxes in ``image`` (pixels), searched around ``ref_box`` (the last known box)."""
        b = np.asarray(ref_box, np.float64)
        cfg = self.config
        side = crop_box_side(b, cfg.search_factor)
        crop, tf = crop_square(image, ((b[0] + b[2]) / 2, (b[1] + b[3]) / 2), side, cfg.search_size)
        maps, _ = self.model.forward_sot(template[None].to(self.device), _to_tensor(crop)[None].to(self.device))
        (cands,) = decode_sot(maps, cfg.search_size, max_candidates or self.runtime.max_candidates,
                              self.runtime.score_threshold)
        return cands.to_image(tf, image.shape[1], image.shape[0])

    def follow(self, frames: Sequence[np.ndarray], init_box: np.ndarray, stamps_ns: Sequence[int] | None = None,
               tracker_config: TargetTrackerConfig | None = None) -> np.ndarray:
        """Track one target through ``frames`` from ``init_box`` (xyxy, frame 0) with ``TargetTracker``.

        Returns ``(T, 4)`` float32 boxes (frame 0 = ``init_box``). The template is taken once, from frame 0; the
        search is centred on the tracker's box of the previous frame.
        """
        stamps = list(stamps_ns) if stamps_ns is not None else [i * 66_666_667 for i in range(len(frames))]
        tracker = TargetTracker(tracker_config)
        box = np.asarray(init_box, np.float32)
        tracker.initialize(box, stamps[0])
        tmpl = self.template(frames[0], box)
        out = [box]
        for frame, stamp in zip(frames[1:], stamps[1:]):
            c = self.candidates(frame, tmpl, out[-1])
            state = tracker.update(c.boxes, c.scores, stamp)
            out.append(np.asarray(state.box, np.float32))
        return np.stack(out)


DEFAULT_HFOV_DEG = 70.0  # assumed without calibration: the synthetic world's lens (metric scale is then a guess)


def predict_depth_files(images: Sequence[str | os.PathLike[str]], out_dir: str | os.PathLike[str],
                        calibs: Sequence[str | os.PathLike[str]] = (),
                        checkpoint: str | os.PathLike[str] | None = None, device: str = "auto",
                        near: float = 0.5, far: float = 15.0) -> list[Path]:
    """Depth of image files: writes ``OUT/NAME.depth.npy`` (float32 metres, NaN = unknown) and ``NAME.depth.png``
    (colour map, ``near``..``far`` metres) per image; returns the ``.npy`` paths.

    ``calibs``: none (a pinhole with a 70 degree horizontal field of view is assumed), one camera_info YAML shared
    by every image, or one per image. Two images with the two calibrations of a rectified stereo pair (the right
    one with ``P[0,3] = -fx * baseline``) are run together as the two cameras of one rig; other images one by one.
    """
    import cv2

    from depthtracker.data.calibration import read_camera_info_yaml, stereo_rig
    from depthtracker.geometry.camera import intrinsics_from_fov
    from depthtracker.viz.draw import colorize_depth

    paths = [Path(p) for p in images]
    if not paths:
        raise ValueError("predict depth needs at least one image")
    if len(calibs) not in (0, 1, len(paths)):
        raise ValueError(f"give no --calib, one for all images, or one per image; got {len(calibs)} for "
                         f"{len(paths)} images")
    rgb = []
    for p in paths:
        im = cv2.imread(str(p), cv2.IMREAD_COLOR)
        if im is None:
            raise ValueError(f"cannot read image {p}: missing or not an image")
        rgb.append(cv2.cvtColor(im, cv2.COLOR_BGR2RGB))
    cals = [read_camera_info_yaml(c) for c in calibs]
    if len(cals) == 1:
        cals = cals * len(paths)
    groups: list[tuple[list[int], list[CameraModel]]] = []
    rig = None
    if len(paths) == 2 and len(cals) == 2:
        for order in ([0, 1], [1, 0]):  # the images may come right camera first
            pair = stereo_rig(cals[order[0]], cals[order[1]])
            if pair is not None:
                rig = (order, list(pair))
                break
    if rig is not None:
        groups.append(rig)
    else:
        for i, im in enumerate(rgb):
            h, w = im.shape[:2]
            K = cals[i].camera.K if cals else intrinsics_from_fov(w, h, DEFAULT_HFOV_DEG)
            groups.append(([i], [CameraModel(0, w, h, np.array(K), np.eye(4))]))
    pred = DepthTrackPredictor.from_checkpoint(checkpoint, device=device)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for idx, cams in groups:
        for i, cam in zip(idx, cams):
            if rgb[i].shape[:2] != (cam.height, cam.width):
                raise ValueError(f"{paths[i]} is {rgb[i].shape[1]}x{rgb[i].shape[0]} but its calibration says "
                                 f"{cam.width}x{cam.height}")
        maps = pred.predict_depth([rgb[i] for i in idx], cams)
        for i, dm in zip(idx, maps):
            npy = out / f"{paths[i].stem}.depth.npy"
            np.save(npy, dm.depth.astype(np.float32))
            png = colorize_depth(dm.depth, near, far)
            cv2.imwrite(str(out / f"{paths[i].stem}.depth.png"), cv2.cvtColor(png, cv2.COLOR_RGB2BGR))
            written.append(npy)
    return written
