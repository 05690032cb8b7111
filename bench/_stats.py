"""Statistics the benchmarks share."""

from __future__ import annotations

import math

import numpy as np


def paired(a: list[float], b: list[float]) -> tuple[float, float]:
    """Mean of ``b - a`` and its standard error (nan with fewer than two pairs)."""
    d = np.asarray(b, np.float64) - np.asarray(a, np.float64)
    se = float(d.std(ddof=1) / math.sqrt(len(d))) if len(d) > 1 else math.nan
    return float(d.mean()), se
