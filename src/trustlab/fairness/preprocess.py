"""Pre-processing mitigations: change the training data, not the learner, so that a model fitted
on it discriminates less between protected groups.

* :func:`reweighing_weights`: Kamiran & Calders (2012), "Data preprocessing techniques for
  classification without discrimination", Knowledge and Information Systems 33(1), section 4.2.
  One weight per example, ``w(g, y) = P(g) P(y) / P(g, y)``, so that group and label are
  independent in the weighted data.
* :func:`massage`: the same paper, section 4.1. Flip the fewest labels that give both sides the
  same positive rate, choosing the flips a ranker is least sure of.
* :class:`DisparateImpactRemover`: Feldman et al. (2015), "Certifying and removing disparate
  impact", KDD, section 5 (geometric repair). Move each feature's per-group distribution towards a
  common median distribution while keeping every example's rank within its group.

All take ``groups`` as one label per example (as :func:`trustlab.fairness.groups.protected_groups`
makes them; strings or numbers, compared as strings) and labels ``y`` of 0s and 1s, 1 the
favourable outcome.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from trustlab.core.exceptions import InputError, NotFittedError
from trustlab.fairness.groups import ERR_LENGTHS, ERR_UNKNOWN_PRIVILEGED, binary, encode_groups

ERR_REPAIR_LEVEL = "repair_level must be a number in [0, 1], got {got!r}"
ERR_FEATURES = "{name} must be a finite 2-D array (examples x features), got {got}"
ERR_NOT_FINITE = "{name} contains {count} NaN or infinite values"
ERR_COLUMNS = "columns must be column indices in 0..{high} (or None for all), got {got!r}"
ERR_WIDTH = "{name} has {got} columns but fit saw {expected}"
ERR_UNSEEN_GROUP = "groups contains {group!r}, which fit did not see; fitted groups: {known}"
ERR_NOT_FITTED = "{name} is not fitted; call fit first"
ERR_GROUP_LABELS = "groups must be one label per example (a non-empty 1-D array), got shape {shape}"


# --------------------------------------------------------------------- shared checks ---------
def as_array(values: Any) -> np.ndarray:
    """A numpy view of an array, tensor or sequence (tensors are detached and moved to the CPU)."""
    return np.asarray(values.detach().cpu().numpy() if hasattr(values, "detach") else values)


def feature_matrix(x: Any, name: str = "x", rows: int | None = None) -> np.ndarray:
    """``x`` as a finite float64 matrix (N x D); a one-line :class:`InputError` naming ``name``
    for another shape, a row count other than ``rows``, or NaN/infinite values."""
    try:
        array = as_array(x).astype(np.float64)
    except (TypeError, ValueError) as error:
        raise InputError(ERR_FEATURES.format(name=name, got=type(x).__name__)) from error
    if array.ndim != 2 or array.shape[1] == 0:
        raise InputError(ERR_FEATURES.format(name=name, got=f"shape {array.shape}"))
    if rows is not None and len(array) != rows:
        raise InputError(ERR_LENGTHS.format(name=name, got=len(array), expected=rows))
    bad = int((~np.isfinite(array)).sum())
    if bad:
        raise InputError(ERR_NOT_FINITE.format(name=name, count=bad))
    return array


def group_labels(groups: Any) -> np.ndarray:
    """``groups`` as a 1-D array of strings (one group is allowed: transforms may see one group)."""
    values = as_array(groups)
    if values.ndim != 1 or values.size == 0:
        raise InputError(ERR_GROUP_LABELS.format(shape=values.shape))
    return values.astype(str)


def privileged_split(y: np.ndarray, codes: np.ndarray, labels: tuple[str, ...], privileged: Any) -> int:
    """The code of the privileged group: ``privileged`` if given (a label of ``groups``), else the
    group with the largest positive rate (the first in sorted order on a tie)."""
    if privileged is not None:
        if str(privileged) not in labels:
            raise InputError(ERR_UNKNOWN_PRIVILEGED.format(value=str(privileged), groups=", ".join(labels)))
        return labels.index(str(privileged))
    size = np.bincount(codes, minlength=len(labels))
    positives = np.bincount(codes, weights=y, minlength=len(labels))
    return int(np.argmax(positives / size))


# ------------------------------------------------------------------------- reweighing --------
def reweighing_weights(y: Any, groups: Any) -> np.ndarray:
    """Kamiran & Calders (2012) reweighing: the weight ``P(g) P(y) / P(g, y)`` of each example
    (empirical frequencies; float64, one per example).

    Under these weights the label is independent of the group (every group has the overall
    positive rate), which removes statistical-parity discrimination from a learner that honours
    sample weights, without changing any feature or label. The weights sum to n. With two groups
    this is AIF360's ``Reweighing`` with unit base weights; with more, every (group, label) cell
    gets its own weight. A cell that is empty has no example to weigh, so no division by zero
    occurs; labels of one class only give weights of 1.
    """
    codes, labels = encode_groups(groups)
    n = len(codes)
    labels_y = binary(y, "y", n)
    cell = codes * 2 + labels_y
    cell_size = np.bincount(cell, minlength=2 * len(labels)).astype(np.float64)
    group_size = np.bincount(codes, minlength=len(labels)).astype(np.float64)
    label_size = np.bincount(labels_y, minlength=2).astype(np.float64)
    # P(g) P(y) / P(g, y) = (n_g / n)(n_y / n) / (n_gy / n) = n_g n_y / (n n_gy)
    return group_size[codes] * label_size[labels_y] / (n * cell_size[cell])


# ------------------------------------------------------------------------- massaging ---------
@dataclass(frozen=True)
class MassagingResult:
    """The outcome of :func:`massage`: ``labels`` the massaged labels (int64), ``promoted`` the
    rows of the unprivileged side relabelled 0 -> 1 and ``demoted`` the privileged rows relabelled
    1 -> 0 (row indices, most confident ranker score first), ``changes`` the number of flips per
    direction (M), and ``privileged`` the label of the privileged group."""

    labels: np.ndarray
    promoted: np.ndarray
    demoted: np.ndarray
    changes: int
    privileged: str


def massage(y: Any, groups: Any, scores: Any, *, privileged: Any = None) -> MassagingResult:
    """Kamiran & Calders (2012) massaging: flip the labels of the M unprivileged negatives a
    ranker scores highest to 1 and of the M privileged positives it scores lowest to 0, so both
    sides end with (nearly) the same positive rate and the overall positive rate is unchanged.

    ``scores``: any ranker's score of the positive class per example (e.g. a classifier's
    probability fitted on the original data). ``privileged``: the privileged group's label; None
    takes the group with the largest positive rate. Every other group forms the one unprivileged
    side, as in the paper's binary setting.

    ``M = (p_priv - p_unpriv) n_priv n_unpriv / n`` is the paper's number of flips that equalises
    the two positive rates exactly; it is rounded to the nearest integer (halves up, computed in
    integer arithmetic), which leaves the smallest possible remaining difference. No discrimination
    (``p_priv <= p_unpriv``) gives M = 0 and the labels unchanged. Ties in ``scores`` are broken by
    row order (a stable sort).
    """
    codes, labels = encode_groups(groups)
    n = len(codes)
    labels_y = binary(y, "y", n)
    score = as_array(scores)
    if score.shape != (n,):
        raise InputError(f"scores must hold one score per example ({n}), got shape {score.shape}")
    try:
        score = score.astype(np.float64)
    except (TypeError, ValueError) as error:
        raise InputError(f"scores must be numbers, got {score.dtype}") from error
    if not np.isfinite(score).all():
        raise InputError(ERR_NOT_FINITE.format(name="scores", count=int((~np.isfinite(score)).sum())))
    p = privileged_split(labels_y, codes, labels, privileged)
    is_privileged = codes == p
    n_priv = int(is_privileged.sum())
    n_unpriv = n - n_priv
    pos_priv = int(labels_y[is_privileged].sum())
    pos_unpriv = int(labels_y[~is_privileged].sum())
    # M* = (pos_p / n_p - pos_u / n_u) n_p n_u / n = (pos_p n_u - pos_u n_p) / n; round half up exactly
    numerator = pos_priv * n_unpriv - pos_unpriv * n_priv
    changes = max(0, (2 * numerator + n) // (2 * n))
    rows = np.arange(n)
    promotable = rows[~is_privileged & (labels_y == 0)]
    demotable = rows[is_privileged & (labels_y == 1)]
    changes = min(changes, len(promotable), len(demotable))  # M* is below both counts; a guard only
    promoted = promotable[np.argsort(-score[promotable], kind="stable")[:changes]]
    demoted = demotable[np.argsort(score[demotable], kind="stable")[:changes]]
    new = labels_y.copy()
    new[promoted] = 1
    new[demoted] = 0
    return MassagingResult(new, promoted.astype(np.int64), demoted.astype(np.int64), int(changes), labels[p])


# ------------------------------------------------------------- disparate impact remover ------
class DisparateImpactRemover:
    """Feldman et al. (2015) geometric repair of features, group by group.

    For each repaired column, an example's value ``x`` in group ``g`` has the quantile ``q`` (its
    mid-rank in group g's fitted values, ``(#below + #equal / 2) / n_g``); the target value is
    the median over the fitted groups of their quantile functions at ``q`` (with two groups, the
    mean of the two); the repaired value is ``(1 - repair_level) x + repair_level target``. At
    ``repair_level=1`` every group's values follow the same (median) distribution, so the column no
    longer predicts the group; at 0 nothing changes; in between, the distributions move part of
    the way. The map is monotone within a group, so ranks within a group are kept (strictly for
    ``repair_level < 1``, ties possible at 1). Quantile functions interpolate linearly between
    order statistics (``np.quantile(method="hazen")``, the exact inverse of the mid-rank), and
    values outside a group's fitted range take its extreme values as targets.

    ``columns``: indices of the columns to repair. None repairs every column with more than two
    distinct values in the fit data and leaves constant and two-valued columns (one-hot or 0/1
    indicators) as they are: a constant column is already the same in every group, and repairing
    an indicator would make fractions that no longer encode a category. Name such a column in
    ``columns`` to repair it anyway (its values then become fractions between its two values).

    Fitted attributes: ``columns_`` (repaired column indices), ``groups_`` (fitted group labels),
    ``quantiles_`` (``{column: [sorted values of each group]}``), ``n_features_in_``.
    """

    def __init__(self, repair_level: float = 1.0, *, columns: Sequence[int] | None = None) -> None:
        if (
            isinstance(repair_level, bool)
            or not isinstance(repair_level, int | float | np.integer | np.floating)
            or not 0.0 <= float(repair_level) <= 1.0
        ):
            raise InputError(ERR_REPAIR_LEVEL.format(got=repair_level))
        self.repair_level = float(repair_level)
        self.columns = None if columns is None else tuple(columns)

    def fit(self, x: Any, groups: Any) -> DisparateImpactRemover:
        """Learn each group's sorted values of each repaired column (at least two groups)."""
        codes, labels = encode_groups(groups)
        features = feature_matrix(x, "x", len(codes))
        width = features.shape[1]
        if self.columns is None:
            columns = [c for c in range(width) if len(np.unique(features[:, c])) > 2]
        else:
            columns = list(self.columns)
            valid = all(isinstance(c, int | np.integer) and not isinstance(c, bool) for c in columns)
            if not valid or any(c < -width or c >= width for c in columns):
                raise InputError(ERR_COLUMNS.format(high=width - 1, got=self.columns))
            columns = sorted({int(c) % width for c in columns})
        self.columns_ = tuple(columns)
        self.groups_ = labels
        self.quantiles_ = {c: [np.sort(features[codes == g, c]) for g in range(len(labels))] for c in columns}
        self.n_features_in_ = width
        return self

    def transform(self, x: Any, groups: Any) -> np.ndarray:
        """The repaired copy of ``x`` (float64, N x D); ``groups`` may hold any of the fitted groups
        (one group alone is fine), and unrepaired columns are copied unchanged."""
        if not hasattr(self, "quantiles_"):
            raise NotFittedError(ERR_NOT_FITTED.format(name=type(self).__name__))
        group = group_labels(groups)
        features = feature_matrix(x, "x", len(group))
        if features.shape[1] != self.n_features_in_:
            raise InputError(ERR_WIDTH.format(name="x", got=features.shape[1], expected=self.n_features_in_))
        unseen = np.setdiff1d(group, np.asarray(self.groups_))
        if len(unseen):
            raise InputError(ERR_UNSEEN_GROUP.format(group=str(unseen[0]), known=", ".join(self.groups_)))
        codes = np.searchsorted(np.asarray(self.groups_), group)
        out = features.copy()
        if self.repair_level == 0.0:
            return out
        for c in self.columns_:
            fitted = self.quantiles_[c]
            values = features[:, c]
            q = np.empty(len(values))
            for g, sorted_values in enumerate(fitted):
                rows = codes == g
                if rows.any():
                    below = np.searchsorted(sorted_values, values[rows], side="left")
                    upto = np.searchsorted(sorted_values, values[rows], side="right")
                    q[rows] = (below + upto) / (2.0 * len(sorted_values))
            target = np.median(np.stack([np.quantile(s, q, method="hazen") for s in fitted]), axis=0)
            out[:, c] = (1.0 - self.repair_level) * values + self.repair_level * target
        return out

    def fit_transform(self, x: Any, groups: Any) -> np.ndarray:
        """:meth:`fit` then :meth:`transform` on the same data."""
        return self.fit(x, groups).transform(x, groups)
