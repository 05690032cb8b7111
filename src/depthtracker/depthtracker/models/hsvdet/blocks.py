"""Convolution blocks of HSV-DET's backbone and neck: Conv-BN-SiLU, Bottleneck, C2f, SPPF (YOLOv8's block set).

All blocks map ``(B, C_in, H, W)`` float tensors to ``(B, C_out, H', W')`` with ``H' = ceil(H / stride)``.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["ConvBNAct", "Bottleneck", "C2f", "SPPF", "fold_batchnorm"]

# YOLOv8's BatchNorm settings: a small eps and a slow running-average momentum suit small detection batches.
BN_EPS = 1e-3
BN_MOMENTUM = 0.03


class ConvBNAct(nn.Module):
    """``k x k`` convolution (no bias, "same" padding) -> BatchNorm -> SiLU."""

    def __init__(self, c_in: int, c_out: int, k: int = 1, stride: int = 1) -> None:
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, k, stride, padding=k // 2, bias=False)
        self.bn = nn.BatchNorm2d(c_out, eps=BN_EPS, momentum=BN_MOMENTUM)
        self.act = nn.SiLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.bn(self.conv(x)))


class Bottleneck(nn.Module):
    """Two 3x3 ConvBNAct, with an identity shortcut when ``shortcut`` and the channels match."""

    def __init__(self, c_in: int, c_out: int, shortcut: bool = True, expansion: float = 1.0) -> None:
        super().__init__()
        hidden = int(c_out * expansion)
        self.cv1 = ConvBNAct(c_in, hidden, 3)
        self.cv2 = ConvBNAct(hidden, c_out, 3)
        self.add = shortcut and c_in == c_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.cv2(self.cv1(x))
        return x + y if self.add else y


class C2f(nn.Module):
    """CSP block with two convolutions and ``n`` bottlenecks whose every output is kept (YOLOv8's C2f).

    1x1 conv to ``2h`` channels, split in halves ``(a, b)``; ``b`` runs through the bottleneck chain and each
    intermediate is concatenated: ``[a, b, m1(b), m2(m1(b)), ...]`` -> ``(2 + n) h`` channels -> 1x1 conv to ``c_out``.
    """

    def __init__(self, c_in: int, c_out: int, n: int = 1, shortcut: bool = False, expansion: float = 0.5) -> None:
        super().__init__()
        self.hidden = int(c_out * expansion)
        self.cv1 = ConvBNAct(c_in, 2 * self.hidden, 1)
        self.cv2 = ConvBNAct((2 + n) * self.hidden, c_out, 1)
        self.m = nn.ModuleList(Bottleneck(self.hidden, self.hidden, shortcut) for _ in range(n))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ys = list(self.cv1(x).chunk(2, dim=1))  # 2 x (B, h, H, W)
        for m in self.m:
            ys.append(m(ys[-1]))
        return self.cv2(torch.cat(ys, dim=1))  # (B, (2 + n) h, H, W) -> (B, c_out, H, W)


class SPPF(nn.Module):
    """Spatial pyramid pooling, fast: three chained ``k x k`` max-pools (receptive fields k, 2k-1, 3k-2) concatenated.

    Equivalent to SPP's parallel 5/9/13 pools at a third of the cost (YOLOv5/v8).
    """

    def __init__(self, c_in: int, c_out: int, k: int = 5) -> None:
        super().__init__()
        hidden = c_in // 2
        self.cv1 = ConvBNAct(c_in, hidden, 1)
        self.cv2 = ConvBNAct(4 * hidden, c_out, 1)
        self.pool = nn.MaxPool2d(k, stride=1, padding=k // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = [self.cv1(x)]
        for _ in range(3):
            y.append(self.pool(y[-1]))
        return self.cv2(torch.cat(y, dim=1))  # (B, 4 * hidden, H, W) -> (B, c_out, H, W)


@torch.no_grad()
def fold_batchnorm(model: nn.Module) -> nn.Module:
    """An inference copy of ``model`` whose every ``ConvBNAct`` has its BatchNorm folded into the convolution.

    In eval mode BatchNorm is the affine map ``y = (x - mean) / sqrt(var + eps) * w + b`` per channel, so
    ``bn(conv(x))`` equals one convolution with weight ``W * s`` and bias ``b - mean * s``, ``s = w / sqrt(var + eps)``
    (equal up to float rounding; one pass over the features fewer). The copy is in eval mode and shares nothing with
    ``model``: weights changed in ``model`` afterwards are not seen. ``model`` itself is left as it is.
    """
    import copy

    folded = copy.deepcopy(model).eval()
    for block in folded.modules():
        if not isinstance(block, ConvBNAct) or not isinstance(block.bn, nn.BatchNorm2d):
            continue
        conv, bn = block.conv, block.bn
        scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)  # (C_out,)
        fused = nn.Conv2d(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding,
                          conv.dilation, conv.groups, bias=True).to(conv.weight.device, conv.weight.dtype)
        fused.weight.copy_(conv.weight * scale.reshape(-1, 1, 1, 1))  # (C_out, C_in, k, k)
        bias = conv.bias if conv.bias is not None else torch.zeros_like(bn.running_mean)
        fused.bias.copy_((bias - bn.running_mean) * scale + bn.bias)
        block.conv, block.bn = fused, nn.Identity()
    return folded
