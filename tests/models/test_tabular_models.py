"""Tabular models (trustlab.models.tabular): fitting, probabilities, log-odds, quality, layering."""

from __future__ import annotations

import numpy as np
import pytest

from tabular_helpers import synthetic_tabular
from trustlab.core.exceptions import InputError
from trustlab.data.dataset import Dataset
from trustlab.data.registry import load_dataset
from trustlab.models.tabular import (
    MODEL_KINDS,
    fit_tabular_model,
    is_tree_model,
    log_odds,
    model_description,
    model_quality,
    positive_probability,
)


def _synthetic(labels: np.ndarray | None = None) -> Dataset:
    return synthetic_tabular(200, 3, decisive=0, noise=0.5, labels=labels)


class _ProbabilityOnly:
    """A 'model' without decision_function: P(yes) = sigmoid(3 * x0), so its log-odds are 3 * x0."""

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        p = 1 / (1 + np.exp(-3 * np.asarray(x)[:, 0]))
        return np.column_stack([1 - p, p])


@pytest.fixture(scope="module")
def pima(reference_data):
    return load_dataset("pima", "train", root=reference_data), load_dataset("pima", "test", root=reference_data)


def test_gradient_boosting_is_scikit_learns_with_the_documented_settings():
    from sklearn.ensemble import GradientBoostingClassifier

    train = _synthetic()
    x, y = train.x.double().numpy(), train.y.numpy()
    model = fit_tabular_model(train, kind="gradient_boosting", seed=3)
    reference = GradientBoostingClassifier(n_estimators=100, max_depth=3, learning_rate=0.1, random_state=3).fit(x, y)
    assert is_tree_model(model)
    np.testing.assert_array_equal(model.predict_proba(x), reference.predict_proba(x))
    assert model_description(model) == "GradientBoostingClassifier(n_estimators=100, max_depth=3, learning_rate=0.1)"


def test_logistic_model_standardises_and_its_log_odds_are_the_logit_of_its_probability():
    train = _synthetic()
    x = train.x.double().numpy()
    model = fit_tabular_model(train, kind="logistic")
    assert not is_tree_model(model)
    assert model_description(model) == "StandardScaler + LogisticRegression"
    p = positive_probability(model, x)
    assert p.shape == (len(train),) and ((p > 0) & (p < 1)).all()
    np.testing.assert_allclose(log_odds(model, x), np.log(p / (1 - p)), atol=1e-8)
    scaler, logistic = model[0], model[-1]
    by_hand = ((x - scaler.mean_) / scaler.scale_) @ logistic.coef_[0] + logistic.intercept_[0]
    np.testing.assert_allclose(log_odds(model, x), by_hand, atol=1e-10)


def test_log_odds_without_decision_function_is_the_logit_of_the_probability():
    x = np.array([[-1.0, 5.0], [0.0, 0.0], [2.0, -3.0]])
    np.testing.assert_allclose(log_odds(_ProbabilityOnly(), x), 3 * x[:, 0], atol=1e-10)


def test_model_quality_is_accuracy_and_roc_auc_by_hand(pima):
    train, test = pima
    model = fit_tabular_model(train, kind="gradient_boosting", seed=0)
    accuracy, auc = model_quality(model, test)
    p = model.predict_proba(test.x.double().numpy())[:, 1]
    y = test.y.numpy()
    assert accuracy == pytest.approx(((p >= 0.5) == y).mean(), abs=1e-12)
    # ROC AUC = P(score of a positive > score of a negative), ties counting one half
    pos, neg = p[y == 1][:, None], p[y == 0][None, :]
    assert auc == pytest.approx(((pos > neg) + 0.5 * (pos == neg)).mean(), abs=1e-12)
    assert 0.6 < accuracy < 0.9 and 0.7 < auc < 0.95


def test_errors():
    train = _synthetic()
    with pytest.raises(InputError, match="unknown model kind 'forest'; expected one of: gradient_boosting, logistic"):
        fit_tabular_model(train, kind="forest")
    assert MODEL_KINDS == ("gradient_boosting", "logistic")
    one_class = _synthetic(labels=np.zeros(200, dtype=np.int64))
    with pytest.raises(InputError, match=r"train must contain examples of both classes \(labels 0 and 1\)"):
        fit_tabular_model(one_class)
    with pytest.raises(InputError, match=r"train must be a tabular Dataset \(features N x F\), got ndarray"):
        fit_tabular_model(np.zeros((4, 3)))
    with pytest.raises(InputError, match="test has no examples"):
        model_quality(_ProbabilityOnly(), train.subset([]))
