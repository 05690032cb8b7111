"""Per-camera compositing: the static room background plus exactly ray-cast objects, z-tested.

The rig is static, so each camera's room depth and RGB are rendered once (``CameraView``). Per frame only the
pixels inside each object's projected bounding rectangle are ray cast (analytically, float64), depth-tested
against the buffer and shaded; boxes and visibilities are then read off the final instance image.

Visibility of an object in a camera is ``visible / reference`` where

* ``visible`` is the number of image pixels whose centre ray hits that object first (its pixels in ``instance``);
* ``reference`` is the number of pixels whose centre ray hits the object at all, ignoring every other object,
  counted on the image plane extended beyond the image border by ``visibility_margin`` image widths (heights) on
  each side, i.e. pixel columns ``[-m W, W + m W)`` and rows ``[-m H, H + m H)`` with ``m = visibility_margin``.

So occlusion by other objects and truncation at the image border both lower it. For any object whose full
silhouette lies inside that extended window (everything but objects right beside or behind the camera) this is
exactly "visible pixels / pixels it would cover without occluders on an unbounded image"; the window only keeps
the count finite for objects that straddle the camera plane. Since visible pixels are a subset of the reference
pixels, visibility is in (0, 1] for every annotated object; objects with no visible pixel are not annotated.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from depthtracker.data.synth.config import MIN_CAMERA_CLEARANCE_M
from depthtracker.data.synth.motion import ObjectStates
from depthtracker.data.synth.objects import ObjectSpec, intersect, local_corners, surface
from depthtracker.data.synth.shading import lambert
from depthtracker.types import CameraModel

__all__ = ["CameraView", "ObjectHits", "render_view"]

# The 12 edges of a box whose corners are ordered as objects.local_corners (index bits: x, y, z); (12, 2).
_EDGES = np.array([(i, i | bit) for bit in (4, 2, 1) for i in range(8) if not i & bit])


@dataclass(frozen=True, eq=False)
class CameraView:
    """What stays fixed per camera: its model, the empty room's depth and RGB, the visibility window."""

    camera: CameraModel
    background_depth: np.ndarray  # (H, W) float32 metres
    background_rgb: np.ndarray  # (H, W, 3) uint8
    window: tuple[int, int, int, int]  # (u_lo, v_lo, u_hi, v_hi) inclusive pixel range of the reference window
    near_m: float  # bounding boxes are clipped at this optical z before projection, m

    @classmethod
    def create(cls, camera: CameraModel, depth: np.ndarray, rgb: np.ndarray, margin: float) -> CameraView:
        """The view with the reference window of ``margin`` image sizes per side.

        ``near_m`` is chosen so that no first hit can be clipped: every object point is at least
        ``MIN_CAMERA_CLEARANCE_M`` from every camera (validated by the config), and a point with ``z < near_m``
        whose ray passes through the window lies within ``near_m * sqrt(1 + (ext_u / fx)^2 + (ext_v / fy)^2)``
        (ext = the window's largest offset from the principal point), which is half the clearance.
        """
        mu, mv = round(margin * camera.width), round(margin * camera.height)
        window = (-mu, -mv, camera.width - 1 + mu, camera.height - 1 + mv)
        K = camera.K
        ext_u = max(K[0, 2] - window[0], window[2] + 1 - K[0, 2]) / K[0, 0]
        ext_v = max(K[1, 2] - window[1], window[3] + 1 - K[1, 2]) / K[1, 1]
        near = 0.5 * MIN_CAMERA_CLEARANCE_M / math.sqrt(1.0 + ext_u**2 + ext_v**2)
        return cls(camera, depth, rgb, window, near)


@dataclass(frozen=True, eq=False)
class ObjectHits:
    """Ground truth of one camera image: ids (K,) int64, boxes (K, 4) float32 xyxy, labels (K,), visibility (K,)."""

    ids: np.ndarray
    boxes: np.ndarray
    labels: np.ndarray
    visibility: np.ndarray


def _rect(view: CameraView, corners_cam: np.ndarray) -> tuple[int, int, int, int] | None:
    """Inclusive pixel rectangle (clamped to the window) holding every pixel centre whose ray can hit the object.

    ``corners_cam``: (8, 3) optical-frame corners of the object's bounding box, ordered as ``local_corners``. The box
    is clipped to ``z >= near_m`` and the clipped polytope's vertices are projected; their bounds contain the
    silhouette of the part of the object in front of that plane, which is all of it a ray can hit first (see
    ``CameraView.create``). None when nothing of the box is in front.
    """
    near = view.near_m
    z = corners_cam[:, 2]
    front = corners_cam[z >= near]
    a, b = corners_cam[_EDGES[:, 0]], corners_cam[_EDGES[:, 1]]  # (12, 3) edge end points
    za, zb = a[:, 2], b[:, 2]
    cross = (za - near) * (zb - near) < 0
    if cross.any():
        f = ((near - za[cross]) / (zb[cross] - za[cross]))[:, None]
        front = np.concatenate([front, a[cross] + f * (b[cross] - a[cross])])
    if front.shape[0] == 0:
        return None
    K = view.camera.K
    u = K[0, 0] * front[:, 0] / front[:, 2] + K[0, 2]
    v = K[1, 1] * front[:, 1] / front[:, 2] + K[1, 2]
    # pixel u covers centre u + 0.5; the projection of the convex bounding box contains the silhouette; 1 px slack
    u_lo, v_lo, u_hi, v_hi = view.window
    u0 = max(u_lo, math.floor(u.min() - 0.5) - 1)
    u1 = min(u_hi, math.ceil(u.max() - 0.5) + 1)
    v0 = max(v_lo, math.floor(v.min() - 0.5) - 1)
    v1 = min(v_hi, math.ceil(v.max() - 0.5) + 1)
    return u0, v0, u1, v1


def render_view(view: CameraView, objects: tuple[ObjectSpec, ...], states: ObjectStates, light: np.ndarray,
                ambient: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, ObjectHits]:
    """Render one camera: RGB (H, W, 3) uint8, depth (H, W) float32 (optical z, m), instance (H, W) int32, hits."""
    cam = view.camera
    W, H = cam.width, cam.height
    fx, fy, cx, cy = cam.K[0, 0], cam.K[1, 1], cam.K[0, 2], cam.K[1, 2]
    R = cam.T_world_cam[:3, :3]
    origin = cam.T_world_cam[:3, 3]
    depth = view.background_depth.copy()
    rgb = view.background_rgb.copy()
    inst = np.zeros((H, W), np.int32)
    seen: list[tuple[ObjectSpec, int, int, int, int, int]] = []  # (spec, iu0, iv0, iu1, iv1, reference count)

    for spec, centre, yaw in zip(objects, states.centers, states.yaws):
        c, s = math.cos(yaw), math.sin(yaw)
        Rz = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])  # local -> world rotation
        corners_cam = (local_corners(spec) @ Rz.T + centre - origin) @ R  # (8, 3) optical frame
        rect = _rect(view, corners_cam)
        if rect is None:
            continue  # entirely behind the camera
        u0, v0, u1, v1 = rect
        if u1 < 0 or v1 < 0 or u0 >= W or v0 >= H or u0 > u1 or v0 > v1:
            continue  # no pixel of the image can show it
        M = Rz.T @ R  # optical direction -> local direction
        o_l = Rz.T @ (origin - centre)
        x = (np.arange(u0, u1 + 1) + 0.5 - cx) / fx  # (w,)
        y = (np.arange(v0, v1 + 1) + 0.5 - cy) / fy  # (h,)
        d = [M[k, 0] * x[None, :] + (M[k, 1] * y[:, None] + M[k, 2]) for k in range(3)]  # 3 x (h, w), optical z = 1
        t = intersect(spec, o_l, *d)  # (h, w) depth of the object alone, inf = miss
        reference = int(np.count_nonzero(t < np.inf))
        iu0, iv0, iu1, iv1 = max(u0, 0), max(v0, 0), min(u1, W - 1), min(v1, H - 1)
        inner = (slice(iv0 - v0, iv1 - v0 + 1), slice(iu0 - u0, iu1 - u0 + 1))
        image = (slice(iv0, iv1 + 1), slice(iu0, iu1 + 1))
        t_in = t[inner]
        depth_in = depth[image]
        win = t_in < depth_in  # (h', w') hits nearer than everything so far
        if not win.any():
            continue
        t_win = t_in[win]
        depth_in[win] = t_win
        inst[image][win] = spec.object_id
        q = np.stack([o_l[k] + t_win * d[k][inner][win] for k in range(3)], axis=1)  # (n, 3) local hit points
        albedo, normals = surface(spec, q)
        shade = lambert(normals, Rz.T @ light, ambient)
        rgb[image][win] = np.clip(albedo * shade[:, None] * 255.0 + 0.5, 0, 255).astype(np.uint8)
        seen.append((spec, iu0, iv0, iu1, iv1, reference))

    ids, boxes, labels, vis = [], [], [], []
    for spec, iu0, iv0, iu1, iv1, reference in seen:
        mask = inst[iv0:iv1 + 1, iu0:iu1 + 1] == spec.object_id
        count = int(np.count_nonzero(mask))
        if count == 0:
            continue  # hidden by objects drawn after it
        rows = np.flatnonzero(mask.any(axis=1))
        cols = np.flatnonzero(mask.any(axis=0))
        ids.append(spec.object_id)
        labels.append(spec.label)
        boxes.append((iu0 + cols[0], iv0 + rows[0], iu0 + cols[-1] + 1, iv0 + rows[-1] + 1))
        vis.append(count / reference)
    hits = ObjectHits(
        ids=np.asarray(ids, np.int64).reshape(-1),
        boxes=np.asarray(boxes, np.float32).reshape(-1, 4),
        labels=np.asarray(labels, np.int64).reshape(-1),
        visibility=np.asarray(vis, np.float32).reshape(-1),
    )
    return rgb, depth, inst, hits
