"""Test support shared by the kernel tests and benchmarks: the 2x tolerance rule and gradient capture.

The rule (after flash-attention's layer-norm tests): a kernel's error against an fp64 reference may be at most
twice the error of plain PyTorch computing the same thing in the kernel's dtype, plus a small per-dtype margin
(relative to the reference's magnitude) that absorbs summation-order noise where PyTorch happens to be exact.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

#: Margin per dtype, relative to ``max(1, max |reference|)``.
MARGINS = {torch.float64: 1e-12, torch.float32: 1e-5, torch.float16: 1e-3, torch.bfloat16: 8e-3}


def assert_close(actual: torch.Tensor, reference: torch.Tensor, baseline: torch.Tensor, name: str = "output",
                 ratio: float = 2.0) -> None:
    """Assert ``|actual - reference| <= ratio * |baseline - reference| + margin`` (max norms; NaN fails).

    ``reference`` is the fp64 result, ``baseline`` plain PyTorch in ``actual``'s dtype.
    """
    if actual.shape != reference.shape or baseline.shape != reference.shape:
        raise AssertionError(f"{name}: shapes {tuple(actual.shape)}, {tuple(reference.shape)}, "
                             f"{tuple(baseline.shape)} differ")
    ref = reference.detach().double().cpu()
    err = (actual.detach().double().cpu() - ref).abs().max().item() if ref.numel() else 0.0
    base = (baseline.detach().double().cpu() - ref).abs().max().item() if ref.numel() else 0.0
    scale = max(1.0, ref.abs().max().item() if ref.numel() else 0.0)
    margin = MARGINS[actual.dtype] * scale
    if not err <= ratio * base + margin:  # written so that NaN fails
        raise AssertionError(f"{name} ({actual.dtype}): max error {err:.3e} > {ratio} x PyTorch error {base:.3e}"
                             f" + margin {margin:.1e}")


def output_and_grads(fn: Callable[..., torch.Tensor], inputs: Sequence[torch.Tensor], grad_out: torch.Tensor,
                     dtype: torch.dtype | None = None) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Run ``fn`` on fresh leaf copies of ``inputs`` (cast to ``dtype`` if given) and backpropagate ``grad_out``.

    Returns the detached output and the gradient of every input (zeros where an input got none).
    """
    xs = [x.detach().to(dtype or x.dtype).clone().requires_grad_(True) for x in inputs]
    out = fn(*xs)
    out.backward(grad_out.to(out.dtype))
    return out.detach(), [x.grad if x.grad is not None else torch.zeros_like(x) for x in xs]
