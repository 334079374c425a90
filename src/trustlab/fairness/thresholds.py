"""Post-processing by group thresholds: a fitted score classifier is left as it is and each
protected group gets its own (possibly randomised) decision rule on the score, chosen so that the
decisions satisfy a fairness constraint with the best accuracy on the fitting data.

**The decision rule.** For an example of group g with score s:

* with probability ``random_shares_[g]`` the score is ignored and the example is selected with
  probability ``random_rate_`` (equalised odds only; 0 for demographic parity);
* otherwise it is selected when ``s >= upper_thresholds_[g]``, selected with probability
  ``band_probabilities_[g]`` when ``thresholds_[g] <= s < upper_thresholds_[g]``, and not
  selected when ``s < thresholds_[g]``. An empty band (``thresholds_ == upper_thresholds_``) is a
  plain threshold.

The coins are drawn per example from ``numpy.random.default_rng(seed)`` at each ``predict`` call,
so the same scores and groups give the same decisions.

**demographic_parity.** Every group is given the same selection rate r. Thresholding group g's
score at each value selects some count of its examples with some count of positives; mixing two
thresholds reaches any point between them, so the best rule at a selection count k lies on the
upper convex hull of those (count, positives) points (a tie block is one point). For each r on
the grid ``0, 1/grid, ..., 1`` each group takes the hull at ``k = r * n_g``: everything from the
hull edge's upper threshold, and a random share of the scores between its two thresholds (the
band). The expected accuracy on the fitting data is computed for every r at once and the first
best r is kept. (Taking the top ``k`` scores instead can be worse where a group's positives are
not concentrated at its highest scores.)
With ``ratio`` below 1 the rates may differ as long as the lowest is at least ``ratio`` times the
highest (0.8: the four-fifths rule of disparate impact): for each top rate R on the grid every
group takes its most accurate rate in [ratio R, R], and the best R is kept (an R x R table per
group, so memory grows with ``grid`` squared).

**equalized_odds** (Hardt, Price and Srebro, 2016). Thresholding group g's score at every value
traces its ROC curve; mixing two thresholds reaches any point on the segment between them, and
mixing with the constant rules (select nobody: (0, 0); everybody: (1, 1)) any point in the convex
hull. All groups share one (FPR, TPR) point, so it must lie in every hull. Its error on the
fitting data, ``N- * FPR + N+ * (1 - TPR)``, falls as TPR rises, so for a given FPR f the best
shared point is ``TPR = min_g U_g(f)`` with U_g the upper hull of group g's ROC curve (every hull
contains the diagonal, so that point is feasible). This minimum of concave piecewise-linear
functions is concave and piecewise linear; its maximum is at one of its break points: a hull
vertex of some group or a crossing of two groups' hulls, all of which are enumerated exactly. A
group whose hull passes through the chosen point reaches it by mixing the two thresholds of the
hull edge under it (``band_probabilities_``); a group whose hull lies above it mixes that hull
point with the diagonal point (f, f), i.e. a random selection at rate f (``random_shares_``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from trustlab.core.exceptions import InputError
from trustlab.core.validate import positive_int
from trustlab.fairness.groups import ERR_LENGTHS, binary, encode_groups
from trustlab.fairness.preprocess import as_array

CONSTRAINTS = ("demographic_parity", "equalized_odds")
ERR_CONSTRAINT = "constraint must be one of {known}, got {value!r}"
ERR_RATIO = "ratio must be a number in (0, 1] (1: equal selection rates, 0.8: the four-fifths rule), got {value!r}"
ERR_SCORES = "y_score must hold probabilities of the positive class: finite values in [0, 1]"
ERR_SCORE_SHAPE = "y_score must be a 1-D array of one score per example, got shape {shape}"
ERR_UNKNOWN_GROUP = "groups holds {values} not seen in fit; fitted groups: {known}"
ERR_ONE_CLASS = "y_true has no {which} examples in group {group!r}; equalized_odds needs both labels in every group"
ERR_NOT_FITTED = "GroupThresholds is not fitted yet: call fit(y_true, y_score, groups) first"
_TOLERANCE = 1e-12


def _scores(y_score: Any, expected: int | None = None) -> np.ndarray:
    score = as_array(y_score)
    if score.ndim != 1:
        raise InputError(ERR_SCORE_SHAPE.format(shape=score.shape))
    if expected is not None and len(score) != expected:
        raise InputError(ERR_LENGTHS.format(name="y_score", got=len(score), expected=expected))
    if score.dtype.kind not in "biuf":
        raise InputError(ERR_SCORES)
    score = score.astype(np.float64)
    if not np.isfinite(score).all() or (len(score) and (score.min() < 0 or score.max() > 1)):
        raise InputError(ERR_SCORES)
    return score


# ------------------------------------------------------------------ per-group curves ------------
def _blocks(score: np.ndarray, truth: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The distinct scores in decreasing order, and the cumulative counts of examples and of
    positives with a score at or above each (one entry per distinct score)."""
    order = np.argsort(-score, kind="stable")
    s, y = score[order], truth[order]
    last = np.r_[s[1:] != s[:-1], True]  # the last example of each tie block
    return s[last], (np.flatnonzero(last) + 1).astype(np.float64), np.cumsum(y)[last].astype(np.float64)


def roc_vertices(score: np.ndarray, truth: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(FPR, TPR, threshold) of the rules ``score >= threshold`` for threshold = +inf (nobody
    selected: (0, 0)) and each distinct score, in increasing FPR order."""
    values, selected, tp = _blocks(score, truth)
    positives, negatives = tp[-1], selected[-1] - tp[-1]
    fpr = np.r_[0.0, (selected - tp) / negatives]
    tpr = np.r_[0.0, tp / positives]
    return fpr, tpr, np.r_[np.inf, values]


def upper_hull(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Indices of the vertices of the upper convex hull of points sorted by non-decreasing ``x``
    (at equal x only the highest point can be a vertex). Every point on or below the chord of its
    two neighbours is dropped in one vectorised round (no such point can be a vertex), until none is."""
    idx = np.flatnonzero(np.r_[x[1:] != x[:-1], True])  # at each x the last point, the highest on a ROC curve
    while len(idx) > 2:
        a, b, c = idx[:-2], idx[1:-1], idx[2:]
        above = (y[b] - y[a]) * (x[c] - x[a]) - (y[c] - y[a]) * (x[b] - x[a]) > 0
        if above.all():
            break
        idx = idx[np.r_[True, above, True]]
    return idx


# ------------------------------------------------------------------------ the estimator ---------
class GroupThresholds:
    """Group-specific thresholds on a score that make decisions satisfy ``constraint`` with the
    best accuracy on the fitting data (see the module docstring for both constraints and the
    randomised decision rule).

    ``constraint``: ``"demographic_parity"`` (equal selection rates) or ``"equalized_odds"`` (equal
    true and false positive rates, Hardt et al. 2016). ``ratio``: the lowest selection rate over the
    highest that demographic parity must reach (1: equal rates; 0.8: the four-fifths rule).
    ``grid``: the number of steps of the selection rates tried by demographic parity (``0, 1/grid,
    ..., 1``; equalised odds is solved exactly and ignores it). ``seed``: the seed of the
    per-example coins of ``predict``.

    Fitted attributes: ``groups_`` (labels, sorted, as strings), ``thresholds_``,
    ``upper_thresholds_``, ``band_probabilities_``, ``random_shares_`` (one per group),
    ``random_rate_``, ``accuracy_`` (expected accuracy of the decisions on the fitting data);
    demographic parity adds ``rates_`` (each group's selection rate) and ``rate_`` (the highest),
    equalised odds ``fpr_`` and
    ``tpr_`` (the common point) and ``hulls_`` (per group, the upper ROC hull as an array of rows
    (FPR, TPR, threshold)).
    """

    def __init__(
        self, *, constraint: str = "demographic_parity", ratio: float = 1.0, grid: int = 1000, seed: int = 0
    ) -> None:
        if constraint not in CONSTRAINTS:
            raise InputError(ERR_CONSTRAINT.format(known=", ".join(CONSTRAINTS), value=constraint))
        if isinstance(ratio, bool) or not isinstance(ratio, int | float) or not 0 < ratio <= 1:
            raise InputError(ERR_RATIO.format(value=ratio))
        self.constraint = constraint
        self.ratio = float(ratio)
        self.grid = positive_int(grid, "grid")
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
            raise InputError(f"seed must be an integer, got {seed!r}")
        self.seed = int(seed)

    def __repr__(self) -> str:
        return (
            f"GroupThresholds(constraint={self.constraint!r}, ratio={self.ratio}, grid={self.grid}, seed={self.seed})"
        )

    # -------------------------------------------------------------------------- fit -------------
    def fit(self, y_true: Any, y_score: Any, groups: Any) -> GroupThresholds:
        """Choose each group's rule on the scores ``y_score`` (positive-class probabilities) of
        examples with labels ``y_true`` (0/1) and group labels ``groups``. Returns self."""
        codes, labels = encode_groups(groups)
        n = len(codes)
        truth = binary(y_true, "y_true", n)
        score = _scores(y_score, n)
        self.groups_ = np.asarray(labels)
        members = [np.flatnonzero(codes == g) for g in range(len(labels))]
        if self.constraint == "demographic_parity":
            self._fit_parity(truth, score, members)
        else:
            self._fit_odds(truth, score, members)
        return self

    def _fit_parity(self, truth: np.ndarray, score: np.ndarray, members: list[np.ndarray]) -> None:
        rates = np.arange(self.grid + 1) / self.grid
        hulls, correct = [], []  # per group: the upper hull of (selected, true positives, threshold)
        for m in members:
            values, selected, tp = _blocks(score[m], truth[m])
            sel, pos, cut = np.r_[0.0, selected], np.r_[0.0, tp], np.r_[np.inf, values]
            keep = upper_hull(sel, pos)
            hulls.append((sel[keep], pos[keep], cut[keep]))
            k = rates * len(m)
            expected_tp = np.interp(k, sel[keep], pos[keep])
            correct.append(expected_tp + (len(m) - tp[-1]) - (k - expected_tp))
        correct = np.stack(correct)  # (G, rates): expected correct decisions of each group at each rate
        # every group's rate lies in [ratio * top, top] for a top rate on the grid: then the lowest
        # rate over the highest is at least ratio. Each group takes its best rate in that window.
        low = self.ratio * rates[:, None] - _TOLERANCE
        window = (rates[None, :] <= rates[:, None] + _TOLERANCE) & (rates[None, :] >= low)
        in_window = np.where(window[None], correct[:, None, :], -np.inf)  # (G, top, rate)
        pick = in_window.argmax(-1)  # (G, top): the first best rate of each group for each top
        total = np.take_along_axis(in_window, pick[..., None], -1)[..., 0].sum(0)
        best = int(np.argmax(total))
        self.rates_ = rates[pick[:, best]]
        self.rate_ = float(self.rates_.max())
        self.accuracy_ = float(total[best] / len(truth))
        rules = []  # (threshold, upper threshold, band probability) per group
        for (sel, _, cut), rate in zip(hulls, self.rates_):
            k = rate * sel[-1]
            j = int(np.clip(np.searchsorted(sel, k - _TOLERANCE * sel[-1]), 1, len(sel) - 1))  # edge j-1 -> j
            p = (k - sel[j - 1]) / (sel[j] - sel[j - 1])
            if p >= 1 - 1e-9:
                rules.append((cut[j], cut[j], 0.0))
            elif p <= 1e-9:
                rules.append((cut[j - 1], cut[j - 1], 0.0))
            else:  # everything from the edge's upper vertex, and a share p of the scores down to the lower one
                rules.append((cut[j], cut[j - 1], p))
        self._set_rule(rules, np.zeros(len(members)), 0.0)

    def _fit_odds(self, truth: np.ndarray, score: np.ndarray, members: list[np.ndarray]) -> None:
        hulls = []
        for label, m in zip(self.groups_, members):
            positives = int(truth[m].sum())
            if positives == 0 or positives == len(m):
                raise InputError(
                    ERR_ONE_CLASS.format(which="positive" if positives == 0 else "negative", group=str(label))
                )
            fpr, tpr, cut = roc_vertices(score[m], truth[m])
            keep = upper_hull(fpr, tpr)
            hulls.append(np.column_stack([fpr[keep], tpr[keep], cut[keep]]))
        self.hulls_ = tuple(hulls)
        # the break points of min_g U_g: every hull vertex, and every crossing of two hulls
        xs = np.unique(np.concatenate([h[:, 0] for h in hulls]))
        heights = np.stack([np.interp(xs, h[:, 0], h[:, 1]) for h in hulls])  # (G, K)
        d = heights[:, None, :] - heights[None, :, :]  # (G, G, K)
        left, right = d[..., :-1], d[..., 1:]
        crosses = (left * right) < 0
        with np.errstate(divide="ignore", invalid="ignore"):
            at = xs[:-1] + (xs[1:] - xs[:-1]) * left / (left - right)
        candidates = np.unique(np.r_[xs, at[crosses]])
        tops = np.stack([np.interp(candidates, h[:, 0], h[:, 1]) for h in hulls]).min(0)
        n_pos, n_neg = float(truth.sum()), float(len(truth) - truth.sum())
        objective = n_pos * tops - n_neg * candidates
        best = int(np.argmax(objective))
        f, t = float(candidates[best]), float(tops[best])
        self.fpr_, self.tpr_ = f, t
        self.accuracy_ = float((n_pos * t + n_neg * (1 - f)) / len(truth))
        rules, share = [], []
        for h in hulls:
            j = int(np.clip(np.searchsorted(h[:, 0], f, side="right"), 1, len(h) - 1))  # edge h[j-1] -> h[j]
            (fa, ta, cut_a), (fb, tb, cut_b) = h[j - 1], h[j]
            p = (f - fa) / (fb - fa)
            top = ta + p * (tb - ta)
            if p <= 1e-9:
                rules.append((cut_a, cut_a, 0.0))
            elif p >= 1 - 1e-9:
                rules.append((cut_b, cut_b, 0.0))
            else:
                rules.append((cut_b, cut_a, p))
            # (f, t) = lam * (f, top) + (1 - lam) * (f, f): the rest of the time, select at random at rate f
            lam = 1.0 if top - f <= _TOLERANCE else (t - f) / (top - f)
            share.append(float(np.clip(1 - lam, 0.0, 1.0)))
        self._set_rule(rules, np.asarray(share), f)

    def _set_rule(self, rules: list[tuple[float, float, float]], share: np.ndarray, rate: float) -> None:
        lower, upper, band = np.asarray(rules, dtype=np.float64).T
        self.thresholds_, self.upper_thresholds_, self.band_probabilities_ = lower, upper, band
        self.random_shares_ = np.asarray(share, dtype=np.float64)
        self.random_rate_ = float(rate)

    # ---------------------------------------------------------------------- predict -------------
    def predict(self, y_score: Any, groups: Any) -> np.ndarray:
        """0/1 decisions (int64) for scores ``y_score`` of examples of the fitted ``groups``,
        by each group's rule; the per-example coins come from a generator seeded with ``seed``."""
        if not hasattr(self, "thresholds_"):
            raise InputError(ERR_NOT_FITTED)
        score = _scores(y_score)
        labels = as_array(groups)
        if labels.ndim != 1:
            raise InputError(f"groups must be one label per example (a 1-D array), got shape {labels.shape}")
        if len(labels) != len(score):
            raise InputError(ERR_LENGTHS.format(name="groups", got=len(labels), expected=len(score)))
        labels = labels.astype(str)
        code = np.clip(np.searchsorted(self.groups_, labels), 0, len(self.groups_) - 1)
        unknown = self.groups_[code] != labels
        if unknown.any():
            found = np.unique(labels[unknown])
            shown = ", ".join(repr(str(v)) for v in found[:5]) + (", ..." if len(found) > 5 else "")
            raise InputError(ERR_UNKNOWN_GROUP.format(values=shown, known=", ".join(map(str, self.groups_))))
        band, ignore, constant = np.random.default_rng(self.seed).random((3, len(score)))
        by_score = (score >= self.upper_thresholds_[code]) | (
            (score >= self.thresholds_[code]) & (band < self.band_probabilities_[code])
        )
        decided = np.where(ignore < self.random_shares_[code], constant < self.random_rate_, by_score)
        return decided.astype(np.int64)
