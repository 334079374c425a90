"""Pre-processing mitigations against cases computed by hand: reweighing and massaging (Kamiran &
Calders 2012), geometric repair (Feldman et al. 2015), and sample weights in fit_tabular_model."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fairness_helpers import toy_dataset
from trustlab.core.exceptions import InputError, NotFittedError
from trustlab.fairness.preprocess import DisparateImpactRemover, MassagingResult, massage, reweighing_weights
from trustlab.models.tabular import fit_tabular_model, positive_probability, tabular_arrays


def _two_groups(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Labels whose positive rate depends on the group (about 0.7 for "P", 0.3 for "U")."""
    rng = np.random.default_rng(seed)
    groups = np.where(rng.random(n) < 0.4, "P", "U")
    y = (rng.random(n) < np.where(groups == "P", 0.7, 0.3)).astype(np.int64)
    return y, groups


# ------------------------------------------------------------------------ reweighing -------
def test_reweighing_by_hand():
    # n = 8; A: y 1 1 1 0, B: y 1 0 0 0; n_A = n_B = 4, n_pos = n_neg = 4
    # w(g, y) = n_g n_y / (n n_gy): A,1: 4*4/(8*3) = 2/3; A,0: 16/8 = 2; B,1: 2; B,0: 2/3
    groups = np.array(["A"] * 4 + ["B"] * 4)
    y = np.array([1, 1, 1, 0, 1, 0, 0, 0])
    w = reweighing_weights(y, groups)
    assert w.dtype == np.float64
    np.testing.assert_allclose(w, [2 / 3, 2 / 3, 2 / 3, 2, 2, 2 / 3, 2 / 3, 2 / 3])
    assert w.sum() == pytest.approx(8)
    # the weighted positive rate is 1/2 in both groups: (3 * 2/3) / (3 * 2/3 + 2) = 2 / 4
    for g in "AB":
        rows = groups == g
        assert (w[rows] * y[rows]).sum() / w[rows].sum() == pytest.approx(0.5)


def test_reweighing_by_hand_unequal_groups():
    # n = 6; A (2 rows): y 1 1; B (4 rows): y 1 0 0 0; n_pos = 3, n_neg = 3
    # A,1: 2*3/(6*2) = 1/2; B,1: 4*3/(6*1) = 2; B,0: 4*3/(6*3) = 2/3 (A has no negative: no such cell)
    w = reweighing_weights([1, 1, 1, 0, 0, 0], ["A", "A", "B", "B", "B", "B"])
    np.testing.assert_allclose(w, [0.5, 0.5, 2, 2 / 3, 2 / 3, 2 / 3])


def test_reweighing_equals_aif360_formula_with_two_groups():
    # AIF360's Reweighing with unit base weights, written out from its four counts:
    # w_priv_fav = n_fav n_priv / (n n_priv_fav), and likewise for the three other cells
    y, groups = _two_groups(200, seed=3)
    n = len(y)
    priv, fav = groups == "P", y == 1
    expected = np.empty(n)
    for g_mask in (priv, ~priv):
        for y_mask in (fav, ~fav):
            cell = g_mask & y_mask
            expected[cell] = y_mask.sum() * g_mask.sum() / (n * cell.sum())
    np.testing.assert_allclose(reweighing_weights(y, groups), expected, rtol=1e-12)


def test_reweighing_makes_group_and_label_independent_with_three_groups():
    rng = np.random.default_rng(1)
    groups = rng.choice(np.array(["a", "b", "c"]), 300, p=[0.5, 0.3, 0.2])
    y = (rng.random(300) < np.select([groups == "a", groups == "b"], [0.7, 0.4], 0.2)).astype(int)
    w = reweighing_weights(y, groups)
    assert w.sum() == pytest.approx(300)
    for g in "abc":
        rows = groups == g
        # weighted P(g, y=1) = P(g) P(y=1), and each group's weight total is its own size
        assert (w[rows] * y[rows]).sum() / 300 == pytest.approx(rows.mean() * y.mean())
        assert w[rows].sum() == pytest.approx(rows.sum())


def test_reweighing_accepts_integer_groups_and_tensors():
    y = torch.tensor([1, 0, 1, 1])
    w = reweighing_weights(y, np.array([0, 0, 1, 1]))
    # group 0: y 1 0; group 1: y 1 1; n_pos = 3; 0,1: 2*3/(4*1) = 1.5; 0,0: 2*1/(4*1) = 0.5; 1,1: 2*3/(4*2) = 0.75
    np.testing.assert_allclose(w, [1.5, 0.5, 0.75, 0.75])


def test_reweighing_bad_input():
    with pytest.raises(InputError, match="^y has 3 entries but there are 4 examples$"):
        reweighing_weights([1, 0, 1], ["a", "a", "b", "b"])
    with pytest.raises(InputError, match="single group"):
        reweighing_weights([1, 0, 1], ["a", "a", "a"])
    with pytest.raises(InputError, match=r"^y must be binary \(0 and 1 only\), got the values 0, 2$"):
        reweighing_weights([0, 2, 0, 2], ["a", "a", "b", "b"])


# ------------------------------------------------------------------------ massaging --------
# rows 0-3: group P, y 1 1 1 0 (positive rate 3/4); rows 4-9: group U, y 1 0 0 0 0 0 (1/6)
MASS_GROUPS = np.array(["P"] * 4 + ["U"] * 6)
MASS_Y = np.array([1, 1, 1, 0, 1, 0, 0, 0, 0, 0])
MASS_SCORES = np.array([0.9, 0.2, 0.6, 0.1, 0.7, 0.3, 0.8, 0.1, 0.5, 0.6])


def test_massaging_by_hand():
    # M* = (3/4 - 1/6) * 4 * 6 / 10 = (3*6 - 1*4) / 10 = 1.4 -> 1
    # promotion candidates (U, y = 0): rows 5 (0.3), 6 (0.8), 7 (0.1), 8 (0.5), 9 (0.6) -> highest: row 6
    # demotion candidates (P, y = 1): rows 0 (0.9), 1 (0.2), 2 (0.6) -> lowest: row 1
    result = massage(MASS_Y, MASS_GROUPS, MASS_SCORES)
    assert isinstance(result, MassagingResult)
    assert result.changes == 1 and result.privileged == "P"
    assert result.promoted.tolist() == [6] and result.demoted.tolist() == [1]
    assert result.labels.tolist() == [1, 0, 1, 0, 1, 0, 1, 0, 0, 0]
    assert result.labels.dtype == np.int64
    assert MASS_Y.tolist() == [1, 1, 1, 0, 1, 0, 0, 0, 0, 0]  # the input is not modified


def test_massaging_rounds_to_nearest_and_half_up():
    # P: y 1 1 1 1 0 (4/5), U: y 1 0 0 0 0 (1/5): M* = (4*5 - 1*5) / 10 = 1.5 -> 2 (half up)
    # promotion (U, y = 0) rows 6 (0.8), 7 (0.1), 8 (0.5), 9 (0.6) -> 6, 9; demotion rows 0 (0.9), 1 (0.2), 2 (0.6),
    # 3 (0.4) -> 1, 3
    groups = np.array(["P"] * 5 + ["U"] * 5)
    y = np.array([1, 1, 1, 1, 0, 1, 0, 0, 0, 0])
    scores = np.array([0.9, 0.2, 0.6, 0.4, 0.3, 0.7, 0.8, 0.1, 0.5, 0.6])
    result = massage(y, groups, scores)
    assert result.changes == 2
    assert result.promoted.tolist() == [6, 9] and result.demoted.tolist() == [1, 3]
    # P: y 1 1 1 1 0 1 0 0 0 0 0 0 (5/12), U: 1 0 0 0 0 0 0 0 (1/8): M* = (5*8 - 1*12) / 20 = 1.4 -> 1
    groups = np.array(["P"] * 12 + ["U"] * 8)
    y = np.array([1, 1, 1, 1, 0, 1, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0])
    assert massage(y, groups, np.linspace(0, 1, 20)).changes == 1
    # P: y 1 1 1 1 1 (5/5), U: y 0 0 0 0 0 0 (0/6): M* = (5*6 - 0) / 11 = 2.73 -> 3
    groups = np.array(["P"] * 5 + ["U"] * 6)
    y = np.array([1] * 5 + [0] * 6)
    assert massage(y, groups, np.arange(11.0)).changes == 3


@pytest.mark.parametrize("seed", range(5))
def test_massaging_leaves_the_smallest_possible_gap(seed):
    y, groups = _two_groups(157, seed)
    scores = np.random.default_rng(seed).random(157)
    result = massage(y, groups, scores)
    priv = groups == "P"
    n_p, n_u = priv.sum(), (~priv).sum()

    def gap(m: int) -> float:
        return (y[priv].sum() - m) / n_p - (y[~priv].sum() + m) / n_u

    m = result.changes
    assert gap(0) > 0 and m > 0
    assert abs(gap(m)) <= min(abs(gap(m - 1)), abs(gap(m + 1))) + 1e-12
    new = result.labels
    assert new.sum() == y.sum()  # as many promotions as demotions
    assert new[priv].mean() - new[~priv].mean() == pytest.approx(gap(m))
    # only the listed rows changed, in the stated directions, chosen by rank
    changed = np.flatnonzero(new != y)
    assert sorted(changed.tolist()) == sorted(result.promoted.tolist() + result.demoted.tolist())
    assert (y[result.promoted] == 0).all() and (~priv[result.promoted]).all()
    assert (y[result.demoted] == 1).all() and priv[result.demoted].all()
    candidates = ~priv & (y == 0)
    assert scores[result.promoted].min() >= scores[candidates & (new == 0)].max()
    candidates = priv & (y == 1)
    assert scores[result.demoted].max() <= scores[candidates & (new == 1)].min()


def test_massaging_without_discrimination_changes_nothing():
    # the privileged group given is the one with the lower positive rate: no discrimination to remove
    result = massage(MASS_Y, MASS_GROUPS, MASS_SCORES, privileged="U")
    assert result.changes == 0 and result.privileged == "U"
    assert result.promoted.size == 0 and result.demoted.size == 0
    np.testing.assert_array_equal(result.labels, MASS_Y)
    # equal rates: M = 0
    result = massage([1, 0, 1, 0], ["a", "a", "b", "b"], [0.1, 0.2, 0.3, 0.4])
    assert result.changes == 0


def test_massaging_merges_the_other_groups_and_reads_integer_groups():
    # group 2 (rows 0-3, y 1 1 1 0) is privileged by rate; groups 0 and 1 form the unprivileged side
    # (rows 4-9, y 1 0 0 0 0 0): the same numbers as test_massaging_by_hand
    groups = np.array([2, 2, 2, 2, 0, 0, 0, 1, 1, 1])
    result = massage(MASS_Y, groups, MASS_SCORES)
    assert result.privileged == "2" and result.changes == 1
    assert result.promoted.tolist() == [6] and result.demoted.tolist() == [1]
    assert massage(MASS_Y, groups, MASS_SCORES, privileged=2).changes == 1


def test_massaging_breaks_score_ties_by_row_order():
    # P: y 1 1 0 (2/3) rows 0-2, U: y 0 0 0 (0) rows 3-5; M* = (2*3 - 0) / 6 = 1; all scores equal
    result = massage([1, 1, 0, 0, 0, 0], ["P", "P", "P", "U", "U", "U"], np.full(6, 0.5))
    assert result.promoted.tolist() == [3] and result.demoted.tolist() == [0]


def test_massaging_bad_input():
    with pytest.raises(InputError, match=r"^scores must hold one score per example \(10\), got shape \(9,\)$"):
        massage(MASS_Y, MASS_GROUPS, MASS_SCORES[:9])
    with pytest.raises(InputError, match="^scores contains 1 NaN or infinite values$"):
        massage(MASS_Y, MASS_GROUPS, np.r_[MASS_SCORES[:9], np.nan])
    with pytest.raises(InputError, match="^privileged group 'X' is not one of the groups: P, U$"):
        massage(MASS_Y, MASS_GROUPS, MASS_SCORES, privileged="X")
    with pytest.raises(InputError, match="^y has 9 entries"):
        massage(MASS_Y[:9], MASS_GROUPS, MASS_SCORES)
    with pytest.raises(InputError, match="single group"):
        massage(MASS_Y, np.full(10, "P"), MASS_SCORES)
    with pytest.raises(InputError, match="y must be binary"):
        massage(MASS_Y * 3, MASS_GROUPS, MASS_SCORES)


# ------------------------------------------------------------ disparate impact remover -------
def test_repair_by_hand_equal_sizes():
    # A: 1 2 3, B: 10 20 30; mid-rank quantiles 1/6, 1/2, 5/6 in both groups;
    # target = median (mean of two) of the groups' values at each quantile: 5.5, 11, 16.5
    x = np.array([[1.0], [2], [3], [10], [20], [30]])
    groups = ["A", "A", "A", "B", "B", "B"]
    full = DisparateImpactRemover(1.0).fit_transform(x, groups)
    np.testing.assert_allclose(full[:, 0], [5.5, 11, 16.5, 5.5, 11, 16.5])
    # halfway: 0.5 x + 0.5 target
    half = DisparateImpactRemover(0.5).fit_transform(x, groups)
    np.testing.assert_allclose(half[:, 0], [3.25, 6.5, 9.75, 7.75, 15.5, 23.25])


def test_repair_by_hand_unequal_sizes():
    # A: 0 4 (quantiles 1/4, 3/4), B: 1 2 3 (quantiles 1/6, 1/2, 5/6). A quantile function at q
    # interpolates the sorted values at position n q - 1/2 (clamped to the ends):
    # q = 1/4: A pos 0 -> 0, B pos 0.25 -> 1.25, median 0.625; q = 3/4: A pos 1 -> 4, B pos 1.75 -> 2.75 -> 3.375
    # q = 1/6: A pos -1/6 -> 0, B pos 0 -> 1 -> 0.5; q = 1/2: A pos 0.5 -> 2, B -> 2 -> 2;
    # q = 5/6: A pos 7/6 -> 4, B pos 2 -> 3 -> 3.5
    x = np.array([[0.0], [4], [1], [2], [3]])
    groups = ["A", "A", "B", "B", "B"]
    out = DisparateImpactRemover().fit_transform(x, groups)
    np.testing.assert_allclose(out[:, 0], [0.625, 3.375, 0.5, 2.0, 3.5])


def test_repair_uses_the_median_of_three_groups_and_mid_ranks_for_ties():
    # one value per quantile 1/2 in each group: A 0, B 5, C 100 -> median 5 for everyone
    out = DisparateImpactRemover().fit_transform(np.array([[0.0], [5], [100]]), ["A", "B", "C"])
    np.testing.assert_allclose(out[:, 0], [5, 5, 5])
    # ties: A 1 1 1 3 gives both 1s the quantile (0 + 3/2) / 4 = 3/8 -> one repaired value for the tie
    x = np.array([[1.0], [1], [1], [3], [0], [1], [2], [3], [4], [5]])
    out = DisparateImpactRemover().fit_transform(x, ["A"] * 4 + ["B"] * 6)
    assert out[0, 0] == out[1, 0] == out[2, 0] < out[3, 0]


def _shifted(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Two columns whose distributions differ by group (shift and scale), groups of unequal size."""
    rng = np.random.default_rng(seed)
    groups = np.where(rng.random(n) < 0.3, "P", "U")
    priv = groups == "P"
    x = np.c_[rng.normal(size=n) + 2.0 * priv, rng.exponential(size=n) * np.where(priv, 3.0, 1.0)]
    return x, groups


def test_full_repair_makes_group_distributions_alike():
    x, groups = _shifted(2000, seed=0)
    priv = groups == "P"
    out = DisparateImpactRemover(1.0).fit_transform(x, groups)
    levels = np.linspace(0.05, 0.95, 19)
    for c in range(2):
        before = np.abs(np.quantile(x[priv, c], levels) - np.quantile(x[~priv, c], levels)).max()
        after = np.abs(np.quantile(out[priv, c], levels) - np.quantile(out[~priv, c], levels)).max()
        assert before > 1.0 and after < 0.02 * before
        assert abs(np.median(out[priv, c]) - np.median(out[~priv, c])) < 0.01


def test_repair_level_zero_changes_nothing_and_ranks_are_kept():
    x, groups = _shifted(500, seed=1)
    np.testing.assert_array_equal(DisparateImpactRemover(0.0).fit_transform(x, groups), x)
    for level, strict in ((0.7, True), (1.0, False)):
        out = DisparateImpactRemover(level).fit_transform(x, groups)
        for g in ("P", "U"):
            rows = groups == g
            for c in range(2):
                order = np.argsort(x[rows, c])
                steps = np.diff(out[rows, c][order])
                assert (steps > 0).all() if strict else (steps >= 0).all()
        # partial repair is the convex combination of the original and the full repair
        if level == 0.7:
            full = DisparateImpactRemover(1.0).fit_transform(x, groups)
            np.testing.assert_allclose(out, 0.3 * x + 0.7 * full)


def test_repair_skips_constant_and_two_valued_columns_unless_named():
    x, groups = _shifted(300, seed=2)
    indicator = (groups == "P").astype(float) * (np.arange(300) % 2)  # a 0/1 column that differs by group
    data = np.c_[x[:, 0], np.full(300, 7.0), indicator]
    remover = DisparateImpactRemover().fit(data, groups)
    assert remover.columns_ == (0,)
    out = remover.transform(data, groups)
    np.testing.assert_array_equal(out[:, 1:], data[:, 1:])
    assert not np.allclose(out[:, 0], data[:, 0])
    # named, the indicator is repaired (into fractions) and the constant column stays 7
    named = DisparateImpactRemover(columns=[1, -1]).fit(data, groups)
    assert named.columns_ == (1, 2)
    out = named.transform(data, groups)
    np.testing.assert_array_equal(out[:, [0, 1]], data[:, [0, 1]])
    assert not np.array_equal(out[:, 2], indicator)


def test_repair_transforms_new_data_one_group_at_a_time():
    x, groups = _shifted(400, seed=3)
    remover = DisparateImpactRemover().fit(x, groups)
    together = remover.transform(x, groups)
    only_u = groups == "U"
    np.testing.assert_array_equal(remover.transform(x[only_u], groups[only_u]), together[only_u])
    # a value beyond a group's fitted range gets the target of that group's extreme quantile
    far = remover.transform(np.array([[1e6, 1e6], [-1e6, -1e6]]), ["U", "U"])
    np.testing.assert_allclose(far[0], together[only_u].max(0))
    np.testing.assert_allclose(far[1], together[only_u].min(0))
    out = remover.transform(torch.from_numpy(x[:5]).float(), groups[:5])
    assert out.shape == (5, 2) and out.dtype == np.float64


def test_repair_bad_input():
    x, groups = _shifted(50, seed=4)
    for level in (1.5, -0.1, "1", True, float("nan")):
        with pytest.raises(InputError, match="^repair_level must be a number in"):
            DisparateImpactRemover(level)
    with pytest.raises(NotFittedError, match="DisparateImpactRemover is not fitted"):
        DisparateImpactRemover().transform(x, groups)
    with pytest.raises(InputError, match=r"^x has 49 entries but there are 50 examples$"):
        DisparateImpactRemover().fit(x[:49], groups)
    with pytest.raises(InputError, match="single group"):
        DisparateImpactRemover().fit(x, np.full(50, "U"))
    with pytest.raises(InputError, match="^x must be a finite 2-D array"):
        DisparateImpactRemover().fit(x[:, 0], groups)
    with pytest.raises(InputError, match="^x contains 1 NaN"):
        DisparateImpactRemover().fit(np.r_[x[:49], [[np.nan, 0]]], groups)
    with pytest.raises(InputError, match="^columns must be column indices in 0..1"):
        DisparateImpactRemover(columns=[2]).fit(x, groups)
    remover = DisparateImpactRemover().fit(x, groups)
    with pytest.raises(InputError, match="^x has 3 columns but fit saw 2$"):
        remover.transform(np.c_[x, x[:, 0]], groups)
    with pytest.raises(InputError, match="^groups contains 'Z', which fit did not see; fitted groups: P, U$"):
        remover.transform(x[:2], ["U", "Z"])


# ------------------------------------------------------------- sample weights in fitting -----
def test_sample_weight_changes_the_fit():
    train = toy_dataset(300, seed=0)
    x, y = tabular_arrays(train)
    plain = fit_tabular_model(train, kind="logistic")
    ones = fit_tabular_model(train, kind="logistic", sample_weight=np.ones(len(y)))
    np.testing.assert_allclose(positive_probability(ones, x), positive_probability(plain, x), atol=1e-8)
    # weighing the positives 5x raises every predicted probability of the positive class
    heavy = fit_tabular_model(train, kind="logistic", sample_weight=np.where(y == 1, 5.0, 1.0))
    assert (positive_probability(heavy, x) > positive_probability(plain, x)).all()
    sex = train.protected["sex"].codes.numpy()
    weighted = fit_tabular_model(train, kind="gradient_boosting", sample_weight=reweighing_weights(y, sex))
    unweighted = fit_tabular_model(train, kind="gradient_boosting")
    assert not np.allclose(positive_probability(weighted, x), positive_probability(unweighted, x))


def test_sample_weight_bad_input():
    train = toy_dataset(60, seed=1)
    with pytest.raises(InputError, match=r"^sample_weight must be 60 finite weights >= 0 .*got shape \(59,\)$"):
        fit_tabular_model(train, kind="logistic", sample_weight=np.ones(59))
    with pytest.raises(InputError, match="^sample_weight must be 60 finite weights >= 0 .*got values from -1 to 1$"):
        fit_tabular_model(train, kind="logistic", sample_weight=np.r_[np.ones(59), -1.0])
