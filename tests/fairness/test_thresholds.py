"""Group thresholds (post-processing): hand-computed cases for both constraints, the constraint met
on a larger synthetic set, the equalised-odds optimum against a linear programme over
independently computed ROC hulls, determinism, and the one-line errors."""

from __future__ import annotations

import numpy as np
import pytest

from trustlab.core.exceptions import InputError
from trustlab.fairness.thresholds import GroupThresholds


def _synthetic(n: int = 20_000, seed: int = 0):
    """Group "a" (60%) with base rate 0.45 and well-separated scores, group "b" with base rate 0.25
    and noisier, lower scores: thresholding at 0.5 is unfair by both definitions."""
    rng = np.random.default_rng(seed)
    groups = np.where(rng.random(n) < 0.6, "a", "b")
    a = groups == "a"
    y = (rng.random(n) < np.where(a, 0.45, 0.25)).astype(int)
    logit = np.where(a, 2.0, 1.2) * (2 * y - 1) + np.where(a, 0.0, -0.6) + rng.normal(0, 1.0, n)
    return y, 1 / (1 + np.exp(-logit)), groups


def _rates(y, decision, groups, label):
    m = groups == label
    return decision[m].mean(), decision[m & (y == 1)].mean(), decision[m & (y == 0)].mean()


# ------------------------------------------------------------------ demographic parity ----------
def test_demographic_parity_by_hand_with_a_tie():
    # a: scores 0.9 (y=1), 0.5 (y=1), 0.5 (y=0), 0.1 (y=0); b: 0.8 (y=1), 0.3 (y=0).
    # Expected correct decisions at a common rate r (k_a = 4r, k_b = 2r selected):
    #   a: 3 for every r in [0.25, 0.75] (the tie holds one positive and one negative), less outside;
    #   b: 1 + 2r for r <= 0.5, 3 - 2r above, so the best rate is r = 0.5 with 3 + 2 = 5 of 6 correct.
    # At r = 0.5, a selects 0.9 and half of the tie at 0.5 (each tied example with probability 1/2),
    # b selects 0.8: b's threshold is 0.8, a's band runs from 0.5 up to the next score, 0.9.
    groups = np.array(["a"] * 4 + ["b"] * 2)
    score = np.array([0.9, 0.5, 0.5, 0.1, 0.8, 0.3])
    y = np.array([1, 1, 0, 0, 1, 0])
    model = GroupThresholds(constraint="demographic_parity").fit(y, score, groups)
    assert model.rate_ == 0.5 and model.accuracy_ == pytest.approx(5 / 6)
    assert list(model.groups_) == ["a", "b"]
    np.testing.assert_array_equal(model.thresholds_, [0.5, 0.8])
    np.testing.assert_array_equal(model.upper_thresholds_, [0.9, 0.8])
    np.testing.assert_array_equal(model.band_probabilities_, [0.5, 0.0])
    np.testing.assert_array_equal(model.random_shares_, [0.0, 0.0])
    decision = model.predict(score, groups)
    assert decision.dtype == np.int64
    np.testing.assert_array_equal(decision[[0, 3, 4, 5]], [1, 0, 1, 0])
    # the tie is selected about half of the time, deterministically given the seed
    many = np.full(20_000, 0.5)
    picked = model.predict(many, np.full(20_000, "a"))
    assert abs(picked.mean() - 0.5) < 0.02
    np.testing.assert_array_equal(picked, model.predict(many, np.full(20_000, "a")))
    other = GroupThresholds(seed=1).fit(y, score, groups).predict(many, np.full(20_000, "a"))
    assert (other != picked).any()


def test_demographic_parity_without_ties_is_a_plain_threshold():
    # a: 0.9, 0.7 positive, 0.4, 0.2 negative; b: 0.8 positive, 0.3 negative. At r = 0.5 every
    # decision is right (accuracy 1), at any other rate some are wrong: thresholds 0.7 and 0.8.
    groups = np.array(["a"] * 4 + ["b"] * 2)
    score = np.array([0.9, 0.7, 0.4, 0.2, 0.8, 0.3])
    y = np.array([1, 1, 0, 0, 1, 0])
    model = GroupThresholds(grid=4).fit(y, score, groups)
    assert model.rate_ == 0.5 and model.accuracy_ == 1.0
    np.testing.assert_array_equal(model.thresholds_, [0.7, 0.8])
    np.testing.assert_array_equal(model.upper_thresholds_, model.thresholds_)
    np.testing.assert_array_equal(model.predict(score, groups), y)


def test_demographic_parity_equalises_selection_rates_at_the_best_rate():
    y, score, groups = _synthetic()
    before = [_rates(y, (score >= 0.5).astype(int), groups, g)[0] for g in "ab"]
    assert abs(before[0] - before[1]) > 0.15
    model = GroupThresholds(constraint="demographic_parity").fit(y, score, groups)
    decision = model.predict(score, groups)
    rate_a, rate_b = (_rates(y, decision, groups, g)[0] for g in "ab")
    assert abs(rate_a - rate_b) < 0.02 and abs(rate_a - model.rate_) < 0.01
    assert abs((decision == y).mean() - model.accuracy_) < 0.01
    # reference: the expected accuracy of every rate on a coarser grid, one rate at a time
    best = 0.0
    for r in np.linspace(0, 1, 101):
        correct = 0.0
        for g in "ab":
            ordered = y[groups == g][np.argsort(-score[groups == g])]
            k = r * len(ordered)
            whole = int(np.floor(k))
            tp = ordered[:whole].sum() + (k - whole) * (ordered[whole] if whole < len(ordered) else 0)
            correct += tp + (len(ordered) - ordered.sum()) - (k - tp)
        best = max(best, correct / len(y))
    assert model.accuracy_ >= best - 1e-12
    assert model.accuracy_ - best < 0.005  # the finer grid gains little


# ------------------------------------------------------------------ equalised odds ------------------
def test_equalized_odds_by_hand():
    # a: 0.9 (y=1), 0.3, 0.2 (y=0): separable, ROC hull (0, 1) -> (1, 1).
    # b: positives 0.9, 0.8, 0.6, 0.3, negatives 0.7, 0.5, 0.2, 0.1: ROC points (0, .25), (0, .5),
    # (.25, .5), (.25, .75), (.5, .75), (.5, 1), (.75, 1), (1, 1); upper hull (0, .5) -> (.5, 1) -> (1, 1).
    # The common point maximises 5 TPR - 6 FPR under TPR <= U_b(FPR) = 0.5 + FPR: slope 5 - 6 < 0, so
    # FPR = 0, TPR = 0.5 (accuracy (5 * 0.5 + 6) / 11). b reaches it with its threshold 0.8; a's hull
    # is above it at (0, 1) (threshold 0.9), so half of a's examples are decided at random at rate 0.
    groups = np.array(["a"] * 3 + ["b"] * 8)
    score = np.array([0.9, 0.3, 0.2, 0.9, 0.8, 0.6, 0.3, 0.7, 0.5, 0.2, 0.1])
    y = np.array([1, 0, 0, 1, 1, 1, 1, 0, 0, 0, 0])
    model = GroupThresholds(constraint="equalized_odds").fit(y, score, groups)
    assert (model.fpr_, model.tpr_) == (0.0, 0.5)
    assert model.accuracy_ == pytest.approx(8.5 / 11)
    np.testing.assert_array_equal(model.thresholds_, [0.9, 0.8])
    np.testing.assert_array_equal(model.upper_thresholds_, [0.9, 0.8])
    np.testing.assert_array_equal(model.random_shares_, [0.5, 0.0])
    assert model.random_rate_ == 0.0
    np.testing.assert_allclose(model.hulls_[1], [[0, 0.5, 0.8], [0.5, 1, 0.3], [1, 1, 0.1]])
    decision = model.predict(score, groups)
    np.testing.assert_array_equal(decision[3:], [1, 1, 0, 0, 0, 0, 0, 0])
    assert decision[1] == decision[2] == 0


def test_equalized_odds_mixes_two_thresholds_on_a_hull_edge():
    # a: positives 0.9, 0.8, 0.7, negative 0.1 (separable); b: positives 0.8, 0.6, negatives 0.7, 0.2,
    # upper hull (0, .5) -> (.5, 1) -> (1, 1). 5 TPR - 3 FPR is best at b's vertex (.5, 1): b uses
    # threshold 0.6; a reaches (.5, 1) half-way along its edge (0, 1) [threshold 0.7] -> (1, 1)
    # [threshold 0.1]: its negative, at 0.1, is selected with probability 1/2.
    groups = np.array(["a"] * 4 + ["b"] * 4)
    score = np.array([0.9, 0.8, 0.7, 0.1, 0.8, 0.6, 0.7, 0.2])
    y = np.array([1, 1, 1, 0, 1, 1, 0, 0])
    model = GroupThresholds(constraint="equalized_odds").fit(y, score, groups)
    assert (model.fpr_, model.tpr_) == (0.5, 1.0)
    np.testing.assert_array_equal(model.thresholds_, [0.1, 0.6])
    np.testing.assert_array_equal(model.upper_thresholds_, [0.7, 0.6])
    np.testing.assert_array_equal(model.band_probabilities_, [0.5, 0.0])
    np.testing.assert_array_equal(model.random_shares_, [0.0, 0.0])
    repeated = np.tile(score, 5000), np.tile(groups, 5000)
    decision = model.predict(*repeated).reshape(5000, 8)
    np.testing.assert_array_equal(decision[:, [0, 1, 2, 4, 5, 6]], 1)
    assert (decision[:, 7] == 0).all() and abs(decision[:, 3].mean() - 0.5) < 0.03


def test_equalized_odds_equalises_error_rates():
    y, score, groups = _synthetic()
    model = GroupThresholds(constraint="equalized_odds", seed=3).fit(y, score, groups)
    decision = model.predict(score, groups)
    (_, tpr_a, fpr_a), (_, tpr_b, fpr_b) = (_rates(y, decision, groups, g) for g in "ab")
    assert abs(tpr_a - tpr_b) < 0.03 and abs(fpr_a - fpr_b) < 0.03
    assert abs(tpr_a - model.tpr_) < 0.02 and abs(fpr_b - model.fpr_) < 0.02
    assert abs((decision == y).mean() - model.accuracy_) < 0.01
    assert model.random_shares_.max() > 0  # the better-separated group "a" is held back
    np.testing.assert_array_equal(decision, model.predict(score, groups))


def test_equalized_odds_optimum_matches_a_linear_programme():
    """The best shared (FPR, TPR) inside every group's ROC hull, from sklearn's ROC points, scipy's
    convex hulls and scipy's LP solver, has the same accuracy as the fitted point."""
    from scipy.optimize import linprog
    from scipy.spatial import ConvexHull
    from sklearn.metrics import roc_curve

    rng = np.random.default_rng(7)
    y, score, groups = _synthetic(3000, seed=1)
    groups = np.where(rng.random(len(y)) < 0.3, "c", groups)  # a third group
    model = GroupThresholds(constraint="equalized_odds").fit(y, score, groups)
    rows, bounds = [], []
    for g in ("a", "b", "c"):
        m = groups == g
        fpr, tpr, _ = roc_curve(y[m], score[m], drop_intermediate=False)
        hull = ConvexHull(np.column_stack([fpr, tpr]))
        rows.append(hull.equations[:, :2])
        bounds.append(-hull.equations[:, 2])
    n_pos, n_neg = y.sum(), len(y) - y.sum()
    lp = linprog([n_neg, -n_pos], A_ub=np.vstack(rows), b_ub=np.concatenate(bounds), bounds=[(0, 1), (0, 1)])
    assert lp.status == 0
    reference = (n_pos * lp.x[1] + n_neg * (1 - lp.x[0])) / len(y)
    assert model.accuracy_ == pytest.approx(reference, abs=1e-9)
    for normals, offsets in zip(rows, bounds):  # the fitted point lies in every hull
        assert (normals @ [model.fpr_, model.tpr_] <= offsets + 1e-9).all()
    decision = model.predict(score, groups)
    tprs = [decision[(groups == g) & (y == 1)].mean() for g in "abc"]
    fprs = [decision[(groups == g) & (y == 0)].mean() for g in "abc"]
    assert max(tprs) - min(tprs) < 0.06 and max(fprs) - min(fprs) < 0.06


# --------------------------------------------------------------------------- errors ---------------
@pytest.mark.parametrize("constraint", ["demographic_parity", "equalized_odds"])
def test_predict_is_deterministic_given_the_seed(constraint):
    y, score, groups = _synthetic(4000)
    first = GroupThresholds(constraint=constraint, seed=11).fit(y, score, groups)
    second = GroupThresholds(constraint=constraint, seed=11).fit(y, score, groups)
    np.testing.assert_array_equal(first.predict(score, groups), second.predict(score, groups))
    np.testing.assert_array_equal(first.thresholds_, second.thresholds_)


def test_errors_name_the_parameter():
    groups = np.array(["a", "a", "b", "b"])
    score = np.array([0.2, 0.8, 0.3, 0.7])
    y = np.array([0, 1, 0, 1])
    with pytest.raises(InputError, match="constraint must be one of demographic_parity, equalized_odds"):
        GroupThresholds(constraint="parity")
    with pytest.raises(InputError, match="grid"):
        GroupThresholds(grid=0)
    with pytest.raises(InputError, match="y_true must be binary"):
        GroupThresholds().fit(np.array([0, 1, 2, 1]), score, groups)
    with pytest.raises(InputError, match="y_score has 3 entries but there are 4 examples"):
        GroupThresholds().fit(y, score[:3], groups)
    with pytest.raises(InputError, match="y_true has 3 entries"):
        GroupThresholds().fit(y[:3], score, groups)
    for bad in ([0.2, 1.5, 0.3, 0.7], [0.2, np.nan, 0.3, 0.7], [-0.1, 0.8, 0.3, 0.7]):
        with pytest.raises(InputError, match="y_score must hold probabilities"):
            GroupThresholds().fit(y, np.array(bad), groups)
    with pytest.raises(InputError, match="single group"):
        GroupThresholds().fit(y, score, np.array(["a"] * 4))
    with pytest.raises(InputError, match="y_true has no positive examples in group 'b'"):
        GroupThresholds(constraint="equalized_odds").fit(np.array([0, 1, 0, 0]), score, groups)
    with pytest.raises(InputError, match="not fitted"):
        GroupThresholds().predict(score, groups)
    model = GroupThresholds().fit(y, score, groups)
    with pytest.raises(InputError, match=r"groups holds 'c' not seen in fit; fitted groups: a, b"):
        model.predict(score, np.array(["a", "c", "b", "b"]))
    with pytest.raises(InputError, match="groups has 3 entries but there are 4 examples"):
        model.predict(score, groups[:3])
    with pytest.raises(InputError, match="y_score must hold probabilities"):
        model.predict(np.array([0.2, 2.0, 0.3, 0.7]), groups)


def test_a_parity_ratio_lets_rates_differ_by_at_most_that_ratio():
    # a: 0.9 (y=1), 0.8 (y=1), 0.2 (y=0), 0.1 (y=0); b: 0.9 (y=1), 0.6 (y=0), 0.4 (y=0), 0.3 (y=0), 0.2 (y=0).
    # Alone, a would select 2 of 4 (rate 0.5) and b 1 of 5 (0.2), all correct. Equal rates cost
    # accuracy; with ratio 0.4 the rates 0.5 and 0.2 (0.2 / 0.5 = 0.4) are allowed and all 9 are right.
    groups = np.array(["a"] * 4 + ["b"] * 5)
    score = np.array([0.9, 0.8, 0.2, 0.1, 0.9, 0.6, 0.4, 0.3, 0.2])
    y = np.array([1, 1, 0, 0, 1, 0, 0, 0, 0])
    loose = GroupThresholds(ratio=0.4, grid=100).fit(y, score, groups)
    np.testing.assert_allclose(loose.rates_, [0.5, 0.2])
    assert loose.accuracy_ == pytest.approx(1.0)
    np.testing.assert_array_equal(loose.predict(score, groups), y)
    strict = GroupThresholds(ratio=1.0, grid=100).fit(y, score, groups)
    assert strict.rates_[0] == strict.rates_[1] and strict.accuracy_ < 1.0


def test_the_four_fifths_ratio_holds_on_the_fit_data_and_costs_less_than_parity():
    rng = np.random.default_rng(3)
    n = 20_000
    groups = np.where(rng.random(n) < 0.4, "u", "p")
    y = (rng.random(n) < np.where(groups == "u", 0.15, 0.35)).astype(int)
    score = np.clip(0.5 * y + rng.normal(0.25, 0.2, n), 0, 1)
    four_fifths = GroupThresholds(ratio=0.8).fit(y, score, groups)
    decisions = four_fifths.predict(score, groups)
    rates = [decisions[groups == g].mean() for g in ("p", "u")]
    assert min(rates) / max(rates) >= 0.8 - 0.01
    assert four_fifths.rates_.min() / four_fifths.rates_.max() >= 0.8 - 1e-9
    assert four_fifths.accuracy_ >= GroupThresholds(ratio=1.0).fit(y, score, groups).accuracy_
    with pytest.raises(InputError, match="ratio must be a number in"):
        GroupThresholds(ratio=1.5)


def test_demographic_parity_mixes_thresholds_on_the_hull_where_the_top_scores_are_negatives():
    # a: 0.9 (y=0), 0.8 (y=1), 0.7 (y=1), 0.1 (y=0): (selected, positives) = (0,0) (1,0) (2,1) (3,2) (4,2);
    #    the upper hull goes straight from (0,0) to (3,2), so selecting one example on average is best
    #    done by selecting each of the top three with probability 1/3 (2/3 expected positives, not 0).
    # b: 0.9 (y=1), 0.8 (y=1), then six negatives: its best rate is 0.25 (2 of 8, all correct).
    # At rate 0.25: a expects 2/3 + 2 - 1/3 = 7/3 correct, b 8: (7/3 + 8) / 12 = 31/36; rate 0.5
    # gives 8/3 + 6 and rate 0.75 gives 3 + 4, both less. The top-score rule would get (1 + 8) / 12 at 0.25.
    groups = np.array(["a"] * 4 + ["b"] * 8)
    score = np.array([0.9, 0.8, 0.7, 0.1, 0.9, 0.8, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1])
    y = np.array([0, 1, 1, 0, 1, 1, 0, 0, 0, 0, 0, 0])
    model = GroupThresholds(grid=4).fit(y, score, groups)
    assert model.rate_ == 0.25 and model.accuracy_ == pytest.approx(31 / 36)
    np.testing.assert_allclose(model.thresholds_, [0.7, 0.8])
    np.testing.assert_allclose(model.upper_thresholds_, [np.inf, 0.8])
    np.testing.assert_allclose(model.band_probabilities_, [1 / 3, 0.0])
