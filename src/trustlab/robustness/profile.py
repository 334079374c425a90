"""Per-class robustness profile from a minimal-eps search, and its JSON result.

Censored examples (not flipped by eps_max) are counted honestly: their eps* is only known to
exceed eps_max. A class median is exact while fewer than half of the class is censored (all
censored values lie above every observed one) and is reported as inf otherwise; a class mean
that includes censored examples uses eps_max for them and is flagged as a lower bound.
Intervals are percentile bootstrap intervals (vectorised resampling per class).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from trustlab.core.results import Result
from trustlab.core.stats import bootstrap_interval
from trustlab.robustness.search import MinimalEps

CURVE_POINTS = 101


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
    per_class: tuple[dict[str, Any], ...]
    most_sensitive: tuple[str, ...]
    most_robust: tuple[str, ...]
    curve_eps: tuple[float, ...]
    curve_accuracy: tuple[float, ...]
    forward_calls: int
    gradient_calls: int
    seconds: float
    region: str = "whole image"


def class_profile(
    eps_star: np.ndarray,
    labels: np.ndarray,
    class_names: tuple[str, ...],
    eps_max: float,
    *,
    samples: int = 1000,
    level: float = 0.95,
    seed: int = 0,
) -> list[dict[str, Any]]:
    """Mean and median eps* per class with bootstrap intervals (censored = inf, see module doc).

    Statistics of a class without examples are None.
    """
    rng = np.random.default_rng(seed)
    rows = []
    for index, name in enumerate(class_names):
        values = eps_star[labels == index]
        censored = int(np.isinf(values).sum())
        capped = np.minimum(values, eps_max)
        median = float(np.median(values)) if values.size else None
        rows.append(
            {
                "class": name,
                "examples": int(values.size),
                "censored": censored,
                "median": median,
                "median_interval": bootstrap_interval(values, "median", samples, rng, level),
                "median_exact": bool(values.size and censored < values.size / 2),
                "mean": float(capped.mean()) if values.size else None,
                "mean_interval": bootstrap_interval(capped, "mean", samples, rng, level),
                "mean_is_lower_bound": censored > 0,
            }
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
    eps_star = search.eps_star.double().numpy()
    labels = search.labels.numpy()
    per_class = class_profile(eps_star, labels, class_names, search.eps_max, samples=bootstrap, seed=seed)
    present = [r for r in per_class if r["examples"]]
    order = sorted(present, key=lambda r: (r["median"], r["mean"]))  # present rows have numbers
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
        per_class=tuple(per_class),
        most_sensitive=tuple(r["class"] for r in order[:3]),
        most_robust=tuple(r["class"] for r in order[::-1][:3]),
        curve_eps=tuple(float(v) for v in grid),
        curve_accuracy=tuple(float(v) for v in curve),
        forward_calls=search.forward_calls,
        gradient_calls=search.gradient_calls,
        seconds=search.seconds,
        region=region,
    )
