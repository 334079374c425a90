"""The true minimal perturbation bracketed per example: a certified lower bound beside an attack's
upper bound, and the JSON result the report reads.

For each example the certified radius r (interval bound propagation or CROWN-IBP: no perturbation
within L-inf eps <= r flips it) and the attack's minimal eps* (a flip was found there) enclose the
true minimal perturbation: r <= true <= eps*. The bracket's width eps* - r says how much is still
unknown; an example whose width is small is settled either way. Widths and medians are taken over
the *attackable* examples (correct before any perturbation); an example the attack did not flip by
eps_max has an open bracket [r, > eps_max) whose width counts as infinite.

A sound certificate can never exceed a found flip: ``violations`` counts examples with r >= eps*,
which must be zero (it would mean a bug in the bound or in the search).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from trustlab.core.exceptions import InputError
from trustlab.core.results import Record, Result
from trustlab.core.stats import bootstrap_interval
from trustlab.robustness.bounds import CertifiedRadius
from trustlab.robustness.profile import CURVE_POINTS
from trustlab.robustness.search import MinimalEps

DEFAULT_WIDTH = 0.05  # a bracket at most this wide counts as settled (pixel units on [0, 1] images)
DEFAULT_HEADLINE_EPS = 0.1


@dataclass(frozen=True)
class ClassBracket(Record):
    """One class's brackets: medians over its attackable examples (None when it has none)."""

    kind = "robustness.bracket.class"
    name: str
    examples: int
    clean_wrong: int
    certified_median: float | None
    attacked_median: float | None  # +inf when half or more were not flipped by eps_max
    width_median: float | None
    narrow_share: float | None  # attackable examples whose bracket is at most ``width`` wide
    certified_accuracy: float  # share of all the class's examples certified at the headline eps


@dataclass(frozen=True)
class BracketResult(Result):
    """Certified radius and attack minimal eps per example, their gap, per class and as curves."""

    kind = "robustness.bracket"
    dataset: str
    split: str
    method: str  # the certificate: ibp or crown-ibp
    attack: str
    attack_name: str
    eps_max: float
    tol: float
    width: float  # the "settled" bracket width
    headline_eps: float
    class_names: tuple[str, ...]
    labels: tuple[int, ...]
    certified: tuple[float, ...]  # per example; 0 when wrong before any perturbation
    attacked: tuple[float, ...]  # per example; 0 when wrong, inf when not flipped by eps_max
    clean_wrong: int
    censored: int
    violations: int  # certified radius >= a found flip: must be 0
    median_width: float
    median_width_interval: tuple[float, float]
    narrow_share: float
    certified_accuracy: float  # at headline_eps, share of all examples
    empirical_accuracy: float  # at headline_eps, from the attack's eps* (an upper bound)
    per_class: tuple[ClassBracket, ...]
    curve_eps: tuple[float, ...]
    certified_curve: tuple[float, ...]
    empirical_curve: tuple[float, ...]
    certify_seconds: float
    attack_seconds: float

    @property
    def attackable(self) -> int:
        return len(self.labels) - self.clean_wrong


def _median_or_none(values: np.ndarray) -> float | None:
    return float(np.median(values)) if values.size else None


def bracket_result(
    certified: CertifiedRadius,
    attacked: MinimalEps,
    class_names: tuple[str, ...],
    *,
    width: float = DEFAULT_WIDTH,
    headline_eps: float = DEFAULT_HEADLINE_EPS,
    dataset: str = "",
    split: str = "",
    attack_name: str = "",
    bootstrap: int = 1000,
    seed: int = 0,
) -> BracketResult:
    """Pair a certified-radius search with an attack's minimal-eps search on the same examples."""
    if certified.labels.shape != attacked.labels.shape or not torch.equal(certified.labels, attacked.labels):
        raise InputError("the certificate and the attack must cover the same examples with the same labels")
    if not math.isclose(certified.eps_max, attacked.eps_max):
        raise InputError(f"eps_max differs: certificate {certified.eps_max}, attack {attacked.eps_max}")
    if not 0 < headline_eps <= certified.eps_max:
        raise InputError(f"headline eps must lie in (0, eps_max = {certified.eps_max:g}], got {headline_eps}")
    if not width > 0:
        raise InputError(f"width must be positive, got {width}")
    lower = certified.radius.double().numpy()
    upper = attacked.eps_star.double().numpy()
    labels = attacked.labels.numpy()
    wrong = attacked.clean_wrong.numpy() | certified.clean_wrong.numpy()
    lower = np.where(wrong, 0.0, lower)
    upper = np.where(wrong, 0.0, upper)
    gap = upper - lower  # inf where the attack found no flip
    attackable = ~wrong
    rng = np.random.default_rng(seed)
    widths = gap[attackable]
    grid = np.linspace(0.0, certified.eps_max, CURVE_POINTS)
    n = max(len(labels), 1)
    per_class = []
    for index, name in enumerate(class_names):
        members = labels == index
        mine = members & attackable
        per_class.append(
            ClassBracket(
                name=name,
                examples=int(members.sum()),
                clean_wrong=int((members & wrong).sum()),
                certified_median=_median_or_none(lower[mine]),
                attacked_median=_median_or_none(upper[mine]),
                width_median=_median_or_none(gap[mine]),
                narrow_share=float((gap[mine] <= width).mean()) if mine.any() else None,
                certified_accuracy=float((mine & (lower >= headline_eps)).sum() / max(int(members.sum()), 1)),
            )
        )
    return BracketResult(
        dataset=dataset,
        split=split,
        method=certified.method,
        attack=attacked.attack,
        attack_name=attack_name or attacked.attack.split("(")[0],
        eps_max=certified.eps_max,
        tol=max(certified.tol, attacked.tol),
        width=float(width),
        headline_eps=float(headline_eps),
        class_names=tuple(class_names),
        labels=tuple(int(v) for v in labels),
        certified=tuple(float(v) for v in lower),
        attacked=tuple(float(v) for v in upper),
        clean_wrong=int(wrong.sum()),
        censored=int((attackable & np.isinf(upper)).sum()),
        violations=int((attackable & (lower >= upper)).sum()),
        median_width=float(np.median(widths)) if widths.size else math.nan,
        median_width_interval=bootstrap_interval(widths, "median", bootstrap, rng) if widths.size else (math.nan,) * 2,
        narrow_share=float((widths <= width).mean()) if widths.size else math.nan,
        certified_accuracy=float((attackable & (lower >= headline_eps)).sum() / n),
        empirical_accuracy=float((attackable & (upper > headline_eps)).sum() / n),
        per_class=tuple(per_class),
        curve_eps=tuple(float(v) for v in grid),
        certified_curve=tuple(float(v) for v in (attackable[None, :] & (lower[None, :] >= grid[:, None])).mean(1)),
        empirical_curve=tuple(float(v) for v in (attackable[None, :] & (upper[None, :] > grid[:, None])).mean(1)),
        certify_seconds=certified.seconds,
        attack_seconds=attacked.seconds,
    )
