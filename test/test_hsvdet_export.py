"""HSV-DET ONNX export: onnxruntime (CPU) agrees with PyTorch on random input, with a dynamic batch axis."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from depthtracker.models.hsvdet import HSVDet, HSVDetConfig
from depthtracker.models.hsvdet.export import check_onnx, export_onnx

ort = pytest.importorskip("onnxruntime", reason="ONNX export checks need onnxruntime (pip install onnxruntime)")
onnx = pytest.importorskip("onnx", reason="ONNX export needs the onnx package")


def _model(**kw: object) -> HSVDet:
    torch.manual_seed(0)
    fields = {"num_classes": 3, "input_height": 64, "input_width": 96, "sgb_levels": (3, 4, 5), "sgb_topk": 16, **kw}
    cfg = HSVDetConfig.from_preset("n", **fields)
    model = HSVDet(cfg).eval()
    with torch.no_grad():  # open the gates so the sparse global blocks really take part
        for layer in model.sgb.values():
            layer.alpha.normal_(0, 0.5)
    return model


def test_onnx_matches_pytorch_with_dynamic_batch(tmp_path: Path) -> None:
    model = _model()
    path = export_onnx(model, tmp_path / "hsvdet.onnx")
    graph = onnx.load(str(path)).graph
    assert graph.input[0].type.tensor_type.shape.dim[0].dim_param == "batch"
    assert {o.name for o in graph.output} == {"boxes", "scores"}
    torch.manual_seed(1)
    for batch in (1, 3):  # export traced batch 2
        assert check_onnx(model, path, torch.rand(batch, 3, 64, 96)) < 1e-4


def test_onnx_export_of_padded_input_size(tmp_path: Path) -> None:
    model = _model(sgb_topk=None, gating="fixed")
    path = export_onnx(model, tmp_path / "padded.onnx", height=60, width=90)
    assert check_onnx(model, path, torch.rand(2, 3, 60, 90)) < 1e-4


def test_onnx_export_refuses_random_selection(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="random"):
        export_onnx(_model(selection="random"), tmp_path / "x.onnx")
