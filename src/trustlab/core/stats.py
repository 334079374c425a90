"""Small statistics shared by the checks: bootstrap intervals."""

from __future__ import annotations

import math

import numpy as np


def bootstrap_interval(
    values: np.ndarray,
    stat: str = "mean",
    samples: int = 1000,
    rng: np.random.Generator | None = None,
    level: float = 0.95,
) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean or median of ``values`` (NaN, NaN when empty)."""
    values = np.asarray(values, dtype=float)
    if values.size == 0:
        return (math.nan, math.nan)
    rng = rng if rng is not None else np.random.default_rng(0)
    draws = values[rng.integers(0, values.size, size=(samples, values.size))]
    stats = np.median(draws, axis=1) if stat == "median" else draws.mean(axis=1)
    # inverted_cdf: no interpolation, so intervals reaching infinite values (censored) stay inf, not NaN
    low, high = np.percentile(stats, [100 * (1 - level) / 2, 100 * (1 + level) / 2], method="inverted_cdf")
    return (float(low), float(high))
