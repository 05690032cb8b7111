"""The machine line every benchmark prints and records beside its figures."""

from __future__ import annotations

import os
import platform

import numpy as np


def machine() -> str:
    """CPU model, usable cores, Python and NumPy versions."""
    cpu = platform.processor() or "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return f"{cpu}, {cores} cores, Python {platform.python_version()}, NumPy {np.__version__}"
