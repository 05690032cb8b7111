"""Token embeddings of DepthTrack: patches, 2-D positions and the camera embedding (per-patch rays).

Camera embedding: every patch of every camera gets the ray through its centre pixel, so that the network knows
where each token looks in metric 3-D space (as in ray-map conditioning, e.g. CAT3D / Plücker-ray embeddings).
Per patch the features are (10 values):

* the unit ray in the camera's optical frame (3) — encodes the principal point and field of view;
* the same ray rotated into the rig frame (3) — camera 0's optical frame: lets the model relate cameras;
* the camera centre in the rig frame, metres (3) — the baselines, which fix the metric scale of parallax;
* ``log(patch / fx)``: the angle one patch subtends (1) — links apparent size to metric depth across lenses.

They pass through a two-layer MLP and are added to the patch tokens with a fixed 2-D sine-cosine position
embedding (MAE). Poses enter relative to camera 0, so moving the whole rig in the world changes nothing.
"""

from __future__ import annotations

import functools
import math

import torch
from torch import nn

__all__ = ["PatchEmbed", "CameraEmbed", "patch_rays", "sincos_2d"]


@functools.lru_cache(maxsize=16)
def _sincos_cpu(h: int, w: int, dim: int) -> torch.Tensor:
    if dim % 4:
        raise ValueError(f"sincos_2d needs dim divisible by 4, got {dim}")
    q = dim // 4
    omega = 1.0 / 10000 ** (torch.arange(q, dtype=torch.float64) / q)  # (q,)
    ys, xs = torch.meshgrid(torch.arange(h, dtype=torch.float64), torch.arange(w, dtype=torch.float64), indexing="ij")
    oy = ys.reshape(-1, 1) * omega  # (h*w, q)
    ox = xs.reshape(-1, 1) * omega
    emb = torch.cat([oy.sin(), oy.cos(), ox.sin(), ox.cos()], dim=1)  # (h*w, dim)
    return emb.view(h, w, dim).float()


def sincos_2d(h: int, w: int, dim: int, device: torch.device | str | None = None) -> torch.Tensor:
    """Fixed 2-D sine-cosine position embedding ``(h, w, dim)`` float32 (MAE's, rows then columns)."""
    return _sincos_cpu(h, w, dim).to(device)


def patch_rays(K: torch.Tensor, T_world_cam: torch.Tensor, hp: int, wp: int, patch: int) -> torch.Tensor:
    """Camera-embedding features of every patch: ``(B, V, hp, wp, 10)`` float32 (see the module docstring).

    Args:
        K: ``(B, V, 3, 3)`` intrinsics in network-input pixels (pixel centres at integer + 0.5).
        T_world_cam: ``(B, V, 4, 4)`` optical-frame-to-world poses; camera 0 of each sample is the rig frame.
        hp, wp: patch rows and columns; patch: patch side in pixels.
    """
    K = K.float()
    T = T_world_cam.double()
    T_rig = torch.linalg.inv(T[:, :1]) @ T  # (B, V, 4, 4) camera -> camera-0 frame
    dev = K.device
    u = (torch.arange(wp, device=dev, dtype=torch.float32) + 0.5) * patch  # (wp,) patch centres, pixels
    v = (torch.arange(hp, device=dev, dtype=torch.float32) + 0.5) * patch  # (hp,)
    fx, fy = K[..., 0, 0, None, None], K[..., 1, 1, None, None]  # (B, V, 1, 1)
    cx, cy = K[..., 0, 2, None, None], K[..., 1, 2, None, None]
    x = (u.view(1, 1, 1, wp) - cx) / fx  # (B, V, 1, wp)
    y = (v.view(1, 1, hp, 1) - cy) / fy  # (B, V, hp, 1)
    x, y = torch.broadcast_tensors(x, y)  # (B, V, hp, wp)
    d = torch.stack([x, y, torch.ones_like(x)], -1)
    d = d / d.norm(dim=-1, keepdim=True)  # (B, V, hp, wp, 3) unit ray, optical frame
    R = T_rig[..., :3, :3].float()  # (B, V, 3, 3)
    d_rig = torch.einsum("bvij,bvhwj->bvhwi", R, d)
    t = T_rig[..., :3, 3].float()[:, :, None, None, :].expand_as(d)  # (B, V, hp, wp, 3)
    ang = torch.log(patch / fx).expand(x.shape).unsqueeze(-1)  # (B, V, hp, wp, 1)
    return torch.cat([d, d_rig, t, ang], dim=-1)


class PatchEmbed(nn.Module):
    """``images (N, 3, H, W)`` float in [0, 1] -> patch grid ``(N, H/p, W/p, dim)`` plus the 2-D position embedding."""

    def __init__(self, dim: int, patch: int) -> None:
        super().__init__()
        self.patch = patch
        self.proj = nn.Conv2d(3, dim, patch, stride=patch)
        self.norm = nn.LayerNorm(dim)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        n, _, h, w = images.shape
        if h % self.patch or w % self.patch:
            raise ValueError(f"image size {h}x{w} must be a multiple of the patch size {self.patch}")
        x = self.proj((images - 0.45) / 0.25)  # (N, dim, hp, wp); rough unit-variance pixels
        x = self.norm(x.permute(0, 2, 3, 1))  # (N, hp, wp, dim)
        return x + sincos_2d(x.shape[1], x.shape[2], x.shape[3], x.device).to(x.dtype)


class CameraEmbed(nn.Module):
    """Per-patch ray features ``(B, V, hp, wp, 10)`` -> ``(B, V, hp, wp, dim)`` (two-layer MLP)."""

    IN = 10

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(self.IN, dim), nn.GELU(), nn.Linear(dim, dim))
        nn.init.zeros_(self.mlp[2].weight)  # starts as a no-op: training brings the geometry in gradually
        nn.init.zeros_(self.mlp[2].bias)

    def forward(self, rays: torch.Tensor) -> torch.Tensor:
        return self.mlp(rays)


def check_cameras(images: torch.Tensor, K: torch.Tensor, T_world_cam: torch.Tensor) -> None:
    """Shape checks shared by the model and the predictor; errors name the offending argument."""
    if images.dim() != 5 or images.shape[2] != 3:
        raise ValueError(f"images must be (B, V, 3, H, W), got {tuple(images.shape)}")
    b, v = images.shape[:2]
    if tuple(K.shape) != (b, v, 3, 3):
        raise ValueError(f"intrinsics must be (B, V, 3, 3) = ({b}, {v}, 3, 3), got {tuple(K.shape)}")
    if tuple(T_world_cam.shape) != (b, v, 4, 4):
        raise ValueError(f"extrinsics must be (B, V, 4, 4) = ({b}, {v}, 4, 4), got {tuple(T_world_cam.shape)}")
    if not bool(torch.isfinite(K).all()) or not bool((K[..., 0, 0] > 0).all()):
        raise ValueError("intrinsics must be finite with positive focal lengths")
    if math.prod(images.shape) == 0:
        raise ValueError("images is empty")
