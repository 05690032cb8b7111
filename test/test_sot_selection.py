"""bench/sot_selection.py: variants parse (and bad ones are named), sequences are those of the eval command, and the
paired differences are computed against the first variant on the same sequences."""

import json
import math

import pytest
from depthtracker.data.synth import SynthConfig
from depthtracker.eval.depthtrack import DepthTrackEvalConfig, tracking_sequences
from depthtracker.models.depthtrack.predictor import default_checkpoint
from helpers import load_bench

WORLD = SynthConfig(cameras=2, width=160, height=120, fps=5.0, seconds=1.6, seed=11)


@pytest.fixture
def bench(monkeypatch):
    return load_bench(monkeypatch, "sot_selection")


def test_variants_parse_and_bad_ones_are_named(bench):
    v = bench.parse_variant("strict:recovery_score=0.9,runtime.max_candidates=2")
    assert (v.name, v.tracker.recovery_score, v.runtime) == ("strict", 0.9, {"max_candidates": 2})
    assert bench.parse_variant("default").tracker == bench.TargetTrackerConfig()
    with pytest.raises(ValueError, match="not KEY=VALUE"):
        bench.parse_variant("x:no_such_field=1")
    with pytest.raises(ValueError, match="recovery_score"):
        bench.parse_variant("x:recovery_score=0.1")  # below presence_score: the config's own check
    with pytest.raises(ValueError, match="max_candidates"):
        bench.parse_variant("x:runtime.max_candidates=0")
    assert bench.paired([0.5, 0.7], [0.6, 0.9]) == pytest.approx((0.15, 0.05))


def test_run_on_a_tiny_bag(bench, make_synth_bag, depth_checkpoint, tmp_path):
    bag = make_synth_bag(WORLD)
    seqs = tracking_sequences(bag, DepthTrackEvalConfig(max_sequences=2, middlebury=False))
    assert 1 <= len(seqs) <= 2 and all(len(s["frames"]) == len(s["stamps"]) == len(s["boxes"]) for s in seqs)
    variants = [bench.parse_variant(t) for t in ("default", "same", "one:runtime.max_candidates=1")]
    report = bench.run([bag], variants, depth_checkpoint, 2, "cpu")
    s = report["summary"]
    assert s["same"]["success_auc_minus_default"][0] == 0.0  # identical settings on identical sequences
    assert s["one"]["config"] == {"runtime.max_candidates": 1} and s["default"]["config"] == {}
    for row in s.values():
        assert row["sequences"] == len(seqs) and 0.0 <= row["success_auc"] <= 1.0
    rows = report["runs"]["one"][str(bag)]
    assert [(r["camera"], r["id"]) for r in rows] == [(q["camera"], q["id"]) for q in seqs]
    bench.write_markdown(tmp_path / "t.md", report)
    assert "| one | runtime.max_candidates=1 |" in (tmp_path / "t.md").read_text()
    json.dumps(report)  # what main() writes
    assert all(math.isfinite(r["success_auc"]) for r in rows)


def test_a_variant_runs_on_its_own_checkpoint(bench, make_synth_bag, depth_checkpoint):
    bag = make_synth_bag(WORLD)
    shipped = default_checkpoint()
    variants = [bench.parse_variant("untrained"), bench.parse_variant(f"shipped:checkpoint={shipped}")]
    both = bench.run([bag], variants, depth_checkpoint, 2, "cpu")
    alone = bench.run([bag], [bench.parse_variant("shipped")], shipped, 2, "cpu")
    assert both["runs"]["shipped"] == alone["runs"]["shipped"]  # the variant's checkpoint, not --checkpoint
    assert both["runs"]["untrained"] != both["runs"]["shipped"]
    assert both["summary"]["shipped"]["config"] == {"checkpoint": str(shipped)}
    assert both["checkpoint"] == str(depth_checkpoint)
    with pytest.raises(ValueError, match="not a file"):
        bench.parse_variant("x:checkpoint=no/such/file.safetensors")


def test_a_failing_variant_leaves_the_base_runtime(bench, make_synth_bag, depth_checkpoint, monkeypatch):
    bag = make_synth_bag(WORLD)
    pred = bench.DepthTrackPredictor.from_checkpoint(depth_checkpoint, device="cpu")
    base = pred.runtime

    def fail(*args, **kwargs):
        assert pred.runtime.max_candidates == 1  # the variant's runtime is in force while it runs
        raise RuntimeError("follow failed")

    monkeypatch.setattr(pred, "follow", fail)
    monkeypatch.setattr(bench.DepthTrackPredictor, "from_checkpoint", lambda *a, **k: pred)
    with pytest.raises(RuntimeError, match="follow failed"):
        bench.run([bag], [bench.parse_variant("one:runtime.max_candidates=1")], depth_checkpoint, 2, "cpu")
    assert pred.runtime == base


def test_a_checkpoint_named_twice_is_loaded_once(bench, make_synth_bag, depth_checkpoint, monkeypatch):
    bag = make_synth_bag(WORLD)
    loaded = []
    real = bench.DepthTrackPredictor.from_checkpoint

    def counting(path, *args, **kwargs):
        loaded.append(path)
        return real(path, *args, **kwargs)

    monkeypatch.setattr(bench.DepthTrackPredictor, "from_checkpoint", counting)
    relative = depth_checkpoint.relative_to(depth_checkpoint.parent.parent)
    monkeypatch.chdir(depth_checkpoint.parent.parent)
    bench.run([bag], [bench.parse_variant("a"), bench.parse_variant(f"b:checkpoint={relative}")], depth_checkpoint,
              1, "cpu")
    assert loaded == [depth_checkpoint.resolve()]
