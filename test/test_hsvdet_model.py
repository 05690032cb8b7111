"""HSV-DET model: shapes, the sparse global block (identity at alpha = 0, gradients, variants), config, NMS and
post-processing."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from depthtracker.configio import config_dir, load_config
from depthtracker.kernels.sparse_global import naive_sparse_global_attention
from depthtracker.models.hsvdet import (
    PRESETS,
    HSVDet,
    HSVDetConfig,
    HSVDetCriterion,
    HSVDetOutput,
    HSVDetRuntimeConfig,
    nms,
    postprocess,
)
from depthtracker.models.hsvdet.sgb import SparseGlobalLayer
from depthtracker.types import Detections

H, W = 64, 96


def tiny(**kw: object) -> HSVDetConfig:
    return HSVDetConfig.from_preset("n", num_classes=2, input_height=H, input_width=W, **kw)


@pytest.mark.parametrize("size", [(64, 96), (60, 90)], ids=["multiple-of-32", "padded"])
def test_output_shapes_per_level(size: tuple[int, int]) -> None:
    torch.manual_seed(0)
    cfg = tiny()
    out = HSVDet(cfg).eval()(torch.rand(2, 3, *size))
    assert isinstance(out, HSVDetOutput)
    assert out.image_size == size and out.strides == (8, 16, 32)
    for lv, (box, cls) in enumerate(zip(out.box_logits, out.cls_logits)):
        s = 8 * 2**lv
        assert box.shape == (2, 4 * cfg.reg_max, 64 // s, 96 // s)
        assert cls.shape == (2, cfg.num_classes, 64 // s, 96 // s)
    box, cls = out.flat()
    anchors, strides = out.anchors()
    a = 8 * 12 + 4 * 6 + 2 * 3
    assert box.shape == (2, a, 64) and cls.shape == (2, a, 2) and anchors.shape == (a, 2) and strides.shape == (a, 1)
    assert anchors[0].tolist() == [4.0, 4.0] and anchors[8 * 12].tolist() == [8.0, 8.0]  # first P4 cell centre


@pytest.mark.parametrize("placement", ["neck", "backbone"])
@pytest.mark.parametrize("levels,topk", [((4, 5), 16), ((3, 4, 5), 5), ((5,), None)], ids=["P4P5-k16", "all-k5",
                                                                                          "P5-dense"])
def test_sgb_at_alpha_zero_leaves_output_identical_to_yolo(levels: tuple[int, ...], topk: int | None,
                                                           placement: str) -> None:
    torch.manual_seed(0)
    yolo = HSVDet(tiny(sgb_levels=())).eval()
    hsv = HSVDet(tiny(sgb_levels=levels, sgb_topk=topk, sgb_placement=placement)).eval()
    missing, unexpected = hsv.load_state_dict(yolo.state_dict(), strict=False)
    assert not unexpected and missing and all(k.startswith("sgb.") for k in missing)
    assert all(float(hsv.sgb[f"P{lv}"].alpha.detach().abs().max()) == 0 for lv in levels)
    x = torch.rand(2, 3, H, W)
    with torch.no_grad():
        a, b = yolo(x), hsv(x)
    for ta, tb in zip(a.box_logits + a.cls_logits, b.box_logits + b.cls_logits):
        assert torch.equal(ta, tb)  # exact: the gated residual is the only residual and alpha = 0


@pytest.mark.parametrize("placement,reaches_p3", [("neck", False), ("backbone", True)])
def test_placement_decides_which_head_levels_a_block_reaches(placement: str, reaches_p3: bool) -> None:
    """A P4/P5 block on the neck's outputs feeds only the P4/P5 heads; on the backbone it reaches P3 through the
    neck's top-down path (what lets the blocks matter when every object is detected at P3)."""
    torch.manual_seed(0)
    model = HSVDet(tiny(sgb_levels=(4, 5), sgb_topk=8, sgb_placement=placement)).eval()
    x = torch.rand(2, 3, H, W)
    with torch.no_grad():
        closed = model(x)
        for lv in (4, 5):
            model.sgb[f"P{lv}"].alpha.normal_()
        opened = model(x)
    changed = [not torch.equal(a, b) for a, b in zip(closed.cls_logits, opened.cls_logits, strict=True)]
    assert changed == [reaches_p3, True, True]
    with pytest.raises(ValueError, match="sgb_placement"):
        tiny(sgb_placement="head")


def test_gradient_flows_to_alpha_of_every_level() -> None:
    torch.manual_seed(0)
    cfg = tiny(sgb_levels=(3, 4, 5), sgb_topk=8)
    model = HSVDet(cfg).train()
    targets = torch.tensor([[0, 1, 10.0, 8, 50, 40], [1, 0, 30, 20, 90, 60]])
    HSVDetCriterion(cfg)(model(torch.rand(2, 3, H, W)), targets)["loss"].backward()
    for lv in (3, 4, 5):
        alpha = model.sgb[f"P{lv}"].alpha
        assert alpha.requires_grad and alpha.grad is not None and float(alpha.grad.abs().sum()) > 0


def test_param_groups_keep_gates_norms_and_biases_out_of_weight_decay() -> None:
    model = HSVDet(tiny())
    decay, no_decay = model.param_groups(5e-4)
    assert decay["weight_decay"] == 5e-4 and no_decay["weight_decay"] == 0.0
    ids = {id(p) for p in no_decay["params"]}
    assert id(model.sgb["P5"].alpha) in ids and id(model.stem.bn.weight) in ids and id(model.sgb["P4"].qkv.bias) in ids
    assert id(model.stem.conv.weight) in {id(p) for p in decay["params"]}
    assert len(decay["params"]) + len(no_decay["params"]) == len(list(model.parameters()))


def _layer(selection: str = "sq_l2", gating: str = "learnable", topk: int | None = 7) -> SparseGlobalLayer:
    torch.manual_seed(1)
    layer = SparseGlobalLayer(32, 4, topk, selection, gating, gate_value=0.5)
    if gating == "learnable":
        with torch.no_grad():
            layer.alpha.normal_()
    return layer.eval()


def _naive(layer: SparseGlobalLayer, x: torch.Tensor, topk: int) -> torch.Tensor:
    return naive_sparse_global_attention(x, layer.qkv.weight, layer.qkv.bias, layer.proj.weight, layer.proj.bias,
                                         layer.q_norm.weight, layer.q_norm.bias, layer.k_norm.weight,
                                         layer.k_norm.bias, layer.alpha, topk, layer.config.heads, layer.config.eps)


@pytest.mark.parametrize("topk", [7, 19, None], ids=["k7", "k19-all", "dense"])
def test_batched_path_matches_kernel_naive(topk: int | None) -> None:
    layer = _layer(topk=topk)
    x = torch.randn(3, 19, 32)  # ragged N
    with torch.no_grad():
        torch.testing.assert_close(layer.batched(x), _naive(layer, x, topk or 19), atol=1e-5, rtol=1e-5)


def test_l2_and_sq_l2_select_the_same_tokens() -> None:
    x = torch.randn(2, 50, 32)
    a = _layer("l2").select(x, 10).sort(1).values
    b = _layer("sq_l2").select(x, 10).sort(1).values
    assert torch.equal(a, b)


def test_random_selection_is_repeatable_in_eval_and_varies_in_training() -> None:
    layer = _layer("random")
    x = torch.randn(2, 50, 32)
    assert torch.equal(layer.select(x, 10), layer.select(x, 10))
    layer.train()
    draws = {tuple(layer.select(x, 10)[0].tolist()) for _ in range(5)}
    assert len(draws) > 1


@pytest.mark.parametrize("gating,gain", [("none", 1.0), ("fixed", 0.5)])
def test_constant_gates(gating: str, gain: float) -> None:
    layer = _layer(gating=gating, topk=None)
    assert "alpha" not in dict(layer.named_parameters())
    x = torch.randn(2, 32, 4, 5)
    ref = _layer(gating="learnable", topk=None)
    ref.load_state_dict(layer.state_dict(), strict=False)
    with torch.no_grad():
        ref.alpha.fill_(gain)
        torch.testing.assert_close(layer(x), ref(x))
        assert not torch.allclose(layer(x), x)


def test_config_validation_names_the_field() -> None:
    with pytest.raises(ValueError, match="selection"):
        tiny(selection="l1")
    with pytest.raises(ValueError, match="gating"):
        tiny(gating="sometimes")
    with pytest.raises(ValueError, match="sgb_heads"):
        tiny(sgb_heads=3)
    with pytest.raises(ValueError, match="sgb_levels"):
        tiny(sgb_levels=(2, 5))
    with pytest.raises(ValueError, match="sgb_topk"):
        tiny(sgb_topk=0)
    with pytest.raises(ValueError, match="nms_iou"):
        tiny(nms_iou=0.0)
    with pytest.raises(ValueError, match="preset"):
        HSVDetConfig.from_preset("xl")


def test_presets_and_dict_round_trip() -> None:
    assert set(PRESETS) == {"n", "s", "l"}
    assert HSVDetConfig.from_preset("n").widths == (16, 32, 64, 128, 256)
    assert HSVDetConfig.from_preset("l").widths == (64, 128, 256, 512, 512)
    cfg = tiny(sgb_levels=(3, 5), sgb_topk=None, gating="fixed", sgb_placement="backbone")
    assert HSVDetConfig.from_dict(cfg.to_dict()) == cfg
    old = {k: v for k, v in tiny().to_dict().items() if k != "sgb_placement"}  # a sidecar written before the field
    assert HSVDetConfig.from_dict(old).sgb_placement == "neck"


def test_runtime_yaml_loads_and_applies() -> None:
    rt = load_config(HSVDetRuntimeConfig, config_dir() / "hsvdet.yaml")
    assert {f.name for f in dataclasses.fields(rt)} >= {"preset", "score_threshold", "nms_iou"}
    cfg = tiny().with_runtime(rt)
    assert cfg.score_threshold == rt.score_threshold and cfg.nms_iou == rt.nms_iou


def test_nms_keeps_best_of_same_class_and_both_of_different_classes() -> None:
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [0, 0, 10, 10], [50, 50, 60, 60]], np.float32)
    scores = np.array([0.6, 0.9, 0.8, 0.3], np.float32)
    keep = nms(boxes, scores, np.array([0, 0, 1, 0]), iou_threshold=0.5)
    assert keep.tolist() == [1, 2, 3]  # box 0 (class 0) loses to box 1; box 2 is class 1; box 3 overlaps nothing
    keep = nms(boxes[:2], scores[:2], np.array([0, 1]), iou_threshold=0.5)
    assert sorted(keep.tolist()) == [0, 1]
    assert nms(np.zeros((0, 4)), np.zeros(0), np.zeros(0), 0.5).size == 0


def _handmade_output(reg_max: int = 16) -> HSVDetOutput:
    """Output for a 64x96 input with one confident box: P3 cell (row 2, col 3) -> anchor (28, 20), class 1, distances
    l, t, r, b = 2, 1, 3, 2 strides of 8 px -> box [12, 12, 52, 36]."""
    shapes = [(8, 12), (4, 6), (2, 3)]
    box = [torch.zeros(1, 4 * reg_max, h, w) for h, w in shapes]
    cls = [torch.full((1, 2, h, w), -20.0) for h, w in shapes]
    for side, d in enumerate((2, 1, 3, 2)):
        box[0][0, side * reg_max + d, 2, 3] = 50.0  # all mass on bin d
    cls[0][0, 1, 2, 3] = 4.0
    cls[0][0, 0, 2, 3] = 1.0  # a weaker second class at the same anchor
    return HSVDetOutput(box, cls, (8, 16, 32), (64, 96), reg_max)


def test_postprocess_returns_detections_in_original_pixels() -> None:
    cfg = tiny(score_threshold=0.5)
    (det,) = postprocess(_handmade_output(), cfg, image_sizes=[(192, 256)], camera_ids=[2], stamps_ns=[7])
    assert isinstance(det, Detections) and len(det) == 1
    assert det.camera_id == 2 and det.stamp_ns == 7 and det.labels.tolist() == [1]
    np.testing.assert_allclose(det.scores, [1 / (1 + np.exp(-4.0))], rtol=1e-5)
    # [12, 12, 52, 36] in the 96x64 input, scaled x2 in x and x4 in y
    np.testing.assert_allclose(det.boxes[0], [24, 48, 104, 144], atol=1e-3)
    (multi,) = postprocess(_handmade_output(), cfg.replace(multi_label=True), image_sizes=[(96, 64)])
    assert sorted(multi.labels.tolist()) == [0, 1]  # both classes above 0.5 at the same anchor


def test_postprocess_on_model_output() -> None:
    torch.manual_seed(0)
    cfg = tiny(score_threshold=0.0, max_detections=5)
    model = HSVDet(cfg).eval()
    with torch.no_grad():
        dets = postprocess(model(torch.rand(2, 3, H, W)), cfg, image_sizes=[(320, 240), (640, 480)])
    assert len(dets) == 2 and all(0 < len(d) <= 5 for d in dets)
    assert dets[1].boxes[:, 2].max() <= 640 and dets[1].boxes[:, 3].max() <= 480
    assert all(np.all(np.diff(d.scores) <= 0) for d in dets)


def test_fold_batchnorm_matches_the_network_and_leaves_it_alone() -> None:
    from depthtracker.models.hsvdet.blocks import ConvBNAct, fold_batchnorm

    torch.manual_seed(0)
    model = HSVDet(tiny())
    with torch.no_grad():  # BatchNorm statistics far from identity, so a wrong fold cannot pass
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-1, 1)
                m.running_var.uniform_(0.2, 3.0)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.5, 0.5)
    model.eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    folded = fold_batchnorm(model)
    blocks = [m for m in folded.modules() if isinstance(m, ConvBNAct)]
    assert blocks and all(isinstance(b.bn, torch.nn.Identity) and b.conv.bias is not None for b in blocks)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in folded.modules())
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())  # the original is untouched
    x = torch.rand(2, 3, H, W)
    with torch.no_grad():
        ref, got = model(x), folded(x)
        got_nhwc = folded.to(memory_format=torch.channels_last)(x.contiguous(memory_format=torch.channels_last))
    for a, b in ((ref.box_logits, got.box_logits), (ref.cls_logits, got.cls_logits),
                 (ref.box_logits, got_nhwc.box_logits), (ref.cls_logits, got_nhwc.cls_logits)):
        for ra, rb in zip(a, b, strict=True):
            torch.testing.assert_close(rb, ra, rtol=1e-4, atol=1e-4)
