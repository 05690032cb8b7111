"""HSV-DET end to end on a tiny bag: CLI train -> checkpoint -> predictor -> eval report -> ONNX export; resume;
bad input exits 2 naming the problem."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from depthtracker.cli import main
from depthtracker.data.synth import SynthConfig
from depthtracker.data.transforms import Letterbox
from depthtracker.models.hsvdet import HSVDetPredictor, HSVDetRuntimeConfig, postprocess
from depthtracker.train import load_checkpoint, save_checkpoint

SIZE = ("64", "96")  # network input H W of the tiny runs


@pytest.fixture(scope="module")
def bag(make_synth_bag) -> Path:
    return make_synth_bag(SynthConfig(cameras=2, width=96, height=64, fps=5.0, seconds=0.6, seed=3))


@pytest.fixture(scope="module")
def checkpoint(bag: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("run")
    code = main(["train", "hsvdet", "--bag", str(bag), "--val-bag", str(bag), "--out", str(out), "--max-steps", "3",
                 "--batch-size", "4", "--image-size", *SIZE, "--no-progress"])
    assert code == 0
    return out / "best.safetensors"


def test_checkpoint_sidecar_rebuilds_the_model(checkpoint: Path, bag: Path) -> None:
    state, side = load_checkpoint(checkpoint)
    assert side["model_config"]["input_height"] == 64 and side["model_config"]["num_classes"] == 3
    assert side["data_manifest"]["sources"][0]["path"] == str(bag)
    assert side["data_manifest"]["validation"]["sources"][0]["path"] == str(bag)
    assert side["data_manifest"]["config"]["letterbox"] is True
    assert set(side["metrics"]) >= {"map50", "map50_95"} and side["extra"]["weights"] == "ema"
    predictor = HSVDetPredictor.from_checkpoint(checkpoint)
    assert predictor.class_names == ("box", "sphere", "cylinder")
    assert all(torch.equal(predictor.model.state_dict()[k], v) for k, v in state.items())
    tuned = HSVDetPredictor.from_checkpoint(checkpoint, runtime=HSVDetRuntimeConfig(score_threshold=0.4, device="cpu"))
    assert tuned.config.score_threshold == 0.4 and tuned.device.type == "cpu"


def test_predict_batches_and_maps_boxes_to_source_pixels(checkpoint: Path) -> None:
    predictor = HSVDetPredictor.from_checkpoint(checkpoint, score_threshold=0.0)  # untrained: keep every score
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (120, 200, 3), np.uint8), rng.integers(0, 256, (64, 96, 3), np.uint8)]
    dets = predictor.predict(images, camera_ids=[3, 5], stamps_ns=[10, 20])
    assert [(d.camera_id, d.stamp_ns) for d in dets] == [(3, 10), (5, 20)]
    # the reference path, one image at a time: Letterbox.apply, /255, forward, NMS, boxes_to_source
    for image, det in zip(images, dets, strict=True):
        lb = Letterbox.fit(image.shape[:2], (64, 96))
        x = torch.from_numpy(lb.apply(image)).permute(2, 0, 1)[None].float() / 255
        with torch.no_grad():
            ref = postprocess(predictor.model(x), predictor.config)[0]
        src = lb.boxes_to_source(ref.boxes)
        keep = (src[:, 2] > src[:, 0]) & (src[:, 3] > src[:, 1])
        assert len(det.boxes) == keep.sum() > 0
        np.testing.assert_allclose(det.boxes, src[keep], atol=1e-2)
        np.testing.assert_allclose(det.scores, ref.scores[keep], atol=1e-5)
        h, w = image.shape[:2]
        assert (det.boxes >= 0).all() and (det.boxes[:, 0::2] <= w).all() and (det.boxes[:, 1::2] <= h).all()
    assert predictor.predict([]) == []
    with pytest.raises(ValueError, match="uint8 RGB"):
        predictor.predict([np.zeros((8, 8), np.uint8)])


def test_eval_cli_writes_report_and_plots(checkpoint: Path, bag: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "eval"
    assert main(["eval", "hsvdet", "--bag", str(bag), "--checkpoint", str(checkpoint), "--out", str(out),
                 "--no-progress"]) == 0
    assert "mAP50" in capsys.readouterr().out
    report = json.loads((out / "report.json").read_text())
    det = report["det"]
    for key in ("map50", "map50_95", "ap_small"):
        assert 0.0 <= det[key] <= 1.0
    assert set(det["per_class"]) == {"box", "sphere", "cylinder"}
    assert det["num_images"] == 6 and det["num_gt"] > 0
    assert report["latency"]["batch1_ms_per_image"] > 0 and report["latency"]["batch4_ms_per_image"] > 0
    assert report["machine"]["torch"] == torch.__version__
    assert "mAP50-95" in (out / "report.md").read_text()
    for png in ("pr_curves.png", "ap_per_class.png"):
        assert (out / png).stat().st_size > 1000


def test_export_cli_checks_against_pytorch(checkpoint: Path, tmp_path: Path, capsys) -> None:
    pytest.importorskip("onnxruntime", reason="the export check runs onnxruntime")
    onnx_path = tmp_path / "hsvdet.onnx"
    assert main(["export", "hsvdet", "--checkpoint", str(checkpoint), "--out", str(onnx_path)]) == 0
    assert "max difference" in capsys.readouterr().out and onnx_path.stat().st_size > 100_000
    assert main(["export", "hsvdet", "--checkpoint", str(checkpoint), "--out", str(onnx_path),
                 "--tolerance", "0"]) in (0, 1)  # exact agreement is possible; the exit code follows the check


def test_resume_after_a_crash_matches_an_uninterrupted_run(bag: Path, tmp_path: Path, monkeypatch) -> None:
    from depthtracker.models.hsvdet import losses
    from depthtracker.train.hsvdet import train_hsvdet

    kw = dict(image_size=(64, 96), epochs=2, batch_size=4, warmup_steps=1, progress=False, log=lambda s: None)
    full = train_hsvdet([bag], tmp_path / "full", **kw)  # 6 images, batch 4: 2 steps per epoch
    calls = {"n": 0}
    original = losses.HSVDetCriterion.__call__

    def crash_in_epoch_two(self, output, targets):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt("simulated crash")
        return original(self, output, targets)

    monkeypatch.setattr(losses.HSVDetCriterion, "__call__", crash_in_epoch_two)
    with pytest.raises(KeyboardInterrupt):
        train_hsvdet([bag], tmp_path / "part", **kw)
    monkeypatch.setattr(losses.HSVDetCriterion, "__call__", original)
    assert load_checkpoint(tmp_path / "part" / "last")[1]["extra"]["step"] == 2
    resumed = train_hsvdet([bag], tmp_path / "part", resume=True, **kw)
    a, b = load_checkpoint(full)[0], load_checkpoint(resumed)[0]
    assert load_checkpoint(resumed)[1]["extra"]["step"] == 4
    assert all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("argv, message", [
    (["train", "hsvdet", "--bag", "{tmp}/missing"], "bag {tmp}/missing does not exist"),
    (["train", "hsvdet", "--bag", "{bag}", "--preset", "xl"], "unknown HSV-DET preset 'xl'"),
    (["train", "hsvdet", "--bag", "{bag}", "--set", "sgb_levelz=[5]"],
     "unknown HSV-DET config field(s) ['sgb_levelz']"),
    (["train", "hsvdet", "--bag", "{bag}", "--image-size", "60", "96"], "multiples of size_divisor=32"),
    (["eval", "hsvdet", "--bag", "{tmp}/missing", "--checkpoint", "{tmp}/x.safetensors", "--out", "{tmp}/e"],
     "does not exist"),
    (["eval", "hsvdet", "--bag", "{bag}", "--checkpoint", "{tmp}/x.safetensors", "--out", "{tmp}/e"],
     "x.safetensors does not exist"),
    (["export", "hsvdet", "--checkpoint", "{tmp}/x.safetensors", "--out", "{tmp}/m.onnx"], "does not exist"),
])
def test_bad_input_exits_2_naming_the_problem(argv, message, bag: Path, tmp_path: Path, capsys) -> None:
    fill = {"tmp": str(tmp_path), "bag": str(bag)}
    assert main([a.format(**fill) for a in argv]) == 2
    err = capsys.readouterr().err
    assert f"depthtracker {argv[0]} hsvdet: error:" in err and message.format(**fill) in err


def test_demo_tracks_on_the_detector_and_reports_its_map(checkpoint: Path, tmp_path: Path) -> None:
    from depthtracker.demo import run_demo

    cfg = SynthConfig(cameras=2, width=96, height=64, fps=10.0, seconds=0.3, seed=1)
    res = run_demo(tmp_path / "demo", config=cfg, log=lambda s: None, path="in-process",
                   detector_checkpoint=str(checkpoint), depth_checkpoint="none")
    report = json.loads(res.report.read_text())
    assert report["models"] == {"depth": "none", "detector": str(checkpoint)}
    assert all(0.0 <= report["det"][k] <= 1.0 for k in ("map50", "map50_95"))
    assert report["coverage"]["images_with_detections"] == 3 * 2 and report["coverage"]["images_with_depth"] == 0
    assert set(report["mot"]["per_camera"]) == {"cam0", "cam1"} and "HOTA" in report["mot"]["mean"]
    assert "no depth published" in report["depth"]["skipped"]
    assert "detection" in res.report.with_suffix(".md").read_text()


def test_heldout_bench_scores_each_bag_as_the_eval_command(checkpoint: Path, make_synth_bag, tmp_path: Path,
                                                           monkeypatch, capsys) -> None:
    from helpers import load_bench

    bench = load_bench(monkeypatch, "hsvdet_heldout")
    shipped = Path(__file__).resolve().parents[1] / "models" / "hsvdet-n.safetensors"
    bags = [make_synth_bag(SynthConfig(cameras=2, width=160, height=120, fps=5.0, seconds=0.6, seed=s)) for s in (7, 8)]
    assert main(["eval", "hsvdet", "--bag", str(bags[0]), "--checkpoint", str(shipped), "--out", str(tmp_path / "e"),
                 "--no-progress"]) == 0
    det = json.loads((tmp_path / "e" / "report.json").read_text())["det"]
    assert det["map50"] > 0.2  # a real score to compare, not 0 == 0
    report = bench.main(["--checkpoint", f"shipped={shipped}", "--checkpoint", f"tiny={checkpoint}",
                         "--checkpoint", f"again={shipped}", "--checkpoint", f"half={shipped}@160x128",
                         "--bag", str(bags[0]), "--bag", str(bags[1]), "--out", str(tmp_path / "h.json")])
    runs = report["runs"]
    assert runs["shipped"]["input_wh"] == [320, 256] and runs["half"]["input_wh"] == [160, 128]
    assert runs["half"]["per_bag"] != runs["shipped"]["per_bag"]  # the other input size was really used
    for name in ("again", "half", "tiny"):  # every key's paired difference, over the bags where both define it
        run, ref = runs[name]["per_bag"], runs["shipped"]["per_bag"]
        for k, d in runs[name]["minus_shipped"].items():
            both = [b for b in map(str, bags) if min(run[b][k], ref[b][k]) >= 0]
            assert d["bags"] == len(both)
            if both:
                assert d["mean_points"] == pytest.approx(sum(100 * (run[b][k] - ref[b][k]) for b in both) / len(both))
    assert runs["shipped"]["per_bag"][str(bags[0])] == {k: pytest.approx(det[k]) for k in (
        "map50", "map50_95", "ap_small", "ap_medium", "ap_large")}
    for k in ("ap_small", "ap_medium", "ap_large"):  # the mean over bags skips a bag without that size (-1)
        defined = [b[k] for b in runs["shipped"]["per_bag"].values() if b[k] >= 0]
        assert runs["shipped"]["mean_over_bags"][k] == pytest.approx(sum(defined) / len(defined) if defined else -1)
    assert runs["again"]["minus_shipped"]["map50_95"] == {"mean_points": 0.0, "se_points": 0.0, "bags_higher": 0,
                                                          "bags": 2}
    tiny = runs["tiny"]["minus_shipped"]["map50_95"]
    expected = [100 * (runs["tiny"]["per_bag"][str(b)]["map50_95"] - runs["shipped"]["per_bag"][str(b)]["map50_95"])
                for b in bags]
    assert tiny["mean_points"] == pytest.approx(sum(expected) / 2) and tiny["mean_points"] < 0
    assert json.loads((tmp_path / "h.json").read_text())["reference"] == "shipped"
    for argv, message in ((["--checkpoint", "a=no/such.safetensors"], "is not a file"),
                          (["--checkpoint", f"a={checkpoint}", "--bag", str(tmp_path / "nobag")], "not found"),
                          (["--checkpoint", f"a={checkpoint}", "--bag", str(bags[0])], "each --bag once"),
                          (["--checkpoint", f"a={checkpoint}@320x250"], "multiples of 32")):
        with pytest.raises(SystemExit):
            bench.main([*argv, "--bag", str(bags[0]), "--out", str(tmp_path / "x.json")])
        assert message in capsys.readouterr().err


@pytest.mark.parametrize("name, size", [("hsvdet-n", (256, 320)), ("hsvdet-n640", (480, 640))])
def test_shipped_detectors_rebuild_from_their_files_and_detect(name, size, make_synth_bag, tmp_path: Path) -> None:
    """Each shipped HSV-DET checkpoint loads from its pair alone, at its card's input size, its sidecar's summary
    agrees with its per-bag numbers, and it finds the objects of a world it never saw (full-size cameras)."""
    from depthtracker.perception import PerceptionConfig, PerceptionPipeline

    path = Path(__file__).resolve().parents[1] / "models" / f"{name}.safetensors"
    _, side = load_checkpoint(path)
    assert (side["model_config"]["input_height"], side["model_config"]["input_width"]) == size
    held = side["metrics"]["test_seeds_9001_9030"]
    assert len(held["per_bag"]) == 30
    per_bag = [b["map50_95"] for b in held["per_bag"].values()]
    assert held["mean_over_bags"]["map50_95"] == pytest.approx(np.mean(per_bag)) and min(per_bag) >= 0.70
    pipe = PerceptionPipeline.from_config(PerceptionConfig(depth_checkpoint="none", detector_checkpoint=str(path),
                                                           device="cpu"))
    assert pipe.checkpoints["detector"] == str(path)
    bag = make_synth_bag(SynthConfig(cameras=1, width=640, height=480, fps=5.0, seconds=0.6, seed=11))
    assert main(["eval", "hsvdet", "--bag", str(bag), "--checkpoint", str(path), "--out", str(tmp_path / "e"),
                 "--no-progress"]) == 0
    assert json.loads((tmp_path / "e" / "report.json").read_text())["det"]["map50"] > 0.8


def test_gates_bench_measures_the_update_and_knocks_the_gates_out(checkpoint: Path, make_synth_bag, tmp_path: Path,
                                                                  monkeypatch, capsys) -> None:
    from helpers import load_bench

    bench = load_bench(monkeypatch, "hsvdet_gates")
    shipped = Path(__file__).resolve().parents[1] / "models" / "hsvdet-n.safetensors"
    state, side = load_checkpoint(shipped)
    # the shipped gates scaled: 0 is the identity and the update is linear in them; "loud" puts the blocks on the
    # backbone with ten times the gates, where they reach the P3 head and change detections
    variants = {"closed": (0.0, "neck"), "double": (2.0, "neck"), "loud": (10.0, "backbone")}
    for name, (scale, placement) in variants.items():
        save_checkpoint(tmp_path / name, {k: v * scale if k.endswith(".alpha") else v for k, v in state.items()},
                        {**side["model_config"], "sgb_placement": placement}, side["data_manifest"])
    bag = make_synth_bag(SynthConfig(cameras=2, width=160, height=120, fps=5.0, seconds=0.6, seed=7))
    report = bench.main(["--checkpoint", str(shipped), *[f"--checkpoint={tmp_path / n}.safetensors" for n in variants],
                         "--bag", str(bag), "--out", str(tmp_path / "g.json")])
    shipped_run, closed, double, loud = report["runs"]
    assert loud["placement"] == "backbone"
    assert loud["gates_as_trained"]["per_bag"] != loud["gates_zeroed"]["per_bag"]  # the knock-out changed scores
    assert shipped_run["placement"] == "neck" and set(shipped_run["levels"]) == {"P4", "P5"}
    for lv, v in shipped_run["levels"].items():
        assert v["alpha_mean_abs"] == pytest.approx(float(state[f"sgb.{lv}.alpha"].abs().mean()))
        assert v["update_over_input_mean"] > 0 and v["images"] == 6  # 3 sets x 2 cameras
        assert closed["levels"][lv]["update_over_input_max"] == 0.0
        # on the neck each block's input is independent of every gate: twice the gate, twice the update
        assert double["levels"][lv]["update_over_input_mean"] == pytest.approx(2 * v["update_over_input_mean"],
                                                                               rel=1e-4)
    for run in report["runs"]:  # zeroed gates score exactly as a checkpoint whose gates are zero
        assert run["gates_zeroed"]["per_bag"] == closed["gates_as_trained"]["per_bag"]
    assert closed["trained_minus_zeroed"]["map50_95"]["mean_points"] == 0.0
    heads = shipped_run["heads"]
    assert heads["P3"]["max_score"] > 0.5 and heads["P3"]["cells_over_0.25"] > 0  # a real detector, not 0 == 0
    assert json.loads((tmp_path / "g.json").read_text())["runs"][0]["checkpoint"] == str(shipped)
    with pytest.raises(SystemExit):  # a YOLO-only checkpoint has no gate: refused before anything is scored
        bench.main(["--checkpoint", str(shipped), "--checkpoint", str(checkpoint_without_sgb(checkpoint, tmp_path)),
                    "--bag", str(bag), "--out", str(tmp_path / "y.json")])
    assert "no sparse global block" in capsys.readouterr().err and not (tmp_path / "y.json").exists()


def checkpoint_without_sgb(checkpoint: Path, tmp_path: Path) -> Path:
    """The tiny run's weights as a YOLO-only checkpoint (its sgb.* tensors dropped, sgb_levels empty)."""
    state, side = load_checkpoint(checkpoint)
    config = {**side["model_config"], "sgb_levels": []}
    return save_checkpoint(tmp_path / "yolo", {k: v for k, v in state.items() if not k.startswith("sgb.")}, config)


def test_assign_bench_counts_positives_per_level_by_hand(monkeypatch) -> None:
    """Two boxes on a 64x64 input, positives and soft targets set by hand: candidates, positives and target score
    land on the right level and size (a padding row is ignored)."""
    from depthtracker.models.hsvdet.heads import make_anchors
    from helpers import load_bench

    bench = load_bench(monkeypatch, "hsvdet_assign")
    anchors, strides = make_anchors([(8, 8), (4, 4), (2, 2)], (8, 16, 32))  # 64 + 16 + 4 anchors
    boxes = torch.tensor([[[0.0, 0, 32, 32], [0, 0, 16, 16], [0, 0, 64, 64]]])  # medium (32^2), small, padding
    mask = torch.tensor([[True, True, False]])
    fg = torch.zeros(1, 84, dtype=torch.bool)
    gt_idx = torch.zeros(1, 84, dtype=torch.long)
    scores = torch.zeros(1, 84, 3)
    for anchor, box, score in ((0, 0, 0.5), (64, 0, 0.25), (1, 1, 1.0)):  # P3 (4, 4), P4 (8, 8), P3 (12, 4)
        fg[0, anchor], gt_idx[0, anchor], scores[0, anchor, 2] = True, box, score
    counts = bench.empty_counts()
    bench.count_levels(counts, fg, gt_idx, scores, boxes, mask, anchors, strides, (8, 16, 32))
    out = bench.summarise(counts)
    medium, small = out["medium"], out["small"]
    assert medium["boxes"] == small["boxes"] == 1 and out["large"]["boxes"] == 0 and out["all"]["boxes"] == 2
    assert medium["candidates"] == {"P3": 16, "P4": 4, "P5": 1}
    assert small["candidates"] == {"P3": 4, "P4": 1, "P5": 0}  # the P5 centre (16, 16) is on the edge, not inside
    assert medium["positives"] == {"P3": 1, "P4": 1, "P5": 0} and small["positives"] == {"P3": 1, "P4": 0, "P5": 0}
    assert medium["target_score"] == pytest.approx({"P3": 0.5, "P4": 0.25, "P5": 0.0})
    assert medium["target_score_share"]["P4"] == pytest.approx(1 / 3)
    assert out["all"]["positive_share"] == pytest.approx({"P3": 2 / 3, "P4": 1 / 3, "P5": 0.0})
    assert out["all"]["boxes_with_positive"] == {"P3": 2, "P4": 1, "P5": 0}
    assert out["all"]["boxes_without_positive"] == 0
    with pytest.raises(ValueError, match="strides"):
        bench.count_levels(counts, fg, gt_idx, scores, boxes, mask, anchors, strides * 2, (8, 16, 32))


def test_assign_bench_runs_on_a_checkpoint(checkpoint: Path, bag: Path, tmp_path: Path, monkeypatch, capsys) -> None:
    from depthtracker.data.datasets import DetectionDataConfig, DetectionDataset
    from helpers import load_bench

    bench = load_bench(monkeypatch, "hsvdet_assign")
    report = bench.main(["--checkpoint", str(checkpoint), "--bag", str(bag), "--batch-size", "4",
                         "--out", str(tmp_path / "a.json")])
    run = report["runs"][0]
    data = DetectionDataset(bags=[str(bag)], config=DetectionDataConfig(image_size=(64, 96)))
    n_boxes = sum(len(data.ground_truth(i)[0]) for i in range(len(data)))
    assert run["images"] == len(data) == 6 and n_boxes > 0
    for model in ("trained", "init"):
        total = run[model]["all"]
        assert total["boxes"] == n_boxes
        assert sum(total["positives"].values()) > 0
        assert all(total["positives"][lv] <= total["candidates"][lv] for lv in bench.LEVELS)
        assert sum(total["positive_share"].values()) == pytest.approx(1.0)
    side = run["init"]["predicted_box_side_median_px"]  # near-uniform DFL bins: a box of about 15 strides a side
    assert side["P3"] < side["P4"] < side["P5"]
    assert json.loads((tmp_path / "a.json").read_text())["runs"][0]["checkpoint"] == str(checkpoint)
    assert "of target score" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        bench.main(["--checkpoint", str(checkpoint), "--bag", str(tmp_path / "nope"), "--out", str(tmp_path / "b")])
    assert "--bag" in capsys.readouterr().err and not (tmp_path / "b").exists()
