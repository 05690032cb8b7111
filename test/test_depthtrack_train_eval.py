"""DepthTrack end to end on a tiny bag: train -> checkpoint -> resume -> eval report (model + baselines) ->
predict depth on image files (single images and a calibrated stereo pair); DDP with 2 CPU processes."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import yaml
from depthtracker.data.bags import BagReader
from depthtracker.data.calibration import read_camera_info_yaml, stereo_rig
from depthtracker.data.synth import SynthConfig
from depthtracker.eval.depthtrack import DEPTH_KEYS, SOT_KEYS, DepthTrackEvalConfig, evaluate_depthtrack
from depthtracker.train import load_checkpoint, load_train_state
from depthtracker.train.depthtrack import train_depthtrack
from depthtracker.train.depthtrack_cli import parse_overrides, register_eval, register_predict, register_train

TINY = dict(dim=32, depth=1, heads=2, kv_heads=1, num_experts=4, top_k=2, expert_hidden=32, shared_hidden=32,
            input_height=48, input_width=64, template_size=32, search_size=64, head_channels=16, refine_channels=4)
WORLD = SynthConfig(cameras=2, width=128, height=96, fps=10.0, seconds=0.8, seed=5, num_objects=6)


@pytest.fixture(scope="module")
def bag(make_synth_bag):
    return make_synth_bag(WORLD)


@pytest.fixture(scope="module")
def trained(bag, tmp_path_factory):
    out = tmp_path_factory.mktemp("dt") / "run"
    path = train_depthtrack([bag], out, overrides=TINY, epochs=1, batch_size=4, progress=False)  # 8 sets: 2 steps
    return out, path


def _write_calib(path: Path, K: np.ndarray, width: int, height: int, tx: float = 0.0) -> Path:
    """A camera_info YAML as camera_calibration writes it."""
    P = np.concatenate([K, np.array([[tx], [0.0], [0.0]])], 1)
    path.write_text(yaml.safe_dump({
        "image_width": width, "image_height": height, "camera_name": path.stem,
        "camera_matrix": {"rows": 3, "cols": 3, "data": K.reshape(-1).tolist()}, "distortion_model": "plumb_bob",
        "distortion_coefficients": {"rows": 1, "cols": 5, "data": [0.0] * 5},
        "rectification_matrix": {"rows": 3, "cols": 3, "data": np.eye(3).reshape(-1).tolist()},
        "projection_matrix": {"rows": 3, "cols": 4, "data": P.reshape(-1).tolist()}}))
    return path


def _cli() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="depthtracker")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, register in (("train", register_train), ("eval", register_eval), ("predict", register_predict)):
        register(sub.add_parser(name).add_subparsers(dest="model", required=True))
    return parser


def test_train_writes_a_checkpoint_that_resumes(bag, trained):
    out, path = trained
    assert path == out / "last.safetensors"
    state, side = load_checkpoint(path)
    assert side["model_config"]["dim"] == 32 and side["extra"]["step"] == 2 and "git_revision" in side
    assert side["data_manifest"]["train"]["sources"][0]["path"] == str(bag)
    assert any(k.startswith("blocks.0.moe.w1") for k in state)
    args = _cli().parse_args(["train", "depthtrack", "--bag", str(bag), "--out", str(out), "--epochs", "2",
                              "--batch-size", "4", "--resume", "--no-progress"]
                             + [f"--set={k}={v}" for k, v in TINY.items()])
    assert args.func(args) == 0
    assert load_train_state(out / "last")["step"] == 4  # continued at epoch 1, did not start over
    assert (out / "scalars.csv").exists() or (out / "tb").is_dir()
    assert parse_overrides(["attention=nsa", "depth=2"]) == {"attention": "nsa", "depth": 2}


def test_init_fine_tunes_a_checkpoint(bag, trained, tmp_path):
    """--init starts from a checkpoint's weights and architecture (--set on top) and records where it came from."""
    _, path = trained
    init_state, init_side = load_checkpoint(path)
    out = tmp_path / "ft"
    args = _cli().parse_args(["train", "depthtrack", "--bag", str(bag), "--out", str(out), "--init", str(path),
                              "--max-steps", "1", "--batch-size", "4", "--lr", "1e-12", "--set", "depth_weight=0.5",
                              "--no-progress"])
    assert args.func(args) == 0
    state, side = load_checkpoint(out / "last")
    assert side["model_config"] == {**init_side["model_config"], "depth_weight": 0.5}
    assert side["data_manifest"]["init"]["weights_sha256"] == init_side["weights_sha256"]
    # at a negligible learning rate the fine-tuned weights are the initial ones, not a fresh initialisation
    assert max(float((state[k] - init_state[k]).abs().max()) for k in init_state) < 1e-6
    fresh, _ = load_checkpoint(train_depthtrack([bag], tmp_path / "fresh", overrides=TINY, max_steps=1, batch_size=4,
                                                lr=1e-12, progress=False, seed=1))
    assert max(float((fresh[k] - init_state[k]).abs().max()) for k in init_state) > 1e-2
    with pytest.raises(SystemExit):  # argparse: the checkpoint fixes the architecture
        _cli().parse_args(["train", "depthtrack", "--bag", str(bag), "--init", str(path), "--preset", "edge"])
    with pytest.raises(ValueError, match="exclude each other"):
        train_depthtrack([bag], tmp_path / "x", preset="edge", init=path, progress=False)
    with pytest.raises(ValueError, match="do not fit this DepthTrack config"):
        train_depthtrack([bag], tmp_path / "y", preset=None, init=path, overrides={"dim": 48}, max_steps=1,
                         progress=False)


def test_eval_report_has_model_and_baseline_keys(bag, trained, tmp_path):
    _, path = trained
    args = _cli().parse_args(["eval", "depthtrack", "--bag", str(bag), "--checkpoint", str(path), "--out",
                              str(tmp_path), "--max-sequences", "2", "--no-progress", "--device", "cpu"])
    assert args.func(args) == 0
    report = json.loads((tmp_path / "report.json").read_text())
    for key in DEPTH_KEYS:
        assert np.isfinite(report["depth"][key]) and np.isfinite(report["baselines"]["sgbm"][key]), key
    for key in SOT_KEYS:
        for where in (report["sot"], report["baselines"]["csrt"], report["baselines"]["kcf"]):
            assert key in where, key
        assert 0 <= report["sot"][key] <= 1
    assert report["data"]["sequences"] >= 1 and report["depth"]["delta1"] <= 1
    assert report["baselines"]["sgbm"]["abs_rel"] < 0.3  # the stereo baseline is sane on this bag
    assert (tmp_path / "report.md").read_text().startswith("# DepthTrack evaluation")
    assert (tmp_path / "depth_examples.png").is_file() and (tmp_path / "sot_success.png").is_file()


def test_eval_without_a_shipped_checkpoint_is_a_clear_error(bag, tmp_path, monkeypatch):
    from depthtracker.models.depthtrack import predictor

    monkeypatch.setattr(predictor, "SHIPPED", "no-such-model")
    with pytest.raises(ValueError, match="no shipped no-such-model"):
        evaluate_depthtrack(bag, None, tmp_path, DepthTrackEvalConfig(max_sets=1), progress=False)


def test_predict_depth_writes_npy_and_png(bag, trained, tmp_path):
    _, path = trained
    with BagReader(bag) as r:
        s = next(r.samples())
        cams, baseline = r.cameras, r.baseline_m
    names = []
    for i, f in enumerate(s.frames):
        names.append(tmp_path / f"cam{i}.png")
        cv2.imwrite(str(names[-1]), cv2.cvtColor(f.image, cv2.COLOR_RGB2BGR))
    left = _write_calib(tmp_path / "left.yaml", np.array(cams[0].K), 128, 96)
    right = _write_calib(tmp_path / "right.yaml", np.array(cams[1].K), 128, 96, tx=-cams[1].K[0, 0] * baseline)
    rig = stereo_rig(read_camera_info_yaml(left), read_camera_info_yaml(right))
    assert rig is not None and rig[1].T_world_cam[0, 3] == pytest.approx(baseline)
    out = tmp_path / "out"
    args = _cli().parse_args(["predict", "depth", str(names[1]), str(names[0]), "--calib", str(right), str(left),
                              "--checkpoint", str(path), "--out", str(out), "--device", "cpu"])  # right first
    assert args.func(args) == 0
    for name in ("cam0", "cam1"):
        d = np.load(out / f"{name}.depth.npy")
        assert d.dtype == np.float32 and d.shape == (96, 128) and (d[np.isfinite(d)] > 0).all()
        assert cv2.imread(str(out / f"{name}.depth.png")).shape == (96, 128, 3)
    args = _cli().parse_args(["predict", "depth", str(names[0]), "--checkpoint", str(path), "--out",
                              str(tmp_path / "mono"), "--device", "cpu"])  # no calibration: assumed lens
    assert args.func(args) == 0 and (tmp_path / "mono" / "cam0.depth.npy").is_file()
    with pytest.raises(ValueError, match="one per image"):
        from depthtracker.models.depthtrack.predictor import predict_depth_files

        predict_depth_files(names + names[:1], tmp_path, [left, right], path)


_DDP_SCRIPT = textwrap.dedent("""
    import os, sys
    from safetensors.torch import save_file
    from depthtracker.data.depth_datasets import DepthTrackDataset
    from depthtracker.train.depthtrack import build_model_config, data_config_for, fit_depthtrack
    from depthtracker.train.engine import TrainConfig
    out, bag, tiny = sys.argv[1], sys.argv[2], eval(sys.argv[3])
    cfg = build_model_config("edge", tiny)
    ds = DepthTrackDataset([bag], data_config_for(cfg, augment=True))
    res = fit_depthtrack(ds, cfg, TrainConfig(max_steps=2, batch_size=2, out_dir=out, progress=False))
    rank = int(os.environ["RANK"])
    save_file({k: v.contiguous() for k, v in res.model.state_dict().items()}, f"{out}/params_rank{rank}.safetensors")
    # one file per rank: the two ranks share stdout, where their prints can interleave mid-line
    with open(f"{out}/result_rank{rank}.txt", "w") as f:
        f.write(f"{rank} {res.step} {res.last_checkpoint is not None}")
""")


def test_ddp_two_cpu_processes(bag, tmp_path):
    from safetensors.torch import load_file

    script = tmp_path / "ddp_depthtrack.py"
    script.write_text(_DDP_SCRIPT)
    out = tmp_path / "out"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                           str(script), str(out), str(bag), repr(TINY)],
                          capture_output=True, text=True, timeout=240, env=env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    results = [(out / f"result_rank{r}.txt").read_text().split() for r in (0, 1)]
    assert results == [["0", "2", "True"], ["1", "2", "False"]]
    p0, p1 = load_file(Path(out) / "params_rank0.safetensors"), load_file(Path(out) / "params_rank1.safetensors")
    for k in p0:
        assert torch.equal(p0[k], p1[k]), k  # gradients were averaged: the replicas stayed identical
    assert load_checkpoint(out / "last")[1]["extra"]["step"] == 2
