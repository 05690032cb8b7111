"""The machine line every benchmark prints and records beside its figures."""

from __future__ import annotations

import platform

import numpy as np
from depthtracker.machine import cpu_model
from depthtracker.perception import usable_cores


def machine() -> str:
    """CPU model, usable cores, Python and NumPy versions."""
    return f"{cpu_model()}, {usable_cores()} cores, Python {platform.python_version()}, NumPy {np.__version__}"
