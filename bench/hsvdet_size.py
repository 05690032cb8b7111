"""HSV-DET model size: parameters and forward FLOPs of each preset at 320x240 and 640x480 (batch 1).

Usage: ``python bench/hsvdet_size.py``. FLOPs are counted by ``torch.utils.flop_counter`` (multiply-add = 2 FLOPs;
convolutions, matmuls and attention; element-wise ops are not counted), on the CPU with the batched SGB path, for
the default ablation point (SGB at P4 and P5, k = 512) and for YOLO-only.
"""

from __future__ import annotations

import torch
from depthtracker.models.hsvdet import PRESETS, HSVDet, HSVDetConfig
from torch.utils.flop_counter import FlopCounterMode

SIZES = ((320, 240), (640, 480))  # (width, height)


def main() -> None:
    torch.manual_seed(0)
    print(f"{'preset':<8}{'variant':<12}{'params (M)':>12}" + "".join(f"{f'GFLOPs {w}x{h}':>18}" for w, h in SIZES))
    for name in PRESETS:
        for variant, levels in (("SGB P4+P5", (4, 5)), ("YOLO-only", ())):
            model = HSVDet(HSVDetConfig.from_preset(name, sgb_levels=levels)).eval()
            params = sum(p.numel() for p in model.parameters()) / 1e6
            flops = []
            for w, h in SIZES:
                counter = FlopCounterMode(display=False)
                with counter, torch.no_grad():
                    model(torch.rand(1, 3, h, w))
                flops.append(counter.get_total_flops() / 1e9)
            print(f"{name:<8}{variant:<12}{params:>12.3f}" + "".join(f"{f:>18.2f}" for f in flops))


if __name__ == "__main__":
    main()
