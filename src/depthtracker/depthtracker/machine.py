"""What a number was computed on: the CPU, torch and the settings that choose torch's kernels.

Stated beside timings (evaluation reports, benchmarks) and saved in every checkpoint: torch and oneDNN pick their CPU
kernels by the instruction sets of the machine (``cpu_capability``) and sum in a different order with another vector
width or thread count, so the same training run gives different weights on different CPUs
(``bench/train_determinism.py`` measures it).
"""

from __future__ import annotations

import os
import platform
from pathlib import Path
from typing import Any

import torch

__all__ = ["machine_info", "cpu_model", "KERNEL_ENV"]

# Environment variables that change which kernels torch runs on the CPU (recorded when set).
KERNEL_ENV = ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo (Linux), else what ``platform`` says."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:  # not Linux: keep platform's answer
        pass
    return platform.processor() or platform.machine()


def machine_info() -> dict[str, Any]:
    """CPU model, logical cores, torch version, torch's CPU kernel capability and threads, CUDA, and the kernel
    settings of the environment that are set."""
    info: dict[str, Any] = {"cpu": cpu_model(), "logical_cores": os.cpu_count(), "torch": torch.__version__,
                            "cpu_capability": torch.backends.cpu.get_cpu_capability(),
                            "torch_threads": torch.get_num_threads(), "cuda": torch.cuda.is_available()}
    if info["cuda"]:
        info["cuda_device"] = torch.cuda.get_device_name()
    env = {k: os.environ[k] for k in KERNEL_ENV if k in os.environ}
    if env:
        info["kernel_env"] = env
    return info
