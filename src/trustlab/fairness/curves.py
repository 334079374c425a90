"""Per-group curves of a score, as pure functions of ``(y_true, y_score)``: the ROC curve with its
area, thinned to a bounded number of points for the report, and the reliability diagram (mean
score against observed positive rate in equal-width score bins, the bins of the ECE).

A group's curves show *where* two groups' scores differ: a lower ROC curve means the score ranks
that group's examples worse (no threshold can give it the other group's error rates), a
reliability curve off the diagonal means the score means something else for that group.
"""

from __future__ import annotations

import numpy as np

from trustlab.fairness.metrics import score_bins

DEFAULT_ROC_POINTS = 200


def roc_curve_points(y_true: np.ndarray, y_score: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(FPR, TPR) of the rules ``score >= t`` for every distinct score t (highest first), without
    the points that lie on a straight line between their neighbours (they add nothing to the
    curve or its area), preceded by (0, 0). Needs both labels in ``y_true``."""
    order = np.argsort(-y_score, kind="stable")
    score, truth = y_score[order], y_true[order]
    last = np.r_[score[1:] != score[:-1], True]  # the last example of each block of equal scores
    tp = np.cumsum(truth)[last].astype(np.float64)
    fp = (np.flatnonzero(last) + 1) - tp
    if len(tp) > 2:  # keep the ends and every point where the direction changes
        turn = (np.diff(fp, 2) != 0) | (np.diff(tp, 2) != 0)
        keep = np.r_[True, turn, True]
        tp, fp = tp[keep], fp[keep]
    return np.r_[0.0, fp / fp[-1]], np.r_[0.0, tp / tp[-1]]


def curve_area(fpr: np.ndarray, tpr: np.ndarray) -> float:
    """Area under a curve by the trapezoidal rule (for a full ROC curve: the AUC, ties counted half)."""
    return float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2))


def thin_curve(fpr: np.ndarray, tpr: np.ndarray, max_points: int) -> tuple[np.ndarray, np.ndarray]:
    """At most ``max_points`` (at least 2) of the curve's own points, spread evenly along it: the
    points nearest to evenly spaced values of FPR + TPR, which grows from 0 to 2 along a ROC curve.
    The first and last points are always kept."""
    if len(fpr) <= max_points:
        return fpr, tpr
    along = fpr + tpr
    targets = np.linspace(along[0], along[-1], max(2, max_points))
    right = np.clip(np.searchsorted(along, targets), 1, len(along) - 1)
    nearer_left = targets - along[right - 1] < along[right] - targets
    keep = np.unique(np.r_[0, right - nearer_left, len(along) - 1])
    return fpr[keep], tpr[keep]


def reliability_bins(
    y_true: np.ndarray, y_score: np.ndarray, bins: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The non-empty ones of ``bins`` equal-width bins of [0, 1]: (bin number, mean score, observed
    rate of y_true = 1, example count). ``sum count * |rate - mean score| / n`` is the ECE."""
    which = score_bins(y_score, bins)
    count = np.bincount(which, minlength=bins)
    sums = np.bincount(which, weights=y_score, minlength=bins)
    positives = np.bincount(which, weights=y_true.astype(np.float64), minlength=bins)
    filled = np.flatnonzero(count)
    return filled, sums[filled] / count[filled], positives[filled] / count[filled], count[filled]
