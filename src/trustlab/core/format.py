"""Number formatting shared by every view, so one kind of number reads the same everywhere."""

from __future__ import annotations

import math
from collections.abc import Sequence


def missing(value: float | None) -> bool:
    """Whether ``value`` is absent: None or NaN."""
    return value is None or (isinstance(value, float) and math.isnan(value))


def pct(value: float | None, digits: int = 2) -> str:
    """A share in [0, 1] as a percentage (``n/a`` when missing)."""
    return "n/a" if missing(value) else f"{100 * value:.{digits}f}%"


def pct_interval(interval: Sequence[float] | None, digits: int = 2) -> str:
    """An interval of shares in [0, 1] as "low% to high%" (``n/a`` when missing)."""
    return "n/a" if interval is None else f"{pct(interval[0], digits)} to {pct(interval[1], digits)}"


def eps(value: float | None) -> str:
    """A perturbation size; +inf means censored (not flipped within eps_max)."""
    if missing(value):
        return "n/a"
    return "> eps_max" if value == math.inf else f"{value:.4f}"


def eps_interval(interval: Sequence[float] | None) -> str:
    """An interval of perturbation sizes as "low to high" (``n/a`` when missing)."""
    return "n/a" if interval is None else f"{eps(interval[0])} to {eps(interval[1])}"


def number(value: float | None, digits: int = 3) -> str:
    """A unitless statistic (correlation, AUROC, ...) with ``digits`` decimals."""
    return "n/a" if missing(value) else f"{value:.{digits}f}"


def numbers(values: Sequence[float] | None, shown: int = 8) -> str:
    """A short list of numbers, elided after ``shown``."""
    if values is None:
        return "none"
    text = ", ".join(f"{v:.4g}" for v in values[:shown])
    return text + (f", ... ({len(values)} values)" if len(values) > shown else "")


def seconds(value: float | None) -> str:
    """A duration in seconds, one decimal (``n/a`` when missing)."""
    return "n/a" if missing(value) else f"{value:.1f} s"


def settings(options: dict) -> str:
    """``key=value`` pairs of a method's options."""
    return ", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in options.items())
