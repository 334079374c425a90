"""Group fairness metrics as pure functions of ``(y_true, y_pred, y_score, groups)``, and the
vectorised engine behind them and behind their bootstrap intervals.

Sign conventions follow AIF360: a *difference* is unprivileged minus privileged, a *ratio* is
unprivileged over privileged, so a negative difference or a ratio below 1 means the unprivileged
group is worse off. With more than two groups, each unprivileged group is compared with the
privileged one and the functions return ``{group: value}``.

* selection rate: P(y_pred = 1 | group)
* statistical parity difference: SR(u) - SR(p); Zemel et al. (2013)'s *discrimination* is its
  absolute value
* disparate impact: SR(u) / SR(p); the four-fifths rule of US hiring guidance flags a ratio below 0.8
* true / false positive rates: P(y_pred = 1 | y_true = 1, group), P(y_pred = 1 | y_true = 0, group)
* equal opportunity difference: TPR(u) - TPR(p)
* average odds difference: ((FPR(u) - FPR(p)) + (TPR(u) - TPR(p))) / 2
* equalised odds difference: max(|TPR(u) - TPR(p)|, |FPR(u) - FPR(p)|) per pair; over all groups,
  fairlearn's definition: the larger of (max - min of TPR) and (max - min of FPR)
* calibration by group: expected calibration error of the positive-class score in each group,
  ``sum_b n_gb / n_g * |mean(y_true) - mean(y_score)|`` over equal-width bins of [0, 1]
* consistency (Zemel et al. 2013): ``1 - mean_i |y_pred_i - mean of y_pred over i's k nearest
  neighbours|``; AIF360 counts each point as its own neighbour (``include_self=True`` here)

**The engine.** Every example falls in one cell (group, true label, predicted label, score bin).
All metrics are functions of the cell counts and of the score sums per cell. A bootstrap resample
is a row of an index matrix (R x N) drawn at once; the counts of all resamples come from one
``bincount`` over ``cell[index] + R-offsets`` (chunked to bound memory), so no Python loop runs
per resample. Undefined values (a group without positives in a resample) are NaN and left out of
the percentiles.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from trustlab.core.exceptions import InputError
from trustlab.core.validate import positive_int
from trustlab.fairness.groups import ERR_UNKNOWN_PRIVILEGED, binary, encode_groups

DEFAULT_BINS = 10
DEFAULT_NEIGHBOURS = 5
CHUNK_ROWS = 2_000_000  # resampled rows tallied at once (about 50 MB of temporaries)
PAIR_METRICS = (
    "statistical_parity_difference",
    "disparate_impact",
    "equal_opportunity_difference",
    "average_odds_difference",
    "equalized_odds_difference",
)
GROUP_METRICS = ("selection_rate", "tpr", "fpr", "ece")


# ----------------------------------------------------------------------- the engine ---------
@dataclass(frozen=True)
class Tally:
    """Cell counts of R resamples: ``counts`` (R, G, 2, 2, B) over (group, true label, predicted
    label, score bin), ``score_sums`` (R, G, B), and ``extra_sums`` (R,) of an optional per-example
    term (consistency)."""

    counts: np.ndarray
    score_sums: np.ndarray
    extra_sums: np.ndarray | None

    def statistics(self, privileged: int) -> dict[str, np.ndarray]:
        """Every metric for every resample: group metrics (R, G), pair metrics (R, G) against the
        ``privileged`` group (its own column is 0 or 1), and overall figures (R,)."""
        counts = self.counts.astype(np.float64)
        n = counts.sum(-1)  # (R, G, true, pred)
        size = n.sum((2, 3))
        with np.errstate(divide="ignore", invalid="ignore"):
            rate = n[:, :, :, 1].sum(2) / size
            tpr = n[:, :, 1, 1] / n[:, :, 1, :].sum(-1)
            fpr = n[:, :, 0, 1] / n[:, :, 0, :].sum(-1)
            # sum_b n_gb/n_g |mean y - mean s| = sum_b |sum y - sum s| / n_g
            ece = np.abs(counts[:, :, 1].sum(2) - self.score_sums).sum(-1) / size
            p = slice(privileged, privileged + 1)
            d_tpr, d_fpr = tpr - tpr[:, p], fpr - fpr[:, p]
            out = {
                "size": size,
                "selection_rate": rate,
                "tpr": tpr,
                "fpr": fpr,
                "ece": ece,
                "statistical_parity_difference": rate - rate[:, p],
                "disparate_impact": rate / rate[:, p],
                "equal_opportunity_difference": d_tpr,
                "average_odds_difference": (d_fpr + d_tpr) / 2,
                "equalized_odds_difference": np.maximum(np.abs(d_tpr), np.abs(d_fpr)),
                "accuracy": (n[:, :, 0, 0] + n[:, :, 1, 1]).sum(1) / size.sum(1),
                "all_groups_equalized_odds": _all_groups_equalized_odds(tpr, fpr),
            }
            if self.extra_sums is not None:
                out["consistency"] = 1 - self.extra_sums / size.sum(1)
        return out


def _all_groups_equalized_odds(tpr: np.ndarray, fpr: np.ndarray) -> np.ndarray:
    """fairlearn's equalised odds difference over all groups, per resample (NaN-aware)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN rows stay NaN
        spread_tpr = np.nanmax(tpr, 1) - np.nanmin(tpr, 1)
        spread_fpr = np.nanmax(fpr, 1) - np.nanmin(fpr, 1)
    return np.maximum(spread_tpr, spread_fpr)


def score_bins(y_score: np.ndarray, bins: int) -> np.ndarray:
    """Equal-width bin of each score in [0, 1] (a score of exactly 1 falls in the last bin)."""
    return np.clip(np.floor(y_score * bins).astype(np.int64), 0, bins - 1)


def tally(
    codes: np.ndarray,
    groups: int,
    y_true: np.ndarray,
    y_pred: np.ndarray,
    y_score: np.ndarray,
    *,
    bins: int = DEFAULT_BINS,
    index: Any = None,
    extra: np.ndarray | None = None,
) -> Tally:
    """Cell counts for each resample, vectorised over resamples: one gather and one ``bincount``
    per block of resamples. ``index``: an R x N matrix of resampled example numbers, or an iterable
    of such blocks (:func:`resample_blocks`, which bounds memory); None: the data as it is (R = 1)."""
    n = len(codes)
    cells = groups * 4 * bins
    cell = ((codes * 2 + y_true) * 2 + y_pred) * bins + score_bins(y_score, bins)
    if index is None:
        blocks: Any = [np.arange(n)[None, :]]
    elif isinstance(index, np.ndarray):
        step = max(1, CHUNK_ROWS // max(1, n))
        blocks = (index[start : start + step] for start in range(0, len(index), step))
    else:
        blocks = index
    counts, score_sums, extra_sums = [], [], []
    for rows in blocks:
        m = rows.shape[0]
        key = (cell[rows] + (np.arange(m, dtype=np.int64) * cells)[:, None]).ravel()
        counts.append(np.bincount(key, minlength=m * cells).reshape(m, cells))
        score_sums.append(np.bincount(key, weights=y_score[rows].ravel(), minlength=m * cells).reshape(m, cells))
        if extra is not None:
            extra_sums.append(extra[rows].sum(1))
    shape = (-1, groups, 2, 2, bins)
    return Tally(
        np.concatenate(counts).reshape(shape),
        np.concatenate(score_sums).reshape(shape).sum((2, 3)),
        np.concatenate(extra_sums) if extra is not None else None,
    )


def resample_blocks(n: int, resamples: int, *, seed: int = 0) -> Iterator[np.ndarray]:
    """The bootstrap's resampled example numbers (drawn with replacement, seeded), in blocks of
    whole resamples of at most ``CHUNK_ROWS`` numbers each, so memory stays bounded for any N."""
    positive_int(resamples, "resamples")
    rng = np.random.default_rng(seed)
    dtype = np.int32 if n < 2**31 else np.int64
    step = max(1, CHUNK_ROWS // max(1, n))
    for start in range(0, resamples, step):
        yield rng.integers(0, n, size=(min(step, resamples - start), n), dtype=dtype)


def resample_indices(n: int, resamples: int, *, seed: int = 0) -> np.ndarray:
    """All of :func:`resample_blocks` as one R x N matrix (the same numbers, for checks and small data)."""
    return np.concatenate(list(resample_blocks(n, resamples, seed=seed)))


# ------------------------------------------------------------------- inputs ---------------
@dataclass(frozen=True)
class Inputs:
    """Checked inputs: binary ``y_true`` and ``y_pred``, scores in [0, 1] (None: predictions only),
    group codes and labels."""

    y_true: np.ndarray
    y_pred: np.ndarray
    y_score: np.ndarray | None
    codes: np.ndarray
    labels: tuple[str, ...]

    def tally(self, *, bins: int = DEFAULT_BINS, index: Any = None, extra: Any = None) -> Tally:
        """:func:`tally` of these inputs (hard predictions stand in for missing scores)."""
        score = self.y_pred.astype(np.float64) if self.y_score is None else self.y_score
        return tally(self.codes, len(self.labels), self.y_true, self.y_pred, score, bins=bins, index=index, extra=extra)

    def privileged_code(self, privileged: Any) -> int:
        """The code of the ``privileged`` group label (a one-line error listing the groups if unknown)."""
        if str(privileged) not in self.labels:
            raise InputError(ERR_UNKNOWN_PRIVILEGED.format(value=str(privileged), groups=", ".join(self.labels)))
        return self.labels.index(str(privileged))


def check_inputs(y_true: Any, y_pred: Any, y_score: Any, groups: Any) -> Inputs:
    """Validate and convert the metric functions' arguments (one-line errors naming the argument)."""
    codes, labels = encode_groups(groups)
    n = len(codes)
    truth = binary(y_true, "y_true", n) if y_true is not None else np.zeros(n, dtype=np.int64)
    pred = binary(y_pred, "y_pred", n)
    score = None
    if y_score is not None:
        score = np.asarray(y_score.detach().cpu().numpy() if hasattr(y_score, "detach") else y_score, dtype=np.float64)
        if score.shape != (n,):
            raise InputError(f"y_score must hold one score per example ({n}), got shape {score.shape}")
        if not np.isfinite(score).all() or score.min() < 0 or score.max() > 1:
            raise InputError("y_score must be probabilities of the positive class, in [0, 1]")
    return Inputs(truth, pred, score, codes, labels)


def _per_group(values: np.ndarray, labels: tuple[str, ...]) -> dict[str, float]:
    return {label: float(v) for label, v in zip(labels, values)}


def _pairs(metric: str, y_true: Any, y_pred: Any, groups: Any, privileged: Any) -> dict[str, float]:
    inputs = check_inputs(y_true, y_pred, None, groups)
    p = inputs.privileged_code(privileged)
    values = inputs.tally().statistics(p)[metric][0]
    return {label: float(v) for k, (label, v) in enumerate(zip(inputs.labels, values)) if k != p}


# --------------------------------------------------------------- the metrics --------------
def selection_rates(y_pred: Any, groups: Any) -> dict[str, float]:
    """P(y_pred = 1) in each group: ``{group: rate}``."""
    inputs = check_inputs(None, y_pred, None, groups)
    return _per_group(inputs.tally().statistics(0)["selection_rate"][0], inputs.labels)


def true_positive_rates(y_true: Any, y_pred: Any, groups: Any) -> dict[str, float]:
    """P(y_pred = 1 | y_true = 1) in each group (NaN for a group without positives)."""
    inputs = check_inputs(y_true, y_pred, None, groups)
    return _per_group(inputs.tally().statistics(0)["tpr"][0], inputs.labels)


def false_positive_rates(y_true: Any, y_pred: Any, groups: Any) -> dict[str, float]:
    """P(y_pred = 1 | y_true = 0) in each group (NaN for a group without negatives)."""
    inputs = check_inputs(y_true, y_pred, None, groups)
    return _per_group(inputs.tally().statistics(0)["fpr"][0], inputs.labels)


def statistical_parity_difference(y_pred: Any, groups: Any, privileged: Any) -> dict[str, float]:
    """SR(u) - SR(p) for every unprivileged group u; Zemel's discrimination is its absolute value."""
    return _pairs("statistical_parity_difference", None, y_pred, groups, privileged)


def disparate_impact(y_pred: Any, groups: Any, privileged: Any) -> dict[str, float]:
    """SR(u) / SR(p) for every unprivileged group u (the four-fifths rule flags values below 0.8)."""
    return _pairs("disparate_impact", None, y_pred, groups, privileged)


def equal_opportunity_difference(y_true: Any, y_pred: Any, groups: Any, privileged: Any) -> dict[str, float]:
    """TPR(u) - TPR(p) for every unprivileged group u."""
    return _pairs("equal_opportunity_difference", y_true, y_pred, groups, privileged)


def average_odds_difference(y_true: Any, y_pred: Any, groups: Any, privileged: Any) -> dict[str, float]:
    """((FPR(u) - FPR(p)) + (TPR(u) - TPR(p))) / 2 for every unprivileged group u."""
    return _pairs("average_odds_difference", y_true, y_pred, groups, privileged)


def equalized_odds_difference(y_true: Any, y_pred: Any, groups: Any) -> float:
    """fairlearn's equalised odds difference: the larger of the TPR spread and the FPR spread
    (max - min over all groups); 0 means equal TPR and equal FPR in every group."""
    inputs = check_inputs(y_true, y_pred, None, groups)
    return float(inputs.tally().statistics(0)["all_groups_equalized_odds"][0])


def calibration_by_group(y_true: Any, y_score: Any, groups: Any, *, bins: int = DEFAULT_BINS) -> dict[str, float]:
    """Expected calibration error of the positive-class score in each group, over ``bins``
    equal-width bins of [0, 1]: ``sum_b n_gb / n_g * |mean(y_true) - mean(y_score)|`` in bin b."""
    positive_int(bins, "bins")
    score = np.asarray(y_score, dtype=np.float64)
    inputs = check_inputs(y_true, (score >= 0.5).astype(np.int64), score, groups)
    return _per_group(inputs.tally(bins=bins).statistics(0)["ece"][0], inputs.labels)


def consistency_terms(x: Any, y_pred: Any, *, k: int = DEFAULT_NEIGHBOURS, include_self: bool = False) -> np.ndarray:
    """``|y_pred_i - mean of y_pred over i's k nearest neighbours|`` for each example (Euclidean
    distance on ``x`` as given: scale the features first if their units differ).

    ``include_self=False`` leaves each point out of its own neighbours (Zemel et al.'s definition);
    ``include_self=True`` does what AIF360's ``consistency`` does: the k nearest points of the
    data, the point itself among them."""
    from sklearn.neighbors import NearestNeighbors

    positive_int(k, "k")
    features = np.asarray(x.detach().cpu().numpy() if hasattr(x, "detach") else x, dtype=np.float64)
    features = features.reshape(len(features), -1)
    pred = binary(y_pred, "y_pred", len(features)).astype(np.float64)
    wanted = k if include_self else k + 1
    if wanted > len(features):
        raise InputError(f"consistency needs more than k={k} examples, got {len(features)}")
    _, index = NearestNeighbors(n_neighbors=wanted).fit(features).kneighbors(features)
    if not include_self:
        # drop the point itself (or, among exact duplicates where it was not returned, the farthest)
        own = index == np.arange(len(features))[:, None]
        own[~own.any(1), -1] = True
        index = index[~own].reshape(len(features), k)
    return np.abs(pred - pred[index].mean(1))


def consistency(x: Any, y_pred: Any, *, k: int = DEFAULT_NEIGHBOURS, include_self: bool = False) -> float:
    """Zemel et al.'s consistency: 1 - mean over examples of :func:`consistency_terms` (1 when
    similar examples always get the same prediction)."""
    return float(1 - consistency_terms(x, y_pred, k=k, include_self=include_self).mean())
