"""bench/hsvdet_predict.py: both paths timed on the shipped model, outputs agreeing, the JSON written."""

import json

from helpers import load_bench


def test_predict_bench_runs_and_agrees(monkeypatch, tmp_path, capsys):
    bench = load_bench(monkeypatch, "hsvdet_predict")
    out = tmp_path / "p.json"
    assert bench.main(["--rounds", "2", "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["input_hw"] == [256, 320]
    assert len(report["times_ms"]["baseline"]) == len(report["times_ms"]["predictor"]) == 2
    assert report["max_output_difference"]["boxes_px"] < 0.01 and report["max_output_difference"]["scores"] < 1e-4
    assert report["ratio_predictor_over_baseline"] > 0
    assert "ratio" in capsys.readouterr().out
