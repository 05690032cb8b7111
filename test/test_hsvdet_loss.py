"""HSV-DET training loss: CIoU, DFL coding, task-aligned assignment on hand-made cases, and a real overfitting run."""

from __future__ import annotations

import math

import pytest
import torch
from depthtracker.geometry.boxes import box_iou
from depthtracker.models.hsvdet import HSVDet, HSVDetConfig, HSVDetCriterion, postprocess
from depthtracker.models.hsvdet.assigner import task_aligned_assign
from depthtracker.models.hsvdet.box_ops import ciou, iou
from depthtracker.models.hsvdet.heads import box_to_dist, dfl_expectation, dist_to_box, make_anchors
from depthtracker.models.hsvdet.losses import dfl_loss, pad_targets


def test_ciou_identical_boxes_is_one() -> None:
    b = torch.tensor([[0.0, 0, 2, 2], [10, 20, 35, 27]])
    torch.testing.assert_close(ciou(b, b), torch.ones(2), atol=1e-6, rtol=0)


def test_ciou_known_cases() -> None:
    a = torch.tensor([0.0, 0, 2, 2])
    # same shape shifted by 1: IoU 2/6, enclosing diagonal^2 = 3^2 + 2^2, centre distance^2 = 1, no aspect term
    torch.testing.assert_close(ciou(a, torch.tensor([1.0, 0, 3, 2])), torch.tensor(1 / 3 - 1 / 13))
    # twice as wide: IoU 1/2, diagonal^2 = 20, centre distance^2 = 1, aspect term v = 4/pi^2 (atan 2 - atan 1)^2
    v = 4 / math.pi**2 * (math.atan(2) - math.atan(1)) ** 2
    want = 0.5 - 1 / 20 - v * v / (v + 0.5)
    torch.testing.assert_close(ciou(a, torch.tensor([0.0, 0, 4, 2])), torch.tensor(want))
    # disjoint: IoU 0, centres 4 apart on a 6 x 2 enclosing box
    torch.testing.assert_close(ciou(a, torch.tensor([4.0, 0, 6, 2])), torch.tensor(-16 / 40))
    torch.testing.assert_close(iou(a, torch.tensor([1.0, 1, 3, 3])), torch.tensor(1 / 7))


def test_dfl_round_trip() -> None:
    reg_max = 16
    anchors = torch.tensor([[20.0, 28.0], [100.0, 60.0]])
    strides = torch.tensor([[8.0], [16.0]])
    boxes = torch.tensor([[3.0, 7.5, 61.2, 40.0], [42.0, 13.0, 150.5, 101.0]])
    dist = box_to_dist(boxes, anchors, strides, reg_max)  # (2, 4) bins
    # encode each side as the two-hot distribution DFL trains towards, as logits
    left = dist.floor()
    w_right = dist - left
    probs = torch.zeros(2, 4, reg_max)
    probs.scatter_(-1, left.long()[..., None], (1 - w_right)[..., None])
    probs.scatter_add_(-1, (left.long() + 1)[..., None], w_right[..., None])
    logits = probs.clamp(min=1e-12).log().flatten(1)  # (2, 4 * reg_max)
    decoded = dist_to_box(dfl_expectation(logits, reg_max), anchors, strides)
    torch.testing.assert_close(decoded, boxes, atol=1e-3, rtol=0)
    # the loss is smallest at the two-hot target
    uniform = torch.zeros(2, 4, reg_max)
    assert (dfl_loss(logits.view(2, 4, reg_max), dist) < dfl_loss(uniform, dist)).all()


def _grid() -> tuple[torch.Tensor, torch.Tensor]:
    return make_anchors([(8, 8)], (8,))  # 64 x 64 image, anchors at 4, 12, ..., 60


def test_tal_gt_gets_its_topk_anchors_inside_and_the_rest_is_background() -> None:
    anchors, _ = _grid()
    gt = torch.tensor([[[8.0, 8, 40, 40]]])  # anchors 12..36 inside: 4 x 4 = 16
    # each anchor predicts the gt box moved by the anchor's offset from the gt centre (24, 24): IoU falls with distance
    shift = anchors - 24.0
    pred = (gt[0, 0] + torch.cat([shift, shift], 1))[None]  # (1, 64, 4)
    scores = torch.full((1, 64, 3), 0.5)
    a = task_aligned_assign(scores, pred, anchors, torch.tensor([[2]]), gt, torch.tensor([[True]]), topk=4)
    fg = anchors[a.fg_mask[0]]
    assert sorted(map(tuple, fg.tolist())) == [(20.0, 20.0), (20.0, 28.0), (28.0, 20.0), (28.0, 28.0)]
    assert torch.equal(a.target_boxes[0][a.fg_mask[0]], gt[0].expand(4, 4))
    assert (a.target_scores[0][~a.fg_mask[0]] == 0).all()
    assert (a.target_scores[0][a.fg_mask[0]][:, [0, 1]] == 0).all() and (a.target_scores[0][a.fg_mask[0], 2] > 0).all()
    # topk larger than the anchors inside: only inside anchors, never outside
    a = task_aligned_assign(scores, pred, anchors, torch.tensor([[2]]), gt, torch.tensor([[True]]), topk=30)
    assert int(a.fg_mask.sum()) == 16
    inside = (anchors > 8).all(1) & (anchors < 40).all(1)
    assert torch.equal(a.fg_mask[0], inside)


def test_tal_normalised_scores_peak_at_best_iou_and_padding_is_ignored() -> None:
    anchors, _ = _grid()
    gt = torch.tensor([[[8.0, 8, 40, 40], [0, 0, 0, 0]]])  # second row is padding
    pred = gt[0, 0].expand(1, 64, 4).clone()  # perfect predictions everywhere: IoU 1
    scores = torch.full((1, 64, 2), 0.3)
    a = task_aligned_assign(scores, pred, anchors, torch.tensor([[1, 0]]), gt, torch.tensor([[True, False]]), topk=10)
    assert int(a.fg_mask.sum()) == 10 and (a.target_gt[0][a.fg_mask[0]] == 0).all()
    torch.testing.assert_close(a.target_scores[0, :, 1].max(), torch.tensor(1.0))


def test_tal_anchor_claimed_by_two_boxes_goes_to_the_larger_overlap() -> None:
    anchors, _ = _grid()
    gts = torch.tensor([[[8.0, 8, 40, 40], [16, 16, 48, 48]]])  # both contain anchors 20..36
    pred = torch.tensor([16.0, 16, 48, 48]).expand(1, 64, 4).clone()  # every prediction is gt 1
    scores = torch.full((1, 64, 2), 0.5)
    a = task_aligned_assign(scores, pred, anchors, torch.tensor([[0, 1]]), gts, torch.tensor([[True, True]]), topk=64)
    shared = ((anchors > 16) & (anchors < 40)).all(1)
    assert (a.target_gt[0][shared] == 1).all()
    only0 = ((anchors > 8) & (anchors < 40)).all(1) & ~shared
    assert (a.target_gt[0][only0] == 0).all() and a.fg_mask[0][only0].all()


def test_pad_targets_layout() -> None:
    t = torch.tensor([[2, 1, 1, 2, 3, 4], [0, 0, 5, 5, 6, 6], [2, 2, 7, 7, 8, 8.0]])
    labels, boxes, mask = pad_targets(t, 3)
    assert mask.tolist() == [[True, False], [False, False], [True, True]]
    assert labels[2].tolist() == [1, 2] and boxes[0, 0].tolist() == [5, 5, 6, 6]
    with pytest.raises(ValueError, match="batch_idx"):
        pad_targets(t, 2)


def tiny() -> HSVDetConfig:
    return HSVDetConfig.from_preset("n", num_classes=2, input_height=64, input_width=96, sgb_topk=16)


def test_empty_targets_give_background_only_loss() -> None:
    torch.manual_seed(0)
    cfg = tiny()
    out = HSVDet(cfg)(torch.rand(2, 3, 64, 96))
    terms = HSVDetCriterion(cfg)(out, torch.zeros(0, 6))
    assert float(terms["box"].detach()) == 0 and float(terms["dfl"].detach()) == 0 and float(terms["cls"].detach()) > 0
    terms["loss"].backward()


def _scene(n: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
    """Grey images with a red and a blue rectangle each: label 0 = red, 1 = blue."""
    images = torch.full((n, 3, 64, 96), 0.5)
    rows = []
    for i in range(n):
        (x1, y1, x2, y2), (u1, v1, u2, v2) = ((8 + 20 * i, 8, 40 + 20 * i, 40), (50 - 10 * i, 20, 90 - 10 * i, 60))
        images[i, :, y1:y2, x1:x2] = torch.tensor([0.9, 0.1, 0.1])[:, None, None]
        images[i, :, v1:v2, u1:u2] = torch.tensor([0.1, 0.1, 0.9])[:, None, None]
        rows += [[i, 0, x1, y1, x2, y2], [i, 1, u1, v1, u2, v2]]
    return images, torch.tensor(rows, dtype=torch.float32)


def test_loss_decreases_when_overfitting_one_batch() -> None:
    torch.manual_seed(0)
    cfg = tiny()
    model = HSVDet(cfg).train()
    crit = HSVDetCriterion(cfg)
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3)
    images, targets = _scene()
    history = []
    for _ in range(30):
        terms = crit(model(images), targets)
        opt.zero_grad()
        terms["loss"].backward()
        opt.step()
        history.append({k: float(v.detach()) for k, v in terms.items()})
    first, last = history[0], history[-1]
    assert last["loss"] < 0.5 * first["loss"], (first, last)
    assert last["box"] < first["box"] and last["dfl"] < first["dfl"]
    assert float(model.sgb["P5"].alpha.detach().abs().max()) > 0  # the gate learned to open
    # and it detects: every box found with the right class (BatchNorm still on batch statistics: 30 steps are too few
    # for the slow running averages that eval mode uses)
    with torch.no_grad():
        dets = postprocess(model(images), cfg.replace(score_threshold=0.3))
    for i, det in enumerate(dets):
        gt = targets[targets[:, 0] == i]
        overlap = box_iou(det.boxes, gt[:, 2:].numpy())  # (detections, gt)
        best = overlap.argmax(0)
        assert (overlap.max(0) > 0.8).all() and det.labels[best].tolist() == gt[:, 1].long().tolist()
