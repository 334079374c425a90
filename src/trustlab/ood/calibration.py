"""Conformal calibration: turn a score into a yes/no alarm with a known false-alarm rate.

Given n scores of held-out in-distribution inputs (never used to fit the detector), the
threshold is the k-th smallest with k = ceil((n + 1)(1 - alpha)). If a new in-distribution
input is exchangeable with the calibration inputs, it raises the alarm (score > threshold)
with probability at most alpha, and at least alpha - 1/(n + 1) when scores have no ties
(Vovk et al. 2005; Angelopoulos & Bates 2021). The conformal p-value of a score s is
(1 + #{calibration scores >= s}) / (n + 1); an input raises the alarm exactly when its
p-value is at most alpha (for scores without ties).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch

from trustlab.core.exceptions import InputError

ERR_TOO_FEW = (
    "conformal calibration at alpha={alpha:g} needs at least {needed} held-out in-distribution scores, got {n}"
)


def _scores(values: Any, name: str) -> torch.Tensor:
    scores = torch.as_tensor(values, dtype=torch.float64).flatten().cpu()
    if not torch.isfinite(scores).all():
        raise InputError(f"{name} contain NaN or infinite values")
    return scores


@dataclass(frozen=True, eq=False)
class ConformalThreshold:
    """Sorted calibration scores, the target false-alarm rate ``alpha`` and the threshold."""

    scores: torch.Tensor  # sorted ascending, float64
    alpha: float
    threshold: float

    @classmethod
    def fit(cls, calibration_scores: Any, alpha: float = 0.05) -> ConformalThreshold:
        if not 0.0 < float(alpha) < 1.0:
            raise InputError(f"alpha must lie in (0, 1), got {alpha}")
        scores = torch.sort(_scores(calibration_scores, "calibration scores")).values
        n = scores.numel()
        k = math.ceil((n + 1) * (1.0 - alpha))
        if k > n:
            raise InputError(ERR_TOO_FEW.format(alpha=alpha, needed=math.ceil(1.0 / alpha) - 1, n=n))
        return cls(scores, float(alpha), float(scores[k - 1]))

    @property
    def n(self) -> int:
        return int(self.scores.numel())

    def p_values(self, scores: Any) -> torch.Tensor:
        """Conformal p-values: (1 + #{calibration >= s}) / (n + 1), one per score."""
        s = _scores(scores, "scores")
        at_least = self.n - torch.searchsorted(self.scores, s, right=False)
        return (1.0 + at_least.double()) / (self.n + 1.0)

    def alarms(self, scores: Any) -> torch.Tensor:
        return _scores(scores, "scores") > self.threshold

    def state(self) -> dict[str, torch.Tensor]:
        return {"calibration_scores": self.scores}

    def describe(self) -> dict[str, Any]:
        return {"alpha": self.alpha, "threshold": self.threshold, "n": self.n}

    @classmethod
    def from_state(cls, state: dict[str, torch.Tensor], described: dict[str, Any]) -> ConformalThreshold:
        return cls(state["calibration_scores"].double(), float(described["alpha"]), float(described["threshold"]))


def split_holdout(n: int, *, fraction: float = 0.5, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Deterministic random split of ``n`` indices into calibration and evaluation parts."""
    if not 0.0 < fraction < 1.0:
        raise InputError(f"fraction must lie in (0, 1), got {fraction}")
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    cut = int(round(n * fraction))
    return order[:cut].sort().values, order[cut:].sort().values
