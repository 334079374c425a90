"""Detection metrics over score vectors (higher = more out-of-distribution), as pure functions.

``in_scores`` are scores of in-distribution inputs, ``out_scores`` of out-of-distribution
inputs. The two "FPR at 95% TPR" conventions found in the literature are both given, by name:

- ``fpr_ood_accepted_at_95_id``: threshold accepting 95% of in-distribution inputs; the share
  of OOD inputs also accepted (Hendrycks & Gimpel's and OpenOOD's "FPR@95").
- ``fpr_id_rejected_at_95_ood``: threshold catching 95% of OOD inputs; the share of
  in-distribution inputs rejected with them.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from scipy.stats import rankdata

from trustlab.core.exceptions import InputError

TPR = 0.95


def _arrays(in_scores: Any, out_scores: Any) -> tuple[np.ndarray, np.ndarray]:
    a = np.asarray(in_scores, dtype=np.float64).ravel()
    b = np.asarray(out_scores, dtype=np.float64).ravel()
    if a.size == 0 or b.size == 0:
        raise InputError("detection metrics need at least one in-distribution and one OOD score")
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        raise InputError("scores contain NaN or infinite values")
    return a, b


def auroc(in_scores: Any, out_scores: Any) -> float:
    """Probability that an OOD input scores above an in-distribution one (ties count half)."""
    a, b = _arrays(in_scores, out_scores)
    ranks = rankdata(np.concatenate([a, b]))
    return float((ranks[a.size :].sum() - b.size * (b.size + 1) / 2) / (a.size * b.size))


def average_precision(positive: np.ndarray, negative: np.ndarray) -> float:
    """Area under the precision-recall curve as the step sum over distinct thresholds
    (positives score high), the definition scikit-learn's ``average_precision_score`` uses."""
    scores = np.concatenate([positive, negative])
    labels = np.concatenate([np.ones(positive.size), np.zeros(negative.size)])
    order = np.argsort(-scores, kind="mergesort")
    scores, labels = scores[order], labels[order]
    last_of_group = np.r_[np.flatnonzero(np.diff(scores)), scores.size - 1]
    tp = np.cumsum(labels)[last_of_group]
    predicted = last_of_group + 1
    recall = tp / positive.size
    precision = tp / predicted
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def aupr_out(in_scores: Any, out_scores: Any) -> float:
    """Average precision with OOD inputs as the positive class."""
    a, b = _arrays(in_scores, out_scores)
    return average_precision(b, a)


def aupr_in(in_scores: Any, out_scores: Any) -> float:
    """Average precision with in-distribution inputs as the positive class (scores negated)."""
    a, b = _arrays(in_scores, out_scores)
    return average_precision(-a, -b)


def fpr_ood_accepted_at_95_id(in_scores: Any, out_scores: Any, tpr: float = TPR) -> float:
    """Share of OOD inputs accepted (score <= t) when t accepts ``tpr`` of in-distribution inputs."""
    a, b = _arrays(in_scores, out_scores)
    t = np.sort(a)[math.ceil(tpr * a.size) - 1]
    return float(np.mean(b <= t))


def fpr_id_rejected_at_95_ood(in_scores: Any, out_scores: Any, tpr: float = TPR) -> float:
    """Share of in-distribution inputs rejected (score >= t) when t catches ``tpr`` of OOD inputs."""
    a, b = _arrays(in_scores, out_scores)
    t = np.sort(b)[b.size - math.ceil(tpr * b.size)]
    return float(np.mean(a >= t))


def detection_rate(out_scores: Any, threshold: float) -> float:
    """Share of OOD inputs raising the alarm (score > threshold)."""
    b = np.asarray(out_scores, dtype=np.float64).ravel()
    return float(np.mean(b > threshold)) if b.size else float("nan")


def roc_curve(in_scores: Any, out_scores: Any, points: int = 201) -> tuple[list[float], list[float]]:
    """ROC (false-alarm rate on in-distribution, detection rate on OOD) on a fixed grid of
    false-alarm rates, for plotting: the highest detection rate reachable at each rate."""
    a, b = _arrays(in_scores, out_scores)
    thresholds = np.unique(np.concatenate([a, b, [np.inf]]))[::-1]
    fpr = np.searchsorted(np.sort(-a), -thresholds, side="left") / a.size  # share of a > t (alarm: score > t)
    tpr = np.searchsorted(np.sort(-b), -thresholds, side="left") / b.size
    grid = np.linspace(0.0, 1.0, points)
    best = np.maximum.accumulate(tpr)
    idx = np.searchsorted(fpr, grid, side="right") - 1
    return grid.round(6).tolist(), best[np.clip(idx, 0, None)].round(6).tolist()


def detection_metrics(in_scores: Any, out_scores: Any, threshold: float | None = None) -> dict[str, float]:
    """Every metric for one (detector, OOD set) pair; ``threshold`` adds the detection rate."""
    out = {
        "auroc": auroc(in_scores, out_scores),
        "aupr_in": aupr_in(in_scores, out_scores),
        "aupr_out": aupr_out(in_scores, out_scores),
        "fpr_ood_accepted_at_95_id": fpr_ood_accepted_at_95_id(in_scores, out_scores),
        "fpr_id_rejected_at_95_ood": fpr_id_rejected_at_95_ood(in_scores, out_scores),
    }
    if threshold is not None:
        out["detection_rate"] = detection_rate(out_scores, threshold)
    return out
