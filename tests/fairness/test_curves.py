"""Per-group ROC and reliability curves: against scikit-learn's ROC curve and AUC on the same group,
reliability bins against a hand-computed case, thinning, absence without scores, JSON round trip,
and the two figures with and without curves."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score, roc_curve

from trustlab.core.results import Result
from trustlab.fairness import calibration_by_group, fairness_table
from trustlab.fairness.curves import curve_area, reliability_bins, roc_curve_points, thin_curve
from trustlab.fairness.figures import reliability_figure, roc_figure

PNG = b"\x89PNG\r\n\x1a\n"


def _scored(n: int, seed: int = 0, *, rounded: bool = False):
    rng = np.random.default_rng(seed)
    groups = np.where(rng.random(n) < 0.6, "a", "b")
    score = np.where(groups == "a", rng.beta(2, 3, n), rng.beta(1.5, 4, n))
    if rounded:  # few distinct scores: many ties
        score = np.round(score, 1)
    y_true = (rng.random(n) < score).astype(int)
    return y_true, (score >= 0.5).astype(int), score, groups


@pytest.mark.parametrize("rounded", [False, True])
def test_roc_points_and_auc_match_scikit_learn_per_group(rounded):
    y_true, y_pred, score, groups = _scored(300, rounded=rounded)
    result = fairness_table(y_true, y_pred, score, groups, resamples=20)
    assert [c.group for c in result.curves] == ["a", "b"]
    for curve in result.curves:
        m = groups == curve.group
        fpr, tpr, _ = roc_curve(y_true[m], score[m])  # drops the same collinear points
        np.testing.assert_allclose(curve.fpr, fpr, rtol=0, atol=1e-15)
        np.testing.assert_allclose(curve.tpr, tpr, rtol=0, atol=1e-15)
        assert curve.auc == pytest.approx(roc_auc_score(y_true[m], score[m]), abs=1e-12)


def test_large_groups_keep_at_most_roc_points_of_the_curves_own_points():
    y_true, y_pred, score, groups = _scored(20_000, seed=1)
    result = fairness_table(y_true, y_pred, score, groups, resamples=10, roc_points=200)
    for curve in result.curves:
        m = groups == curve.group
        fpr, tpr, _ = roc_curve(y_true[m], score[m], drop_intermediate=False)
        assert 150 <= len(curve.fpr) <= 200 and len(fpr) > 1000
        assert (curve.fpr[0], curve.tpr[0], curve.fpr[-1], curve.tpr[-1]) == (0.0, 0.0, 1.0, 1.0)
        full = set(zip(np.round(fpr, 12).tolist(), np.round(tpr, 12).tolist()))
        assert set(zip(np.round(curve.fpr, 12).tolist(), np.round(curve.tpr, 12).tolist())) <= full
        assert np.all(np.diff(curve.fpr) >= 0) and np.all(np.diff(curve.tpr) >= 0)
        # the AUC is the full curve's; the thinned curve's own area is close to it
        assert curve.auc == pytest.approx(roc_auc_score(y_true[m], score[m]), abs=1e-12)
        assert curve_area(np.asarray(curve.fpr), np.asarray(curve.tpr)) == pytest.approx(curve.auc, abs=0.01)


def test_thin_curve_spreads_points_along_the_curve():
    fpr, tpr = np.linspace(0, 1, 1001), np.sqrt(np.linspace(0, 1, 1001))
    thin_f, thin_t = thin_curve(fpr, tpr, 11)
    assert len(thin_f) <= 11 and thin_f[0] == 0 and thin_f[-1] == 1
    assert set(thin_f.tolist()) <= set(fpr.tolist())
    steps = np.diff(thin_f + thin_t)
    assert steps.max() < 2 * steps.min()  # about evenly spaced along FPR + TPR
    same = thin_curve(fpr[:5], tpr[:5], 11)
    assert np.array_equal(same[0], fpr[:5])


def test_roc_points_by_hand():
    # scores 0.9 (y=1), 0.8 (y=0), 0.8 (y=1), 0.3 (y=0): thresholds 0.9 -> (0, .5), 0.8 -> (.5, 1),
    # 0.3 -> (1, 1); AUC = 0.5 * 0.75 (the tie counts half) + 0.5 * 1 = 0.875
    fpr, tpr = roc_curve_points(np.array([1, 0, 1, 0]), np.array([0.9, 0.8, 0.8, 0.3]))
    np.testing.assert_array_equal(fpr, [0, 0, 0.5, 1])
    np.testing.assert_array_equal(tpr, [0, 0.5, 1, 1])
    assert curve_area(fpr, tpr) == 0.875


def test_reliability_bins_by_hand():
    # 10 bins of width 0.1: bin 0 holds 0.05 (y=0); bin 1 holds 0.12 (y=0) and 0.15 (y=1);
    # bin 9 holds 0.91 and 0.95 (both y=1), and 1.0 exactly (y=0) falls in the last bin too.
    score = np.array([0.05, 0.15, 0.12, 0.95, 0.91, 1.0])
    y = np.array([0, 1, 0, 1, 1, 0])
    which, mean, rate, count = reliability_bins(y, score, 10)
    np.testing.assert_array_equal(which, [0, 1, 9])
    np.testing.assert_allclose(mean, [0.05, 0.135, (0.95 + 0.91 + 1.0) / 3])
    np.testing.assert_allclose(rate, [0.0, 0.5, 2 / 3])
    np.testing.assert_array_equal(count, [1, 2, 3])
    # the same bins in the result, and their ECE is the table's
    groups = np.array(["a"] * 6 + ["b"] * 2)
    y2, s2 = np.r_[y, 1, 0], np.r_[score, 0.7, 0.2]
    result = fairness_table(y2, (s2 >= 0.5).astype(int), s2, groups, resamples=10)
    a = result.curves[0]
    assert a.bin == (0, 1, 9) and a.count == (1, 2, 3) and a.positive_rate == pytest.approx((0.0, 0.5, 2 / 3))
    ece = sum(c * abs(r - m) for c, r, m in zip(a.count, a.positive_rate, a.mean_score)) / sum(a.count)
    assert ece == pytest.approx(result.groups[0].ece.value)
    assert ece == pytest.approx(calibration_by_group(y2, s2, groups)["a"])
    # group b has one positive and one negative: a ROC curve from two points, AUC 1
    assert result.curves[1].auc == 1.0


def test_no_curves_without_scores_and_none_for_a_one_class_group():
    y_true, y_pred, score, groups = _scored(400)
    assert fairness_table(y_true, y_pred, None, groups, resamples=10).curves is None
    y_true = np.where(groups == "b", 0, y_true)  # b has no positives
    result = fairness_table(y_true, y_pred, score, groups, resamples=10)
    b = result.curves[1]
    assert b.group == "b" and b.auc is None and b.fpr == () and b.tpr == ()
    assert sum(b.count) == (groups == "b").sum()  # its reliability bins are still there


def test_curves_survive_the_json_round_trip():
    y_true, y_pred, score, groups = _scored(2000, rounded=True)
    result = fairness_table(y_true, y_pred, score, groups, resamples=10)
    again = Result.from_json(result.to_json())
    assert again == result and isinstance(again.curves, tuple) and again.curves[0] == result.curves[0]
    assert isinstance(again.curves[0].fpr, tuple) and isinstance(again.curves[0].count[0], int)
    bare = fairness_table(y_true, y_pred, None, groups, resamples=10)
    assert Result.from_json(bare.to_json()) == bare
    # results written before the curves existed still load, without curves
    old = result.to_dict()
    del old["curves"]
    assert Result.from_dict(old).curves is None


def test_figures_render_with_and_without_curves():
    y_true, y_pred, score, groups = _scored(1000)
    with_scores = fairness_table(y_true, y_pred, score, groups, resamples=10)
    without = fairness_table(y_true, y_pred, None, groups, resamples=10)
    for result in (with_scores, without):
        for figure in (roc_figure, reliability_figure):
            assert figure(result).startswith(PNG)
    assert roc_figure(with_scores) == roc_figure(with_scores)  # no timestamp: identical bytes
    assert roc_figure(with_scores) != roc_figure(without)
