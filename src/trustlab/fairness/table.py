"""The fairness table: every group's rates and every metric with a bootstrap interval, as one
typed, frozen :class:`FairnessResult`."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from trustlab.core.exceptions import InputError
from trustlab.core.results import Record, Result
from trustlab.core.stats import percentile_interval
from trustlab.core.validate import positive_int
from trustlab.fairness.curves import DEFAULT_ROC_POINTS, curve_area, reliability_bins, roc_curve_points, thin_curve
from trustlab.fairness.metrics import (
    DEFAULT_BINS,
    DEFAULT_NEIGHBOURS,
    PAIR_METRICS,
    check_inputs,
    consistency_terms,
    resample_blocks,
)

DEFAULT_RESAMPLES = 1000
DEFAULT_MIN_GROUP_SIZE = 30
FOUR_FIFTHS = 0.8
METRIC_NAMES = {
    "statistical_parity_difference": "statistical parity difference",
    "disparate_impact": "disparate impact",
    "equal_opportunity_difference": "equal opportunity difference",
    "average_odds_difference": "average odds difference",
    "equalized_odds_difference": "equalised odds difference",
}


@dataclass(frozen=True)
class Estimate(Record):
    """A figure with its bootstrap percentile interval (NaN where undefined, e.g. a group without positives)."""

    kind = "fairness.estimate"
    value: float
    low: float
    high: float

    @property
    def interval(self) -> tuple[float, float]:
        """(low, high)."""
        return (self.low, self.high)


@dataclass(frozen=True)
class GroupRow(Record):
    """One group: its size, positives (y_true = 1), selected (y_pred = 1), and its rates with intervals."""

    kind = "fairness.group"
    group: str
    size: int
    positives: int
    selected: int
    selection_rate: Estimate
    tpr: Estimate
    fpr: Estimate
    ece: Estimate | None  # None: predictions only, no scores
    small: bool  # below the minimum group size: its intervals are wide


@dataclass(frozen=True)
class PairRow(Record):
    """One unprivileged group against the privileged one: the five pair metrics with intervals
    (differences unprivileged - privileged, disparate impact unprivileged / privileged)."""

    kind = "fairness.pair"
    group: str
    statistical_parity_difference: Estimate
    disparate_impact: Estimate
    equal_opportunity_difference: Estimate
    average_odds_difference: Estimate
    equalized_odds_difference: Estimate

    def metric(self, name: str) -> Estimate:
        """The estimate of metric ``name`` (one of ``PAIR_METRICS``)."""
        return getattr(self, name)


@dataclass(frozen=True)
class GroupCurves(Record):
    """One group's ROC curve (FPR and TPR of the rules ``score >= t``, at most ``roc_points`` of
    its points, with the AUC of the full curve) and reliability diagram (per non-empty score bin:
    its number, mean score, observed positive rate and example count). ``auc`` is None and the
    ROC points are empty when the group lacks positives or negatives."""

    kind = "fairness.curves"
    group: str
    auc: float | None
    fpr: tuple[float, ...]
    tpr: tuple[float, ...]
    bin: tuple[int, ...]
    mean_score: tuple[float, ...]
    positive_rate: tuple[float, ...]
    count: tuple[int, ...]


def group_curves(
    y_true: np.ndarray, y_score: np.ndarray, codes: np.ndarray, labels: tuple[str, ...], *, bins: int, roc_points: int
) -> tuple[GroupCurves, ...]:
    """:class:`GroupCurves` of every group (one pass over the groups; each curve is vectorised)."""
    out = []
    for k, label in enumerate(labels):
        member = codes == k
        truth, score = y_true[member], y_score[member]
        positives = int(truth.sum())
        fpr = tpr = np.zeros(0)
        auc = None
        if 0 < positives < len(truth):
            fpr, tpr = roc_curve_points(truth, score)
            auc = curve_area(fpr, tpr)
            fpr, tpr = thin_curve(fpr, tpr, roc_points)
        which, mean, rate, count = reliability_bins(truth, score, bins)
        out.append(
            GroupCurves(
                group=label,
                auc=auc,
                fpr=tuple(fpr.tolist()),
                tpr=tuple(tpr.tolist()),
                bin=tuple(which.tolist()),
                mean_score=tuple(mean.tolist()),
                positive_rate=tuple(rate.tolist()),
                count=tuple(count.tolist()),
            )
        )
    return tuple(out)


@dataclass(frozen=True)
class FairnessResult(Result):
    """Group fairness of one model's decisions on one data set (see ``fairness.metrics`` for the
    definitions): the per-group table, each unprivileged group against the privileged one, the
    all-groups equalised odds difference, accuracy and consistency, each with a bootstrap interval;
    with scores, each group's ROC curve and reliability diagram (``curves``)."""

    kind = "fairness"
    dataset: str
    attributes: tuple[str, ...]  # protected attributes; several: their intersection
    privileged: str
    privileged_rule: str  # "chosen" or "largest selection rate"
    groups: tuple[GroupRow, ...]
    pairs: tuple[PairRow, ...]  # one per unprivileged group
    equalized_odds_all_groups: Estimate  # fairlearn's definition over every group
    accuracy: Estimate
    consistency: Estimate | None  # None when no features were given
    neighbours: int
    include_self: bool
    bins: int
    threshold: float | None  # decision threshold on the score; None: predictions were given
    min_group_size: int
    warnings: tuple[str, ...]
    resamples: int
    level: float
    seed: int
    examples: int
    model: str
    seconds: float
    curves: tuple[GroupCurves, ...] | None = None  # one per group, in the order of ``groups``; None: no scores

    def worst(self, metric: str) -> PairRow:
        """The unprivileged group farthest from parity by ``metric`` (largest absolute difference;
        for disparate impact, the ratio farthest from 1 either way)."""
        if metric not in PAIR_METRICS:
            raise KeyError(f"unknown metric {metric!r}; expected one of {', '.join(PAIR_METRICS)}")

        def distance(row: PairRow) -> float:
            value = row.metric(metric).value
            if math.isnan(value):
                return -1.0
            if metric == "disparate_impact":
                return math.inf if value <= 0 or math.isinf(value) else abs(math.log(value))
            return abs(value)

        return max(self.pairs, key=distance)

    @property
    def four_fifths_ratio(self) -> Estimate:
        """The worst pair's disparate impact as the lower selection rate over the higher (at most 1,
        so that higher is better whichever group is favoured), with its interval mapped likewise:
        the scorecard's figure, judged against the four-fifths line."""
        est = self.worst("disparate_impact").disparate_impact
        low, high = est.low, est.high

        def fold(v: float) -> float:
            return v if math.isnan(v) or v <= 1 else (0.0 if math.isinf(v) else 1 / v)

        if math.isnan(low) or high <= 1:
            return est if math.isnan(est.value) or est.value <= 1 else Estimate(fold(est.value), low, high)
        if low >= 1:
            return Estimate(fold(est.value), fold(high), fold(low))
        return Estimate(fold(est.value), min(low, fold(high)), 1.0)

    @property
    def discrimination(self) -> Estimate:
        """Zemel et al.'s discrimination of the worst pair: |statistical parity difference|."""
        est = self.worst("statistical_parity_difference").statistical_parity_difference
        if est.low >= 0:
            return est
        if est.high <= 0:
            return Estimate(abs(est.value), -est.high, -est.low)
        return Estimate(abs(est.value), 0.0, max(-est.low, est.high))

    @property
    def passes_four_fifths(self) -> bool:
        """Whether every unprivileged group's selection rate is within four fifths of the privileged one's."""
        return self.four_fifths_ratio.value >= FOUR_FIFTHS

    @property
    def group_label(self) -> str:
        """The attributes the groups are made of, e.g. ``sex`` or ``sex x race``."""
        return " x ".join(self.attributes)


def _estimate(point: np.ndarray, low: np.ndarray, high: np.ndarray, k: int | None = None) -> Estimate:
    pick = (lambda a: float(a)) if k is None else (lambda a: float(a[k]))
    return Estimate(pick(point), pick(low), pick(high))


def fairness_table(
    y_true: Any,
    y_pred: Any,
    y_score: Any,
    groups: Any,
    *,
    privileged: Any = None,
    x: Any = None,
    dataset: str = "",
    attributes: tuple[str, ...] = (),
    model: str = "",
    threshold: float | None = None,
    bins: int = DEFAULT_BINS,
    neighbours: int = DEFAULT_NEIGHBOURS,
    include_self: bool = False,
    min_group_size: int = DEFAULT_MIN_GROUP_SIZE,
    resamples: int = DEFAULT_RESAMPLES,
    level: float = 0.95,
    seed: int = 0,
    roc_points: int = DEFAULT_ROC_POINTS,
) -> FairnessResult:
    """Every group metric and every pair metric with a percentile bootstrap interval.

    ``y_true`` and ``y_pred`` are 0/1 per example, ``y_score`` the positive-class probability
    (None: calibration is left out), ``groups`` one label per example (see
    :func:`~trustlab.fairness.groups.protected_groups` for intersections). ``privileged`` is a
    group label, or None for the group with the largest selection rate among those of at least
    ``min_group_size`` examples. ``x`` (features, optional) adds Zemel's consistency over
    ``neighbours`` nearest neighbours; its interval resamples the per-example terms, with the
    neighbours found once on the full data. All ``resamples`` resamples are drawn at once
    (seeded) and tallied with matrix operations. With scores, each group's ROC curve (at most
    ``roc_points`` points) and reliability diagram (over the ``bins`` bins of the ECE) are kept too.
    """
    start = time.perf_counter()
    inputs = check_inputs(y_true, y_pred, y_score, groups)
    resamples = positive_int(resamples, "resamples")
    bins = positive_int(bins, "bins")
    min_group_size = positive_int(min_group_size, "min_group_size")
    roc_points = positive_int(roc_points, "roc_points")
    if not 0 < level < 1:
        raise InputError(f"level must lie in (0, 1), got {level}")
    n = len(inputs.codes)
    extra = None
    if x is not None:
        extra = consistency_terms(x, inputs.y_pred, k=neighbours, include_self=include_self)
    observed = inputs.tally(bins=bins, extra=extra)
    sizes = observed.counts.sum((2, 3, 4))[0]
    point0 = observed.statistics(0)
    if privileged is None:
        rates = point0["selection_rate"][0]
        eligible = sizes >= min_group_size if (sizes >= min_group_size).any() else np.ones_like(sizes, dtype=bool)
        p = int(np.argmax(np.where(eligible, rates, -np.inf)))
        rule = "largest selection rate"
    else:
        p = inputs.privileged_code(privileged)
        rule = "chosen"
    point = observed.statistics(p)
    draws = inputs.tally(bins=bins, index=resample_blocks(n, resamples, seed=seed), extra=extra).statistics(p)
    bounds = {name: percentile_interval(values, level) for name, values in draws.items() if name != "size"}

    def est(name: str, k: int | None = None) -> Estimate:
        low, high = bounds[name]
        return _estimate(point[name][0], low, high, k)

    counts = observed.counts[0].sum(-1)  # (G, true, pred)
    rows = []
    warnings = []
    for k, label in enumerate(inputs.labels):
        small = bool(sizes[k] < min_group_size)
        if small:
            warnings.append(
                f"group {label!r} has {int(sizes[k])} examples (fewer than {min_group_size}): its figures are "
                "uncertain and its intervals wide"
            )
        if counts[k, 1].sum() == 0:
            warnings.append(f"group {label!r} has no positive examples: its true positive rate is undefined")
        rows.append(
            GroupRow(
                group=label,
                size=int(sizes[k]),
                positives=int(counts[k, 1].sum()),
                selected=int(counts[k, :, 1].sum()),
                selection_rate=est("selection_rate", k),
                tpr=est("tpr", k),
                fpr=est("fpr", k),
                ece=None if inputs.y_score is None else est("ece", k),
                small=small,
            )
        )
    curves = None
    if inputs.y_score is not None:
        curves = group_curves(
            inputs.y_true, inputs.y_score, inputs.codes, inputs.labels, bins=bins, roc_points=max(2, roc_points)
        )
    pairs = tuple(
        PairRow(label, *(est(metric, k) for metric in PAIR_METRICS)) for k, label in enumerate(inputs.labels) if k != p
    )
    return FairnessResult(
        dataset=dataset,
        attributes=tuple(attributes),
        privileged=inputs.labels[p],
        privileged_rule=rule,
        groups=tuple(rows),
        pairs=pairs,
        equalized_odds_all_groups=est("all_groups_equalized_odds"),
        accuracy=est("accuracy"),
        consistency=None if extra is None else est("consistency"),
        neighbours=int(neighbours),
        include_self=bool(include_self),
        bins=bins,
        threshold=None if threshold is None else float(threshold),
        min_group_size=min_group_size,
        warnings=tuple(warnings),
        resamples=resamples,
        level=float(level),
        seed=int(seed),
        examples=n,
        model=model,
        seconds=time.perf_counter() - start,
        curves=curves,
    )
