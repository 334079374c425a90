"""Every metric against a case computed by hand, and the vectorised bootstrap against a slow loop
over the same resample indices."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from trustlab.core.exceptions import InputError
from trustlab.core.stats import percentile_interval
from trustlab.fairness import (
    average_odds_difference,
    calibration_by_group,
    consistency,
    disparate_impact,
    equal_opportunity_difference,
    equalized_odds_difference,
    false_positive_rates,
    resample_indices,
    selection_rates,
    statistical_parity_difference,
    true_positive_rates,
)
from trustlab.fairness.metrics import check_inputs

# group A: 4 examples, group B: 6
GROUPS = np.array(["A"] * 4 + ["B"] * 6)
Y_TRUE = np.array([1, 1, 0, 0, 1, 1, 1, 0, 0, 0])
SCORE = np.array([0.9, 0.3, 0.7, 0.1, 0.8, 0.6, 0.9, 0.6, 0.2, 0.4])
Y_PRED = (SCORE >= 0.5).astype(int)  # A: 1 0 1 0, B: 1 1 1 1 0 0


def test_rates_per_group_by_hand():
    # selection rate: A 2/4 = 0.5, B 4/6 = 2/3
    assert selection_rates(Y_PRED, GROUPS) == pytest.approx({"A": 0.5, "B": 2 / 3})
    # TPR: A's positives (rows 0, 1) predicted 1, 0 -> 1/2; B's positives (rows 4-6) all predicted 1 -> 1
    assert true_positive_rates(Y_TRUE, Y_PRED, GROUPS) == pytest.approx({"A": 0.5, "B": 1.0})
    # FPR: A's negatives (rows 2, 3) predicted 1, 0 -> 1/2; B's negatives (rows 7-9) predicted 1, 0, 0 -> 1/3
    assert false_positive_rates(Y_TRUE, Y_PRED, GROUPS) == pytest.approx({"A": 0.5, "B": 1 / 3})


def test_pair_metrics_by_hand_with_aif360_signs():
    # privileged B: SPD = 1/2 - 2/3 = -1/6; DI = (1/2) / (2/3) = 0.75
    assert statistical_parity_difference(Y_PRED, GROUPS, "B") == pytest.approx({"A": -1 / 6})
    assert disparate_impact(Y_PRED, GROUPS, "B") == pytest.approx({"A": 0.75})
    # EOD = TPR_A - TPR_B = 1/2 - 1 = -1/2
    assert equal_opportunity_difference(Y_TRUE, Y_PRED, GROUPS, "B") == pytest.approx({"A": -0.5})
    # AOD = ((FPR_A - FPR_B) + (TPR_A - TPR_B)) / 2 = ((1/2 - 1/3) + (1/2 - 1)) / 2 = (1/6 - 1/2) / 2 = -1/6
    assert average_odds_difference(Y_TRUE, Y_PRED, GROUPS, "B") == pytest.approx({"A": -1 / 6})
    # swapping the roles flips the signs and inverts the ratio: DI = (2/3) / (1/2) = 4/3
    assert disparate_impact(Y_PRED, GROUPS, "A") == pytest.approx({"B": 4 / 3})
    assert statistical_parity_difference(Y_PRED, GROUPS, "A") == pytest.approx({"B": 1 / 6})


def test_equalized_odds_difference_is_fairlearns_worst_spread():
    # two groups: max(|1 - 1/2|, |1/3 - 1/2|) = max(1/2, 1/6) = 1/2
    assert equalized_odds_difference(Y_TRUE, Y_PRED, GROUPS) == pytest.approx(0.5)
    # a third group C with y_true (1, 0) and y_pred (0, 0): TPR 0, FPR 0
    # TPR spread 1 - 0 = 1, FPR spread 1/2 - 0 = 1/2 -> 1
    groups = np.concatenate([GROUPS, ["C", "C"]])
    y_true, y_pred = np.concatenate([Y_TRUE, [1, 0]]), np.concatenate([Y_PRED, [0, 0]])
    assert equalized_odds_difference(y_true, y_pred, groups) == pytest.approx(1.0)


def test_calibration_by_group_by_hand():
    # two equal-width bins [0, 0.5) and [0.5, 1]
    # A: bin 0 holds scores 0.3 (y 1), 0.1 (y 0): |mean y 0.5 - mean s 0.2| = 0.3, weight 2/4 -> 0.15
    #    bin 1 holds 0.9 (y 1), 0.7 (y 0): |0.5 - 0.8| = 0.3, weight 2/4 -> 0.15; ECE_A = 0.3
    # B: bin 1 holds 0.8, 0.6, 0.9, 0.6 (y 1, 1, 1, 0): |0.75 - 0.725| = 0.025, weight 4/6 -> 1/60
    #    bin 0 holds 0.2, 0.4 (y 0, 0): |0 - 0.3| = 0.3, weight 2/6 -> 0.1; ECE_B = 0.1 + 1/60
    assert calibration_by_group(Y_TRUE, SCORE, GROUPS, bins=2) == pytest.approx({"A": 0.3, "B": 0.1 + 1 / 60})


def test_consistency_by_hand_with_and_without_self():
    x = np.array([[0.0], [1.0], [3.0], [10.0], [11.0], [13.0]])
    y_pred = np.array([1, 1, 0, 0, 0, 1])
    # k = 2, self excluded: neighbours 0:{1,3} 1:{0,3} 3:{1,0} 10:{11,13} 11:{10,13} 13:{11,10}
    # |y - mean of neighbours|: .5, .5, |0 - 1| = 1, .5, .5, |1 - 0| = 1 -> mean 4/6 -> 1 - 4/6 = 1/3
    assert consistency(x, y_pred, k=2) == pytest.approx(1 / 3)
    # AIF360's way, the point itself among its k = 2: 0:{0,1} 1:{1,0} 3:{3,1} 10:{10,11} 11:{11,10} 13:{13,11}
    # terms 0, 0, .5, 0, 0, .5 -> mean 1/6 -> 5/6
    assert consistency(x, y_pred, k=2, include_self=True) == pytest.approx(5 / 6)
    # torch inputs work the same
    assert consistency(torch.from_numpy(x), torch.from_numpy(y_pred), k=2) == pytest.approx(1 / 3)


def test_bad_inputs_are_one_line_errors():
    with pytest.raises(InputError, match="y_pred must be binary"):
        selection_rates(np.array([0, 1, 2, 1]), np.array(["a", "a", "b", "b"]))
    with pytest.raises(InputError, match="single group"):
        selection_rates(np.array([0, 1, 1, 1]), np.array(["a"] * 4))
    with pytest.raises(InputError, match="privileged group 'C' is not one of the groups: A, B"):
        disparate_impact(Y_PRED, GROUPS, "C")
    with pytest.raises(InputError, match="y_true has 3 entries but there are 10"):
        true_positive_rates(Y_TRUE[:3], Y_PRED, GROUPS)
    with pytest.raises(InputError, match=r"y_score must be probabilities"):
        calibration_by_group(Y_TRUE, SCORE * 2, GROUPS)


def _slow_statistics(y_true, y_pred, score, codes, groups, privileged, bins):
    """Reference: per group, plain boolean masks; no tally, no vectorisation over resamples."""
    rate, tpr, fpr, ece = (np.full(groups, np.nan) for _ in range(4))
    for g in range(groups):
        m = codes == g
        if not m.any():
            continue
        rate[g] = y_pred[m].mean()
        if (m & (y_true == 1)).any():
            tpr[g] = y_pred[m & (y_true == 1)].mean()
        if (m & (y_true == 0)).any():
            fpr[g] = y_pred[m & (y_true == 0)].mean()
        b = np.minimum((score[m] * bins).astype(int), bins - 1)
        total = 0.0
        for k in range(bins):
            inside = b == k
            if inside.any():
                total += inside.sum() / m.sum() * abs(y_true[m][inside].mean() - score[m][inside].mean())
        ece[g] = total
    p = privileged
    return {
        "selection_rate": rate,
        "tpr": tpr,
        "fpr": fpr,
        "ece": ece,
        "statistical_parity_difference": rate - rate[p],
        "disparate_impact": rate / rate[p],
        "equal_opportunity_difference": tpr - tpr[p],
        "average_odds_difference": ((fpr - fpr[p]) + (tpr - tpr[p])) / 2,
        "equalized_odds_difference": np.maximum(abs(tpr - tpr[p]), abs(fpr - fpr[p])),
        "accuracy": np.array((y_true == y_pred).mean()),
    }


def test_vectorised_bootstrap_equals_a_slow_loop_over_the_same_indices():
    rng = np.random.default_rng(1)
    n = 60
    groups = rng.choice(["x", "y", "z"], size=n, p=[0.5, 0.35, 0.15])
    y_true = rng.integers(0, 2, n)
    score = rng.random(n)
    inputs = check_inputs(y_true, (score >= 0.5).astype(int), score, groups)
    index = resample_indices(n, 40, seed=7)
    assert index.shape == (40, n)
    fast = inputs.tally(bins=5, index=index).statistics(1)
    for r, rows in enumerate(index):
        slow = _slow_statistics(
            inputs.y_true[rows], inputs.y_pred[rows], score[rows], inputs.codes[rows], 3, privileged=1, bins=5
        )
        for name, expected in slow.items():
            np.testing.assert_allclose(fast[name][r], expected, rtol=1e-12, atol=1e-12, err_msg=f"{name} {r}")


def test_resampling_is_seeded_and_percentiles_skip_undefined_resamples():
    assert np.array_equal(resample_indices(20, 5, seed=3), resample_indices(20, 5, seed=3))
    assert not np.array_equal(resample_indices(20, 5, seed=3), resample_indices(20, 5, seed=4))
    draws = np.array([[np.nan, 1.0], [0.2, 2.0], [0.4, 3.0], [np.nan, 4.0]])
    low, high = percentile_interval(draws, 0.5)
    assert low.tolist() == [0.2, 1.0] and high.tolist() == [0.4, 3.0]


def test_resampling_in_blocks_bounds_memory_and_changes_nothing(monkeypatch):
    from trustlab.fairness import metrics

    monkeypatch.setattr(metrics, "CHUNK_ROWS", 100)  # 30 examples: 3 resamples per block
    assert [b.shape for b in metrics.resample_blocks(30, 10, seed=2)] == [(3, 30)] * 3 + [(1, 30)]
    inputs = check_inputs(Y_TRUE.repeat(3), Y_PRED.repeat(3), SCORE.repeat(3), GROUPS.repeat(3))
    full = resample_indices(30, 10, seed=2)
    blocked = inputs.tally(index=metrics.resample_blocks(30, 10, seed=2))
    one_by_one = [inputs.tally(index=row[None]) for row in full]
    assert np.array_equal(blocked.counts, inputs.tally(index=full).counts)
    assert np.array_equal(blocked.counts, np.concatenate([t.counts for t in one_by_one]))
    np.testing.assert_allclose(blocked.score_sums, np.concatenate([t.score_sums for t in one_by_one]))
