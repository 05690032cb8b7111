"""bench/attention_ablation.py: a tiny gqa + nsa ablation writes every field the results page reads, and NSA runs
its sparse path (not the dense fallback) at the edge size.

No timing is asserted (timings live in bench/): latencies only have to be positive numbers.
"""

import json
import math

import pytest
from depthtracker.data.synth import SynthConfig
from depthtracker.train import load_checkpoint
from helpers import load_bench

WORLD = SynthConfig(cameras=2, width=160, height=120, fps=5.0, seconds=1.0, seed=7)


@pytest.fixture
def ablation(monkeypatch):
    return load_bench(monkeypatch, "attention_ablation")


def _positive(value) -> bool:
    return isinstance(value, float) and math.isfinite(value) and value > 0


@pytest.mark.slow
def test_gqa_nsa_ablation(ablation, make_synth_bag, tmp_path, monkeypatch):
    import depthtracker.models.attention as attention

    bag = make_synth_bag(WORLD)
    sparse_tokens = []  # sequence lengths that reached vision_nsa (the dense fallback never calls it)
    real = attention.vision_nsa

    def counting(q, *args, **kwargs):
        sparse_tokens.append(q.shape[2])
        return real(q, *args, **kwargs)

    monkeypatch.setattr(attention, "vision_nsa", counting)
    out = tmp_path / "ablation"
    report = ablation.main(["--bag", str(bag), "--val-bag", str(bag), "--out", str(out), "--kinds", "gqa", "nsa",
                            "--steps", "3", "--batch-size", "1", "--runs", "2", "--warmup", "1", "--no-progress"])

    assert json.loads((out / "ablation.json").read_text()) == json.loads(json.dumps(report))
    assert {"cpu", "logical_cores", "torch", "torch_threads", "cuda", "gpu"} <= set(report["machine"])
    s = report["settings"]
    assert (s["preset"], s["kinds"], s["steps"], s["batch_size"], s["seeds"]) == ("edge", ["gqa", "nsa"], 3, 1, [0])
    assert s["cameras"] == 2 and s["input_size"] == [120, 160] and s["val_bag"] == str(bag)
    assert set(report["kinds"]) == {"gqa", "nsa"}
    for kind, r in report["kinds"].items():
        assert isinstance(r["params"], int) and r["params"] > 0
        assert _positive(r["latency_cpu_ms"])
        assert r["latency_cuda_ms"] is None if not report["machine"]["cuda"] else _positive(r["latency_cuda_ms"])
        assert _positive(r["abs_rel"]) and 0.0 <= r["delta1"] <= 1.0
        assert math.isfinite(r["sot_center_error_px"]) and r["sot_center_error_px"] >= 0.0
        assert 0.0 <= r["sot_success_auc"] <= 1.0
        assert _positive(r["train_seconds"]) and r["train_seconds_spread"] is None  # one seed: no spread
        assert {"loss", "depth", "heatmap", "aux"} <= set(r["final_losses"])
        assert all(math.isfinite(v) for v in r["final_losses"].values())
        (run,) = r["runs"]
        assert run["steps"] == 3 and run["seed"] == 0 and run["sequences"] >= 1 and run["depth_images"] == 10
        _, side = load_checkpoint(out / kind / "last.safetensors")
        assert side["model_config"] == r["model_config"]  # the trained model is the one reported
        assert r["model_config"]["attention"] == kind

    # gqa keeps the edge preset's kv_heads (1 of 3 heads: the same model as mqa, which the report notes)
    assert report["kinds"]["gqa"]["kv_heads"] == 1 and any("same model as mqa" in n for n in report["notes"])
    nsa = report["kinds"]["nsa"]
    cfg = nsa["model_config"]
    assert (cfg["nsa_dense_below"], cfg["nsa_tile"], cfg["nsa_n_select"]) == (0, 4, 4)
    layout = nsa["nsa"]
    assert layout["sparse"] and layout["block_size"] == 16 and layout["blocks"] == 2 * 4 * 5
    assert layout["tokens"] == 2 * 15 * 20 and layout["padded_tokens"] == 2 * 16 * 20
    # Every depth forward of the nsa model (3 training steps x 4 blocks, latency, scoring) reached vision_nsa with
    # the padded tile-order sequence; the gqa model and the tracking sequences never did.
    assert len(sparse_tokens) >= 3 * cfg["depth"] and set(sparse_tokens) == {layout["padded_tokens"]}

    md = (out / "ablation.md").read_text()
    assert ablation.NOTE in md and "| gqa | 1 |" in md and "| nsa | 1 |" in md and "sparse path" in md
    assert (out / "ablation.png").stat().st_size > 1000


def test_latency_only_without_bag(ablation, tmp_path):
    out = tmp_path / "lat"
    report = ablation.main(["--latency-only", "--out", str(out), "--kinds", "mha", "mqa", "--cameras", "1",
                            "--runs", "1", "--warmup", "0", "--no-cuda"])
    assert report["settings"]["latency_only"] and report["settings"]["cameras"] == 1
    mha, mqa = report["kinds"]["mha"], report["kinds"]["mqa"]
    assert (mha["kv_heads"], mqa["kv_heads"]) == (3, 1) and mha["params"] > mqa["params"]  # fewer KV projections
    assert _positive(mha["latency_cpu_ms"]) and mha["latency_cuda_ms"] is None and "abs_rel" not in mha
    assert "| mha | 3 |" in (out / "ablation.md").read_text() and (out / "ablation.png").is_file()


def test_attention_fields_are_the_ablations(ablation, tmp_path):
    with pytest.raises(ValueError, match="attention fields"):
        ablation.main(["--latency-only", "--out", str(tmp_path), "--set", "attention=mha", "--kinds", "nsa"])
