"""Drift: is the alarm firing more often than the calibration promises?

A guard calibrated at false-alarm rate alpha raises the alarm on at most a fraction alpha of
in-distribution inputs (conformal guarantee, :mod:`trustlab.ood.calibration`). Over the last
``window`` scored inputs, with k alarms among n, the one-sided exact binomial test asks how
likely k or more alarms would be if inputs were still in distribution:
``P(X >= k | n, alpha) = binom.sf(k - 1, n, alpha)``. When this p-value is at most ``level``
over a full window, the input stream has drifted away from the calibration data (or the model
is being fed something else); the test runs again with every batch and clears by itself.

Pure and synchronous: the service feeds it alarm flags and reads its status.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from scipy.stats import binom

from trustlab.core.exceptions import InputError


def binomial_p_value(k: int, n: int, alpha: float) -> float:
    """P(X >= k) for X ~ Binomial(n, alpha): 1 for k <= 0."""
    if k <= 0:
        return 1.0
    return float(binom.sf(k - 1, n, alpha))


@dataclass(frozen=True)
class DriftStatus:
    """The window's state: n inputs, k alarms, their rate, the test's p-value and verdict."""

    window: int
    n: int
    alarms: int
    rate: float
    alpha: float
    level: float
    p_value: float
    drifting: bool
    since: float | None  # unix time the current drift was first detected

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class DriftMonitor:
    """Rolling window of the last ``window`` alarm flags, tested against ``alpha`` at ``level``.

    The test only runs over a full window: with fewer inputs the status says how many have been
    seen and never reports drift (a handful of early alarms says little)."""

    def __init__(self, *, window: int, alpha: float, level: float) -> None:
        if not (isinstance(window, int) and window >= 1):
            raise InputError(f"window must be a positive integer, got {window!r}")
        if not 0.0 < alpha < 1.0 or not 0.0 < level < 1.0:
            raise InputError(f"alpha and level must lie in (0, 1), got alpha={alpha!r}, level={level!r}")
        self.window, self.alpha, self.level = window, float(alpha), float(level)
        self._flags = np.zeros(window, dtype=bool)  # ring buffer
        self._next = 0
        self._seen = 0
        self._since: float | None = None
        self._status = self._evaluate()

    def update(self, alarms: Iterable[bool], *, now: float | None = None) -> tuple[DriftStatus, bool]:
        """Add alarm flags in scoring order; the new status and whether the verdict changed."""
        flags = np.asarray(list(alarms), dtype=bool)[-self.window :]  # at most one window per call
        self._flags[(self._next + np.arange(len(flags))) % self.window] = flags
        self._next = (self._next + len(flags)) % self.window
        self._seen += len(flags)
        was = self._status.drifting
        self._status = self._evaluate(now)
        return self._status, self._status.drifting != was

    @property
    def status(self) -> DriftStatus:
        return self._status

    def _evaluate(self, now: float | None = None) -> DriftStatus:
        n = min(self._seen, self.window)
        alarms = int(self._flags.sum())  # slots not yet written are False
        p_value = binomial_p_value(alarms, n, self.alpha) if n else 1.0
        drifting = n >= self.window and p_value <= self.level
        if drifting and self._since is None:
            self._since = time.time() if now is None else now
        elif not drifting:
            self._since = None
        return DriftStatus(
            window=self.window,
            n=n,
            alarms=alarms,
            rate=alarms / n if n else 0.0,
            alpha=self.alpha,
            level=self.level,
            p_value=p_value,
            drifting=drifting,
            since=self._since,
        )
