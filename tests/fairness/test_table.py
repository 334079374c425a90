"""The fairness table: intervals, privileged groups, intersections, the three kinds of model, the
run directory, and the report section showing the result's own numbers."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from fairness_helpers import toy_dataset as _dataset
from trustlab.core import format as fmt
from trustlab.core.exceptions import InputError
from trustlab.core.results import Result
from trustlab.core.stats import percentile_interval
from trustlab.fairness import FairnessResult, fairness_table, protected_groups, resample_indices, run_fairness
from trustlab.fairness.metrics import PAIR_METRICS, check_inputs


def _synthetic(n: int, seed: int = 0):
    """Group "a" (60%) selected at about 40%, group "b" at about 25%; scores calibrated by construction."""
    rng = np.random.default_rng(seed)
    groups = np.where(rng.random(n) < 0.6, "a", "b")
    score = np.where(groups == "a", rng.beta(2, 3, n), rng.beta(1.5, 4, n))
    y_true = (rng.random(n) < score).astype(int)
    return y_true, (score >= 0.5).astype(int), score, groups


def _estimates(result: FairnessResult):
    for row in result.groups:
        yield from (row.selection_rate, row.tpr, row.fpr, row.ece)
    for row in result.pairs:
        yield from (row.metric(m) for m in PAIR_METRICS)
    yield result.accuracy


def test_intervals_contain_the_point_estimate_and_shrink_with_n():
    small = fairness_table(*_synthetic(300), resamples=400, seed=0)
    large = fairness_table(*_synthetic(20_000), resamples=400, seed=0)
    for result in (small, large):
        for est in _estimates(result):
            assert est.low <= est.value <= est.high, est
    for attr in ("selection_rate", "tpr", "fpr", "ece"):
        widths = [getattr(r.groups[0], attr).high - getattr(r.groups[0], attr).low for r in (small, large)]
        assert widths[1] < widths[0] / 3, (attr, widths)  # sqrt(20000 / 300) ~ 8
    di = [r.pairs[0].disparate_impact for r in (small, large)]
    assert di[1].high - di[1].low < (di[0].high - di[0].low) / 3


def test_intervals_are_the_percentiles_of_the_seeded_resamples():
    y_true, y_pred, score, groups = _synthetic(500)
    result = fairness_table(y_true, y_pred, score, groups, resamples=200, seed=5)
    draws = check_inputs(y_true, y_pred, score, groups).tally(index=resample_indices(500, 200, seed=5)).statistics(0)
    low, high = percentile_interval(draws["selection_rate"])
    assert (result.groups[1].selection_rate.low, result.groups[1].selection_rate.high) == (low[1], high[1])
    again = fairness_table(y_true, y_pred, score, groups, resamples=200, seed=5)
    assert again.groups == result.groups and again.pairs == result.pairs


def test_privileged_group_is_the_largest_selection_rate_or_the_users():
    y_true, y_pred, score, groups = _synthetic(2000)
    auto = fairness_table(y_true, y_pred, score, groups, resamples=50)
    assert auto.privileged == "a" and auto.privileged_rule == "largest selection rate"
    assert [p.group for p in auto.pairs] == ["b"] and auto.pairs[0].disparate_impact.value < 1
    chosen = fairness_table(y_true, y_pred, score, groups, privileged="b", resamples=50)
    assert chosen.privileged == "b" and chosen.privileged_rule == "chosen"
    ratio = chosen.pairs[0].disparate_impact.value
    assert ratio > 1 and chosen.four_fifths_ratio.value == pytest.approx(1 / ratio)  # folded to at most 1
    assert chosen.four_fifths_ratio.value == pytest.approx(auto.four_fifths_ratio.value)
    spd = auto.pairs[0].statistical_parity_difference
    assert auto.discrimination.value == pytest.approx(-spd.value)
    assert auto.discrimination.low == pytest.approx(-spd.high)
    with pytest.raises(InputError, match="privileged group 'c' is not one of the groups: a, b"):
        fairness_table(y_true, y_pred, score, groups, privileged="c", resamples=10)


def test_small_groups_are_warned_about_and_not_made_privileged():
    y_true, y_pred, score, groups = _synthetic(1000)
    # five rows of a tiny group, all selected: the largest rate, but below the minimum size
    groups = np.concatenate([groups, ["tiny"] * 5])
    y_true, y_pred, score = (np.concatenate([a, [1] * 5]) for a in (y_true, y_pred, score))
    result = fairness_table(y_true, y_pred, score, groups, resamples=100, min_group_size=30)
    assert result.privileged == "a"
    tiny = next(r for r in result.groups if r.group == "tiny")
    assert tiny.small and tiny.size == 5
    assert any("'tiny' has 5 examples (fewer than 30)" in w for w in result.warnings)
    # with three groups: one row per unprivileged group, and the worst is reported
    assert [p.group for p in result.pairs] == ["b", "tiny"]
    # the worst is the farthest from parity either way: tiny is selected at 100%, about 70 points above a
    worst = result.worst("statistical_parity_difference")
    assert worst.group == "tiny" and worst.statistical_parity_difference.value > 0.5
    # by disparate impact too: a ratio of about 1 / 0.30 = 3.4 is farther from 1 (in log terms) than b's
    # 0.14 / 0.30 = 0.46; the scorecard's figure folds it to the lower rate over the higher, about 0.30
    assert result.worst("disparate_impact").group == "tiny"
    rate_a = next(r for r in result.groups if r.group == "a").selection_rate.value
    assert result.four_fifths_ratio.value == pytest.approx(rate_a)


def test_intersectional_groups_join_the_categories():
    data = _dataset()
    labels = protected_groups(data, ["sex", "race"])
    sex, race = data.protected["sex"].codes.numpy(), data.protected["race"].codes.numpy()
    assert labels[0] == f"{('Female', 'Male')[sex[0]]} & {('Black', 'Other', 'White')[race[0]]}"
    assert (labels == "Female & Black").sum() == ((sex == 0) & (race == 0)).sum()
    y_pred = (data.x[:, 0] > 0).long().numpy()
    result = fairness_table(data.y.numpy(), y_pred, None, labels, attributes=("sex", "race"), resamples=100)
    assert len(result.groups) == 6 and len(result.pairs) == 5 and result.group_label == "sex x race"
    row = next(r for r in result.groups if r.group == "Female & Black")
    mask = (sex == 0) & (race == 0)
    assert row.size == mask.sum() and row.selection_rate.value == pytest.approx(y_pred[mask].mean())
    assert row.ece is None  # predictions only: no calibration
    with pytest.raises(InputError, match="protected attribute 'age' is not in data set 'toy'; it has: race, sex"):
        protected_groups(data, ["sex", "age"])


def test_predictions_a_classifier_and_a_scikit_learn_model_agree(tmp_path):
    from sklearn.linear_model import LogisticRegression

    from trustlab.models.classifier import Classifier
    from trustlab.report.run import RunDirectory

    data = _dataset()
    torch.manual_seed(0)
    classifier = Classifier(nn.Linear(3, 2), input_shape=(3,), num_classes=2, bounds=None)
    run = RunDirectory(tmp_path / "run")
    via_model = run_fairness(run, classifier, data, protected=["sex"], resamples=100, consistency=False)
    proba = classifier.proba(data.x)[:, 1].double().numpy()
    via_scores = run_fairness(run, proba, data, protected="sex", resamples=100, consistency=False)
    via_decisions = run_fairness(run, (proba >= 0.5).astype(int), data, protected="sex", resamples=100)
    assert via_model.groups == via_scores.groups
    assert [g.selection_rate for g in via_decisions.groups] == [g.selection_rate for g in via_model.groups]
    assert via_decisions.threshold is None and via_decisions.consistency is not None
    estimator = LogisticRegression().fit(data.x.numpy(), data.y.numpy())
    via_sklearn = run_fairness(run, estimator, data, protected=["sex", "race"], resamples=100)
    assert via_sklearn.model == "LogisticRegression()" and len(via_sklearn.groups) == 6
    assert set(run.results) == {"fairness-toy-sex", "fairness-toy-sex-race"}
    stored = RunDirectory(tmp_path / "run").results["fairness-toy-sex-race"]
    assert stored == via_sklearn and Result.from_json(via_sklearn.to_json()) == via_sklearn
    three = Classifier(nn.Linear(3, 3), input_shape=(3,), num_classes=3, bounds=None)
    with pytest.raises(InputError, match="need a binary classifier"):
        run_fairness(run, three, data, protected=["sex"])


def test_the_section_and_scores_show_the_results_numbers():
    from trustlab.capabilities import load_views
    from trustlab.core.views import summary_lines, view_for

    load_views()
    data = _dataset(1000)
    y_pred = (data.x[:, 0] > 0.3).long().numpy() | data.protected["sex"].codes.numpy()
    score = np.clip(0.5 * y_pred + 0.25 + 0.1 * data.x[:, 1].numpy(), 0, 1)
    groups = protected_groups(data, ["sex"])
    result = fairness_table(
        data.y.numpy(), y_pred, score, groups, dataset="toy/test", attributes=("sex",), resamples=100
    )
    view = view_for("fairness")
    section = view.section("fairness-toy-sex", result)
    (groups_table, pairs_table) = section.tables
    for cells, row in zip(groups_table.rows, result.groups):
        assert cells[:3] == [row.group, f"{row.size:,}", f"{row.positives:,}"]
        assert cells[3] == f"{fmt.pct(row.selection_rate.value)} ({fmt.pct_interval(row.selection_rate.interval)})"
    assert groups_table.rows[1][-1] == "privileged"
    (cells,) = pairs_table.rows
    di = result.pairs[0].disparate_impact
    assert cells[0] == "Female" and cells[2] == f"{di.value:.3f} ({di.low:.3f} to {di.high:.3f})"
    assert section.figures and section.figures[0].png.startswith(b"\x89PNG")
    (ratio, odds) = view.scores(result)
    assert (ratio.axis, ratio.key, ratio.higher_is_better) == ("fairness", "fairness.disparate_impact", True)
    assert ratio.value == di.value and ratio.interval == di.interval and "four-fifths" in ratio.sentence
    assert odds.key == "fairness.equalized_odds_difference" and odds.value == result.equalized_odds_all_groups.value
    assert fmt.pct(result.accuracy.value) in summary_lines([result])[1]


def test_the_section_shows_roc_and_reliability_figures_only_with_scores():
    from trustlab.capabilities import load_views
    from trustlab.core.views import view_for

    load_views()
    y_true, y_pred, score, groups = _synthetic(1500)
    view = view_for("fairness")
    scored = fairness_table(y_true, y_pred, score, groups, attributes=("sex",), resamples=50)
    names = [f.name for f in view.section("fairness-x", scored).figures]
    assert names == ["fairness-x-selection", "fairness-x-roc", "fairness-x-reliability"]
    assert all(f.png.startswith(b"\x89PNG") for f in view.section("fairness-x", scored).figures)
    bare = fairness_table(y_true, y_pred, None, groups, attributes=("sex",), resamples=50)
    assert [f.name for f in view.section("fairness-x", bare).figures] == ["fairness-x-selection"]
    # the curves are part of the result and travel with it
    assert len(scored.curves) == 2 and scored.curves[0].group == scored.groups[0].group
    assert Result.from_json(scored.to_json()) == scored
