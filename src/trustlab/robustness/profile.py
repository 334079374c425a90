"""Per-class robustness profile from a minimal-eps search, and its JSON result.

Every eps* statistic (the overall median, each class's median and mean) is taken over the
*attackable* examples, those the model classifies correctly before any perturbation: an
example already wrong has eps* = 0 and is counted apart (``clean_wrong``), so the statistics
describe robustness and not accuracy. Censored examples (not flipped by eps_max) are counted
honestly: their eps* is only known to exceed eps_max and enters as +inf. A median is exact
while fewer than half of its examples are censored (all censored values lie above every
observed one) and is +inf otherwise; a mean that includes censored examples uses eps_max for
them and is flagged as a lower bound. Intervals are percentile bootstrap intervals
(vectorised resampling).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from trustlab.core.results import Record, Result
from trustlab.core.stats import bootstrap_interval
from trustlab.robustness.search import MinimalEps

CURVE_POINTS = 101


def attackable_median(eps_star: np.ndarray) -> float:
    """Median eps* of the attackable examples (eps* > 0), censored ones as +inf; NaN when none."""
    values = np.asarray(eps_star, dtype=float)
    values = values[values > 0]
    return float(np.median(values)) if values.size else math.nan


@dataclass(frozen=True)
class ClassEps(Record):
    """One class's minimal-eps statistics over its attackable examples (None when it has none)."""

    kind = "robustness.class"
    name: str
    examples: int  # all examples of the class
    clean_wrong: int  # wrong before any perturbation (eps* = 0), not in the statistics
    censored: int  # not flipped by eps_max
    median: float | None  # +inf when half or more are censored
    median_interval: tuple[float, float] | None
    mean: float | None  # censored examples at eps_max: a lower bound when censored > 0
    mean_interval: tuple[float, float] | None

    @property
    def attackable(self) -> int:
        return self.examples - self.clean_wrong

    @property
    def median_exact(self) -> bool:
        return bool(self.attackable and self.censored < self.attackable / 2)

    @property
    def mean_is_lower_bound(self) -> bool:
        return self.censored > 0


@dataclass(frozen=True)
class RobustnessResult(Result):
    """Minimal eps per example, its per-class profile and the robust-accuracy curve."""

    kind = "robustness"
    dataset: str
    split: str
    attack: str
    attack_name: str
    norm: str
    eps_max: float
    tol: float
    class_names: tuple[str, ...]
    labels: tuple[int, ...]
    eps_star: tuple[float, ...]  # per example; 0 = wrong before attack, inf = censored
    clean_wrong: int
    censored: int
    nonmonotonic: int
    median_eps_star: float  # over attackable examples, censored as +inf (see module doc)
    median_interval: tuple[float, float]
    per_class: tuple[ClassEps, ...]
    most_sensitive: tuple[str, ...]
    most_robust: tuple[str, ...]
    curve_eps: tuple[float, ...]
    curve_accuracy: tuple[float, ...]
    forward_calls: int
    gradient_calls: int
    seconds: float
    region: str = "whole image"

    @property
    def attackable(self) -> int:
        return len(self.labels) - self.clean_wrong


def class_profile(
    eps_star: np.ndarray,
    labels: np.ndarray,
    class_names: tuple[str, ...],
    eps_max: float,
    *,
    samples: int = 1000,
    level: float = 0.95,
    seed: int = 0,
) -> list[ClassEps]:
    """Median and mean eps* per class over attackable examples, with bootstrap intervals."""
    rng = np.random.default_rng(seed)
    rows = []
    for index, name in enumerate(class_names):
        members = eps_star[labels == index]
        values = members[members > 0]
        capped = np.minimum(values, eps_max)
        rows.append(
            ClassEps(
                name=name,
                examples=int(members.size),
                clean_wrong=int((members == 0).sum()),
                censored=int(np.isinf(values).sum()),
                median=float(np.median(values)) if values.size else None,
                median_interval=bootstrap_interval(values, "median", samples, rng, level) if values.size else None,
                mean=float(capped.mean()) if values.size else None,
                mean_interval=bootstrap_interval(capped, "mean", samples, rng, level) if values.size else None,
            )
        )
    return rows


def robustness_result(
    search: MinimalEps,
    class_names: tuple[str, ...],
    *,
    dataset: str = "",
    split: str = "",
    attack_name: str = "",
    region: str = "whole image",
    bootstrap: int = 1000,
    seed: int = 0,
) -> RobustnessResult:
    """The per-class robustness profile of a minimal-eps search, with bootstrap intervals and the
    robust-accuracy curve."""
    eps_star = search.eps_star.double().numpy()
    labels = search.labels.numpy()
    per_class = class_profile(eps_star, labels, class_names, search.eps_max, samples=bootstrap, seed=seed)
    present = [r for r in per_class if r.median is not None]
    order = sorted(present, key=lambda r: (r.median, r.mean))
    attackable = eps_star[eps_star > 0]
    rng = np.random.default_rng(seed)
    median_interval = bootstrap_interval(attackable, "median", bootstrap, rng) if attackable.size else (math.nan,) * 2
    grid = np.linspace(0.0, search.eps_max, CURVE_POINTS)
    curve = (eps_star[None, :] > grid[:, None]).mean(1) if eps_star.size else np.full_like(grid, math.nan)
    return RobustnessResult(
        dataset=dataset,
        split=split,
        attack=search.attack,
        attack_name=attack_name or search.attack.split("(")[0],
        norm=search.norm,
        eps_max=search.eps_max,
        tol=search.tol,
        class_names=tuple(class_names),
        labels=tuple(int(v) for v in labels),
        eps_star=tuple(float(v) for v in eps_star),
        clean_wrong=int(search.clean_wrong.sum()),
        censored=int(search.censored.sum()),
        nonmonotonic=int(search.nonmonotonic.sum()),
        median_eps_star=attackable_median(eps_star),
        median_interval=median_interval,
        per_class=tuple(per_class),
        most_sensitive=tuple(r.name for r in order[:3]),
        most_robust=tuple(r.name for r in order[::-1][:3]),
        curve_eps=tuple(float(v) for v in grid),
        curve_accuracy=tuple(float(v) for v in curve),
        forward_calls=search.forward_calls,
        gradient_calls=search.gradient_calls,
        seconds=search.seconds,
        region=region,
    )
