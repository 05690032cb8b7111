"""The depthtracker command: help everywhere, synth writes a bag, bad input exits 2 naming the problem."""

from __future__ import annotations

import json
import subprocess
import sys

import cv2
import numpy as np
import pytest
from depthtracker.cli import build_parser, main
from depthtracker.data.bags import BagReader
from depthtracker.data.synth import SynthConfig

SUBCOMMANDS = sorted(build_parser()._subparsers._group_actions[0].choices)


def test_top_level_help_lists_subcommands():
    res = subprocess.run([sys.executable, "-m", "depthtracker.cli", "--help"], capture_output=True, text=True)
    assert res.returncode == 0
    for name in SUBCOMMANDS:
        assert name in res.stdout


@pytest.mark.parametrize("name", SUBCOMMANDS)
def test_every_subcommand_has_help(name, capsys):
    with pytest.raises(SystemExit) as exc:
        main([name, "--help"])
    assert exc.value.code == 0
    assert "usage: depthtracker " + name in capsys.readouterr().out


def test_synth_writes_a_bag(tmp_path, capsys):
    out = tmp_path / "bag"
    code = main(["synth", "--out", str(out), "--cameras", "2", "--seconds", "0.3", "--fps", "10", "--width", "64",
                 "--height", "48", "--seed", "5", "--storage", "sqlite3", "--no-progress"])
    assert code == 0
    assert "wrote" in capsys.readouterr().out
    with BagReader(out) as r:
        assert r.camera_ids == [0, 1] and r.num_sets == 3
        assert r.cameras[0].width == 64 and r.source["synth"]["seed"] == 5
    assert any(p.suffix == ".db3" for p in out.iterdir())


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--cameras", "0"], "cameras must be >= 1, got 0"),
        (["--fps", "-1"], "fps must be in"),
        (["--seconds", "0"], "seconds"),
    ],
)
def test_synth_bad_values(tmp_path, capsys, flags, message):
    code = main(["synth", "--out", str(tmp_path / "b"), "--no-progress", *flags])
    assert code == 2
    err = capsys.readouterr().err
    assert "depthtracker synth: error:" in err and message in err
    assert not (tmp_path / "b").exists()


def test_synth_unknown_storage_is_an_argument_error(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["synth", "--out", str(tmp_path / "b"), "--storage", "bag1"])
    assert exc.value.code == 2
    assert "invalid choice: 'bag1'" in capsys.readouterr().err


def test_synth_unwritable_output(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert main(["synth", "--out", str(blocker / "bag"), "--no-progress", "--seconds", "0.1"]) == 2
    assert "cannot create the folder" in capsys.readouterr().err


def test_synth_config_file_unknown_key(tmp_path, capsys):
    cfg = tmp_path / "synth.yaml"
    cfg.write_text("synth:\n  ros__parameters:\n    cameraz: 2\n")
    assert main(["synth", "--out", str(tmp_path / "b"), "--config", str(cfg)]) == 2
    err = capsys.readouterr().err
    assert "unknown key(s) ['cameraz']" in err and str(cfg) in err


def test_demo_writes_report_video_sheet_and_annotated_bag(tmp_path, depth_checkpoint):
    from depthtracker.demo import run_demo

    cfg = SynthConfig(cameras=2, width=96, height=64, fps=10.0, seconds=0.5, seed=1)
    logs: list[str] = []
    res = run_demo(tmp_path / "demo", config=cfg, log=logs.append, path="in-process",
                   depth_checkpoint=str(depth_checkpoint))
    assert res.sets == 5 and res.cameras == 2
    sheet = cv2.imread(str(res.contact_sheet))
    assert sheet is not None and sheet.shape[0] > 3 * 64 and sheet.shape[1] >= 2 * 96
    cap = cv2.VideoCapture(str(res.video))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 5
    ok, frame = cap.read()
    # Per camera: tracks, predicted depth, ground-truth depth stacked; cameras side by side with a 4-pixel gap.
    assert ok and frame.shape[:2] == (3 * 64, 2 * 96 + 4) and frame.std() > 5  # real content, not a blank frame
    assert np.abs(frame[:64].astype(int) - frame[128:192].astype(int)).mean() > 5  # depth differs from RGB
    report = json.loads(res.report.read_text())
    assert report["coverage"]["sets_answered"] == 5 and report["path"]["path"] == "in-process"
    assert report["models"]["depth"] == str(depth_checkpoint)
    assert report["models"]["detector"].endswith("hsvdet-n.safetensors")
    assert all(0.0 <= report["det"][k] <= 1.0 for k in ("map50", "map50_95")) and report["depth"]["images"] == 10
    assert set(report["mot"]["per_camera"]) == {"cam0", "cam1"} and 0.0 <= report["sot"]["success_auc"] <= 1.0
    assert (tmp_path / "demo" / "plots.png").is_file() and "single target" in res.report.with_suffix(".md").read_text()
    # The annotated bag: every camera's annotated image, heatmap, colour map and info, and the tracks, per set.
    from depthtracker.data.bags import BagReader

    with BagReader(res.annotated) as bag:
        topics = bag.topics
        counts = {t: sum(1 for _ in bag.messages([t])) for t in topics}
    assert set(topics) == {f"/cam{i}/{k}" for i in (0, 1) for k in ("image_annotated", "depth_heatmap",
                                                                   "depth_color", "camera_info")} | {"/tracks"}
    assert set(counts.values()) == {5, 10} and counts["/tracks"] == 10
    # A second run reuses the bag.
    run_demo(tmp_path / "demo", config=cfg, log=logs.append, path="in-process",
             depth_checkpoint=str(depth_checkpoint))
    assert any("using the existing bag" in line for line in logs)
