"""Tabular explanations (LIME, SHAP, correlations) on Pima and on hand-made cases."""

from __future__ import annotations

import itertools
import math
import sys

import numpy as np
import pytest

from tabular_helpers import synthetic_tabular
from trustlab.core.exceptions import InputError
from trustlab.core.results import Result
from trustlab.data.dataset import Dataset
from trustlab.data.registry import load_dataset
from trustlab.explain.tabular import (
    TabularExplanationResult,
    background_sample,
    feature_correlations,
    lime_explanations,
    rank_agreement,
    shap_explanations,
    tabular_explanations,
)
from trustlab.models.tabular import fit_tabular_model, log_odds


@pytest.fixture(scope="module")
def pima(reference_data):
    return load_dataset("pima", "train", root=reference_data), load_dataset("pima", "test", root=reference_data)


@pytest.fixture(scope="module")
def boosted(pima):
    return fit_tabular_model(pima[0], kind="gradient_boosting", seed=0)


@pytest.fixture(scope="module")
def result(pima) -> TabularExplanationResult:
    return tabular_explanations(pima[0], pima[1], n_rows=3, background=50, lime_samples=1000, seed=0)


def _synthetic() -> Dataset:
    return synthetic_tabular(300, 4, decisive=2)


class _OnlyFeatureTwo:
    """A 'model' whose probability depends on feature 2 alone."""

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        p = 1 / (1 + np.exp(-3 * np.asarray(x)[:, 2]))
        return np.column_stack([1 - p, p])


def _brute_force_shapley(f, x: np.ndarray, background: np.ndarray) -> np.ndarray:
    """Interventional Shapley values by enumerating every coalition (the reference)."""
    features = len(x)
    cache: dict[tuple[int, ...], float] = {}

    def value(subset: tuple[int, ...]) -> float:
        if subset not in cache:
            z = background.copy()
            z[:, list(subset)] = x[list(subset)]
            cache[subset] = float(f(z).mean())
        return cache[subset]

    phi = np.zeros(features)
    for j in range(features):
        others = [k for k in range(features) if k != j]
        for size in range(features):
            weight = math.factorial(size) * math.factorial(features - size - 1) / math.factorial(features)
            for subset in itertools.combinations(others, size):
                phi[j] += weight * (value(tuple(sorted(subset + (j,)))) - value(subset))
    return phi


def test_correlations_are_pearson_with_the_outcome_last(pima):
    train = pima[0]
    names, matrix = feature_correlations(train)
    assert names[-1] == "outcome" and names[:-1] == train.feature_names
    assert matrix.shape == (9, 9)
    np.testing.assert_allclose(matrix, matrix.T, atol=1e-12)
    np.testing.assert_allclose(np.diag(matrix), 1.0, atol=1e-12)
    x, y = train.x.double().numpy(), train.y.double().numpy()
    glucose = x[:, 1] - x[:, 1].mean()
    outcome = y - y.mean()
    by_hand = (glucose * outcome).sum() / np.sqrt((glucose**2).sum() * (outcome**2).sum())
    assert matrix[1, -1] == pytest.approx(by_hand, abs=1e-12)
    np.testing.assert_allclose(matrix[:-1, :-1], np.corrcoef(x, rowvar=False), atol=1e-12)


def test_tree_shap_adds_up_to_the_log_odds_and_matches_brute_force(pima, boosted):
    train, test = pima
    x = test.x.double().numpy()
    explained = shap_explanations(boosted, train, x, background=50, seed=0)
    assert explained.explainer == "shap.TreeExplainer" and explained.values.shape == (len(test), 8)
    raw = boosted.decision_function(x)
    # every test row, including Pima's BMI 29.2 that sits on a float32-rounded threshold
    np.testing.assert_allclose(explained.expected_value + explained.values.sum(1), raw, atol=1e-5)
    background = background_sample(train, 50, seed=0)
    assert explained.expected_value == pytest.approx(boosted.decision_function(background).mean(), abs=1e-6)
    worst = int(np.argmax(np.abs(explained.values).sum(1)))
    reference = _brute_force_shapley(boosted.decision_function, x[worst], background)
    np.testing.assert_allclose(explained.values[worst], reference, atol=1e-5)


def test_kernel_shap_on_the_logistic_model_is_exact(pima):
    train, test = pima
    model = fit_tabular_model(train, kind="logistic")
    x = test.x.double().numpy()[:6]
    explained = shap_explanations(model, train, x, background=40, seed=1)
    assert explained.explainer == "shap.KernelExplainer" and explained.settings["exact"]
    np.testing.assert_allclose(explained.expected_value + explained.values.sum(1), log_odds(model, x), atol=1e-6)
    # log-odds are linear: phi_i = w_i / scale_i * (x_i - mean of the background's x_i)
    scaler, logistic = model[0], model[-1]
    background = background_sample(train, 40, seed=1)
    closed_form = logistic.coef_[0] / scaler.scale_ * (x - background.mean(axis=0))
    np.testing.assert_allclose(explained.values, closed_form, atol=1e-6)


def test_lime_is_deterministic_and_finds_the_only_feature_that_matters():
    train = _synthetic()
    rows = train.x[:4].numpy()
    model = _OnlyFeatureTwo()
    first = lime_explanations(model, train, rows, num_features=4, num_samples=1000, seed=3)
    again = lime_explanations(model, train, rows, num_features=4, num_samples=1000, seed=3)
    np.testing.assert_array_equal(first.weights, again.weights)
    alone = lime_explanations(model, train, rows[2], num_features=4, num_samples=1000, seed=3)
    np.testing.assert_array_equal(alone.weights[0], first.weights[2])  # independent of the other rows
    other = lime_explanations(model, train, rows, num_features=4, num_samples=1000, seed=4)
    assert not np.array_equal(first.weights, other.weights)
    assert first.weights.shape == (4, 4)
    assert (np.abs(first.weights).argmax(axis=1) == 2).all()
    assert (np.abs(first.weights[:, 2]) > 5 * np.abs(np.delete(first.weights, 2, axis=1)).max(axis=1)).all()
    # the sign says which way the row's quartile of feature 2 pushes P(yes)
    np.testing.assert_array_equal(np.sign(first.weights[:, 2]), np.sign(rows[:, 2]))


def test_rank_agreement():
    a = np.array([[0.5, -2.0, 1.0, 0.1], [1.0, 2.0, 3.0, 4.0]])
    same = rank_agreement(a, a)
    for key in ("spearman", "kendall", "top_k_overlap"):
        np.testing.assert_allclose(same[key], 1.0)
    flipped = rank_agreement(a[1:], -a[1:, ::-1] * 10, top_k=2)  # reversed ranks, signs and scale ignored
    assert flipped["spearman"][0] == pytest.approx(-1.0) and flipped["kendall"][0] == pytest.approx(-1.0)
    assert flipped["top_k_overlap"][0] == 0.0
    constant = rank_agreement(np.ones((1, 4)), a[:1])
    assert np.isnan(constant["spearman"][0]) and np.isnan(constant["kendall"][0])  # no ranking to compare
    with pytest.raises(InputError, match="same shape"):
        rank_agreement(a, a[:, :3])


def test_result_round_trips_through_json(result):
    assert result.kind == "tabular_explanations"
    assert len(result.rows) == 3 and len(result.shap_values) == 3 and len(result.lime_weights[0]) == 8
    assert 0.6 < result.accuracy < 0.9 and 0.7 < result.roc_auc < 0.95
    assert result.feature_names[int(np.argmax(result.global_importance))] == "Glucose"
    probabilities = np.asarray(result.row_probabilities)
    assert ((probabilities >= 0.5).sum(), (probabilities < 0.5).sum()) == (2, 1)
    assert len(result.summary_shap) == result.test_examples  # 192 <= the subsampling limit
    back = Result.from_json(result.to_json())
    assert isinstance(back, TabularExplanationResult) and back == result


def test_headline_fields_match_a_direct_computation(pima, result):
    train, _ = pima
    importance = np.asarray(result.global_importance)
    assert result.importance_order == tuple(np.argsort(-importance, kind="stable").tolist())
    # the test split (192 rows) is whole in the summary, so mean |SHAP| can be recomputed from it
    assert result.summary_rows == tuple(range(result.test_examples))
    recomputed = np.abs(np.asarray(result.summary_shap)).mean(axis=0)
    np.testing.assert_allclose(importance, recomputed, rtol=1e-12)
    assert result.importance_order == tuple(np.argsort(-recomputed, kind="stable").tolist())
    x, y = train.x.double().numpy(), train.y.double().numpy()
    by_corrcoef = np.array([np.corrcoef(x[:, j], y)[0, 1] for j in range(x.shape[1])])
    np.testing.assert_allclose(result.outcome_correlations, by_corrcoef, atol=1e-12)
    assert result.strongest_correlate == int(np.argmax(np.abs(by_corrcoef)))
    assert result.feature_names[result.strongest_correlate] == "Glucose"

    import trustlab.explain.views  # noqa: F401  (registers the section)
    from trustlab.core.views import render_sections

    (rendered,) = render_sections({"tabular": result})
    strongest = result.strongest_correlate
    assert f"<b>Glucose</b> (r = {by_corrcoef[strongest]:.2f})" in str(rendered.paragraphs[0])
    global_rows = rendered.tables[2].rows
    assert [row[1] for row in global_rows] == [result.feature_names[i] for i in np.argsort(-importance, kind="stable")]


def test_section_renders_tables_and_png_figures(result):
    import trustlab.explain.views  # noqa: F401  (registers the section)
    from trustlab.core.views import render_sections, view_for

    (rendered,) = render_sections({"tabular": result})
    assert view_for(result.kind).order == 40 and "Glucose" in str(rendered.paragraphs[0])
    assert len(rendered.tables) == 3 and len(rendered.tables[1].rows) == 3
    assert len(rendered.figures) == 4
    assert all(figure.png.startswith(b"\x89PNG") for figure in rendered.figures)


def test_errors(pima, monkeypatch):
    train, test = pima
    with pytest.raises(InputError, match=r"rows must be indices in 0\.\.191"):
        tabular_explanations(train, test, rows=[0, 500])
    with pytest.raises(InputError, match="shape N x 8"):
        shap_explanations(object(), train, np.zeros((2, 3)))
    monkeypatch.setitem(sys.modules, "shap", None)  # as if the optional extra were not installed
    with pytest.raises(InputError, match=r'pip install "trustlab\[explain\]"'):
        shap_explanations(object(), train, np.zeros((2, 8)))
