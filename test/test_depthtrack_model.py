"""DepthTrack model: shapes per camera, positive metric depth, rig invariance, SOT decoding into TargetTracker,
checkpoint round trip, and a short overfit that must reduce both task losses."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from depthtracker.data.crops import CropTransform
from depthtracker.models.depthtrack import DepthTrack, DepthTrackConfig, DepthTrackCriterion, decode_sot
from depthtracker.models.depthtrack.predictor import DepthTrackPredictor
from depthtracker.tracking import TargetTracker
from depthtracker.train.checkpoints import save_checkpoint

TINY = dict(dim=32, depth=1, heads=2, kv_heads=1, num_experts=4, top_k=2, expert_hidden=32, shared_hidden=32,
            input_height=32, input_width=48, template_size=32, search_size=48, head_channels=16, refine_channels=4)


def _cfg(**kw) -> DepthTrackConfig:
    return DepthTrackConfig.from_preset("edge", **{**TINY, **kw})


def _rig(b: int = 2, v: int = 2) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    images = torch.rand(b, v, 3, 32, 48, generator=g)
    K = torch.tensor([[40.0, 0, 24], [0, 40, 16], [0, 0, 1]]).expand(b, v, 3, 3).clone()
    T = torch.eye(4, dtype=torch.float64).expand(b, v, 4, 4).clone()
    T[:, 1, 0, 3] = 0.12  # second camera 12 cm to the right: a stereo pair
    return images, K, T


@pytest.mark.parametrize("kind", ["mha", "mqa", "gqa", "nsa"])
def test_forward_shapes_per_camera_and_positive_metric_depth(kind):
    torch.manual_seed(0)
    cfg = _cfg(attention=kind, nsa_tile=2, nsa_dense_below=0, nsa_n_select=2, attention_backend="naive")
    model = DepthTrack(cfg).eval()
    images, K, T = _rig(2, 3)
    out = model(images, K, T, torch.rand(2, 3, 32, 32), torch.rand(2, 3, 48, 48))
    assert out.log_depth.shape == (2, 3, 32, 48)
    d = out.depth
    assert torch.isfinite(d).all() and (d >= cfg.min_depth * 0.999).all() and (d <= cfg.max_depth * 1.001).all()
    assert out.sot.heatmap.shape == (2, 1, 6, 6) and out.sot.size.shape == (2, 2, 6, 6)
    assert out.sot.log_scale.shape == (2, 4, 6, 6) and out.aux_loss.ndim == 0
    depth_only = model(images, K, T)
    assert depth_only.sot is None and torch.allclose(depth_only.log_depth, out.log_depth, atol=1e-5)


def test_moving_the_whole_rig_changes_nothing():
    torch.manual_seed(0)
    model = DepthTrack(_cfg()).eval()
    with torch.no_grad():  # make the camera embedding matter (it starts as a no-op)
        model.camera_embed.mlp[2].weight.normal_(0, 0.5)
    images, K, T = _rig()
    move = torch.eye(4, dtype=torch.float64)
    move[:3, :3] = torch.tensor([[0.0, -1, 0], [1, 0, 0], [0, 0, 1]], dtype=torch.float64)
    move[:3, 3] = torch.tensor([3.0, -2.0, 1.5], dtype=torch.float64)
    a = model(images, K, T).log_depth
    torch.testing.assert_close(model(images, K, move @ T).log_depth, a, atol=1e-4, rtol=1e-4)
    T2 = T.clone()
    T2[:, 1, 0, 3] = 0.5  # a different baseline is a different rig
    assert not torch.allclose(model(images, K, T2).log_depth, a, atol=1e-4)


def test_sot_decode_gives_candidates_target_tracker_accepts():
    torch.manual_seed(0)
    cfg = _cfg()
    model = DepthTrack(cfg).eval()
    maps, _ = model.forward_sot(torch.rand(1, 3, 32, 32), torch.rand(1, 3, 48, 48))
    with torch.no_grad():
        maps.heatmap[0, 0, 2, 3] = 6.0  # a clear peak at cell (x=3, y=2)
    (c,) = decode_sot(maps, cfg.search_size, max_candidates=4)
    assert c.boxes.shape[1] == 4 and c.boxes.dtype == np.float32 and 1 <= len(c.boxes) <= 4
    assert np.all(np.diff(c.scores) <= 0) and c.scores[0] == pytest.approx(1 / (1 + np.exp(-6.0)), rel=1e-5)
    centre = (c.boxes[0, :2] + c.boxes[0, 2:]) / 2
    assert 24 <= centre[0] <= 32 and 16 <= centre[1] <= 24  # inside cell (3, 2) of stride 8
    assert (c.sigmas > 0).all()
    img = c.to_image(CropTransform(scale=0.5, x0=100, y0=50, size=48), width=640, height=480)
    np.testing.assert_allclose((img.boxes[0, :2] + img.boxes[0, 2:]) / 2, centre / 0.5 + [100, 50], rtol=1e-5)
    tracker = TargetTracker()
    tracker.initialize(img.boxes[0], 0)
    state = tracker.update(img.boxes, img.scores, 66_000_000)
    assert state.tracking and tracker.selected_index == 0


def test_checkpoint_rebuilds_the_model(tmp_path):
    torch.manual_seed(0)
    model = DepthTrack(_cfg(attention="mqa")).eval()
    save_checkpoint(tmp_path / "m", model, model.config.to_dict())
    pred = DepthTrackPredictor.from_checkpoint(tmp_path / "m.safetensors", device="cpu")
    assert pred.config == model.config
    images, K, T = _rig(1, 2)
    torch.testing.assert_close(pred.model(images, K, T).log_depth, model(images, K, T).log_depth)
    with pytest.raises(ValueError, match="unknown DepthTrack preset"):
        DepthTrackConfig.from_preset("huge")
    with pytest.raises(ValueError, match="multiple of patch"):
        _cfg(input_height=30)


def test_overfit_one_batch_reduces_both_losses():
    torch.manual_seed(0)
    cfg = _cfg()
    model = DepthTrack(cfg)
    crit = DepthTrackCriterion(cfg)
    images, K, T = _rig(2, 2)
    yy, xx = torch.meshgrid(torch.arange(32.0), torch.arange(48.0), indexing="ij")
    depth = (1.0 + 4.0 * yy / 31 + xx / 47).expand(2, 2, 32, 48).clone()  # a ramp, 1..6 m
    images[:, :, 0] = (depth / 6.0).clamp(0, 1)  # the image tells where it is near or far
    search = torch.rand(2, 3, 48, 48) * 0.2
    boxes = torch.tensor([[8.0, 10.0, 24.0, 30.0], [26.0, 6.0, 42.0, 20.0]])
    for i, b in enumerate(boxes.long()):
        search[i, :, b[1]:b[3], b[0]:b[2]] = 0.9  # a bright target on a dark search crop
    template = torch.full((2, 3, 32, 32), 0.9)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)

    def losses() -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        return crit(model(images, K, T, template, search), depth=depth, boxes=boxes)

    _, first = losses()
    for _ in range(15):
        loss, _ = losses()
        opt.zero_grad()
        loss.backward()
        opt.step()
    _, last = losses()
    assert last["depth"] < 0.5 * first["depth"], (first["depth"], last["depth"])
    sot_first = first["heatmap"] + first["box_l1"] + first["giou"]
    sot_last = last["heatmap"] + last["box_l1"] + last["giou"]
    assert sot_last < 0.5 * sot_first, (sot_first, sot_last)
