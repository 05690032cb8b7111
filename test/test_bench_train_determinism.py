"""bench/train_determinism.py: variants parsed and checked, weights compared, and a tiny run end to end (the same run
twice is bit-identical; one thread instead of two is not)."""

import json

import pytest
import torch
from depthtracker.data.synth import SynthConfig
from helpers import load_bench


def test_variants_and_comparison(monkeypatch):
    bench = load_bench(monkeypatch, "train_determinism")
    assert bench.parse_variant("native:") == ("native", {})
    assert bench.parse_variant("x:A=1,B=avx2") == ("x", {"A": "1", "B": "avx2"})
    for bad in ("native", ":A=1", "x:A"):
        with pytest.raises(ValueError, match="--variant"):
            bench.parse_variant(bad)
    a = {"w": torch.tensor([1.0, 2.0]), "n": torch.tensor(3)}
    same = bench.compare(a, {k: v.clone() for k, v in a.items()})
    assert same["identical"] and same["tensors_differing"] == 0 and same["max_abs_diff"] == 0.0
    other = bench.compare(a, {"w": torch.tensor([1.0, 2.5]), "n": torch.tensor(4)})
    assert not other["identical"] and other["tensors_differing"] == 2 and other["max_abs_diff"] == 0.5
    assert other["relative_l2_diff"] == pytest.approx(0.5 / 5**0.5)
    with pytest.raises(ValueError, match="different tensors"):
        bench.compare(a, {"w": a["w"]})


def test_tiny_runs_end_to_end(monkeypatch, make_synth_bag, tmp_path, capsys):
    bench = load_bench(monkeypatch, "train_determinism")
    bag = make_synth_bag(SynthConfig(cameras=2, width=96, height=64, fps=5.0, seconds=0.6, seed=3))
    out = tmp_path / "d.json"
    assert bench.main(["--bag", str(bag), "--steps", "2", "--image-size", "64", "96", "--batch-size", "4",
                       "--variant", "a:", "--variant", "again:", "--variant", "one:OMP_NUM_THREADS=1",
                       "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    rows = {r["name"]: r for r in report["variants"]}
    assert report["reference"] == "a" and rows["a"]["identical"] and rows["again"]["identical"]
    assert rows["again"]["weights_sha256"] == rows["a"]["weights_sha256"]
    assert rows["a"]["torch_threads"] == 2 and rows["one"]["torch_threads"] == 1
    assert rows["one"]["tensors"] == rows["a"]["tensors"] > 0
    printed = {line.split()[0]: line for line in capsys.readouterr().out.splitlines() if line.split()}
    for name, row in rows.items():  # each run's line says what its row records
        assert ("identical to a" if row["identical"] else "DIFFERS to a") in printed[name], printed
    with pytest.raises(SystemExit):
        bench.main(["--bag", str(tmp_path / "missing")])
    with pytest.raises(SystemExit):
        bench.main(["--bag", str(bag), "--variant", "a:", "--variant", "a:X=1"])
