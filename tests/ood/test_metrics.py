"""Detection metrics against scikit-learn and hand-computed cases."""

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score

from trustlab.core.exceptions import InputError
from trustlab.ood.metrics import (
    aupr_in,
    aupr_out,
    auroc,
    detection_metrics,
    detection_rate,
    fpr_id_rejected_at_95_ood,
    fpr_ood_accepted_at_95_id,
    roc_curve,
)


@pytest.mark.parametrize("decimals", [None, 1])  # continuous scores, and many ties
def test_auroc_and_aupr_match_scikit_learn(decimals):
    rng = np.random.default_rng(0)
    inside, outside = rng.normal(0, 1, 700), rng.normal(1.2, 1.5, 400)
    if decimals is not None:
        inside, outside = inside.round(decimals), outside.round(decimals)
    labels = np.r_[np.zeros(700), np.ones(400)]
    scores = np.r_[inside, outside]
    assert auroc(inside, outside) == pytest.approx(roc_auc_score(labels, scores), abs=1e-12)
    assert aupr_out(inside, outside) == pytest.approx(average_precision_score(labels, scores), abs=1e-12)
    assert aupr_in(inside, outside) == pytest.approx(average_precision_score(1 - labels, -scores), abs=1e-12)


def test_fpr_conventions_by_hand():
    inside = np.arange(1, 21, dtype=float)  # 20 in-distribution scores 1..20
    outside = np.array([5.0, 19.0, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32, 33, 34, 35, 36, 37, 38])
    # accept 95% of in-distribution: threshold 19 (19 of 20 <= 19); OOD accepted: 5 and 19 -> 2/20
    assert fpr_ood_accepted_at_95_id(inside, outside) == pytest.approx(0.10)
    # catch 95% of OOD (19 of 20): threshold 19 (all but 5 are >= 19); in-distribution rejected: 19, 20 -> 2/20
    assert fpr_id_rejected_at_95_ood(inside, outside) == pytest.approx(0.10)
    outside[1] = 100.0  # now 19 OOD scores >= 21
    assert fpr_id_rejected_at_95_ood(inside, outside) == 0.0
    assert fpr_ood_accepted_at_95_id(inside, outside) == pytest.approx(0.05)


def test_perfect_and_reversed_separation():
    inside, outside = np.zeros(10), np.ones(10)
    assert detection_metrics(inside, outside, threshold=0.5) == {
        "auroc": 1.0,
        "aupr_in": 1.0,
        "aupr_out": 1.0,
        "fpr_ood_accepted_at_95_id": 0.0,
        "fpr_id_rejected_at_95_ood": 0.0,
        "detection_rate": 1.0,
    }
    assert auroc(outside, inside) == 0.0
    assert detection_rate(np.array([0.1, 0.6, 0.7]), 0.6) == pytest.approx(1 / 3)


def test_roc_curve_is_monotone_and_ends_at_one():
    rng = np.random.default_rng(1)
    grid, tpr = roc_curve(rng.normal(size=300), rng.normal(1, size=300), points=51)
    assert grid[0] == 0.0 and grid[-1] == 1.0 and tpr[-1] == 1.0
    assert all(b >= a for a, b in zip(tpr, tpr[1:]))


def test_empty_or_nan_scores_are_refused():
    with pytest.raises(InputError, match="at least one"):
        auroc([], [1.0])
    with pytest.raises(InputError, match="NaN"):
        auroc([float("nan")], [1.0])
