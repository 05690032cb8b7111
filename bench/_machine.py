"""The machine line every benchmark prints and records beside its figures."""

from __future__ import annotations

import platform

import numpy as np
from depthtracker.perception import usable_cores


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
    return f"{cpu}, {usable_cores()} cores, Python {platform.python_version()}, NumPy {np.__version__}"
