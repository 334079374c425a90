"""Learned fair representations (Zemel et al. 2013): the model's formulas on hand-set parameters,
the loss against an independent numpy computation, and the fit's effect on a toy set whose label
depends on the group."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from trustlab.core.exceptions import InputError, NotFittedError
from trustlab.fairness.lfr import LearnedFairRepresentation

pytestmark = pytest.mark.usefixtures("one_thread")
FIT_ITERATIONS = 300  # enough for the toy set (the default 5000 is for real data)


def _toy(n: int = 300, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Three features (two shifted by group) and a label that depends on the group: positive rates
    about 0.75 for "M" and 0.2 for "F"."""
    rng = np.random.default_rng(seed)
    s = rng.integers(0, 2, n)
    x = np.c_[rng.normal(size=n) + s, rng.normal(size=n), rng.normal(size=n) + 0.5 * s]
    y = ((x[:, 1] + 1.5 * s + 0.5 * rng.normal(size=n)) > 0.75).astype(np.int64)
    return x, y, np.where(s == 1, "M", "F")


@pytest.fixture(scope="module")
def fitted() -> tuple[LearnedFairRepresentation, np.ndarray, np.ndarray, np.ndarray]:
    x, y, groups = _toy()
    return LearnedFairRepresentation(max_iter=FIT_ITERATIONS, seed=0).fit(x, y, groups), x, y, groups


def _spd(values: np.ndarray, groups: np.ndarray) -> float:
    return float(values[groups == "F"].mean() - values[groups == "M"].mean())


def test_formulas_on_hand_set_parameters():
    # prototypes v1 = (0, 0), v2 = (1, 0); w = (0.2, 0.6)
    # unprivileged weights (1, 1): x = (0, 0) has distances 0 and 1 -> M = (1, e^-1) / (1 + e^-1)
    # privileged weights (2, 5): x = (0, 0) has distances 0 and 2 -> M = (1, e^-2) / (1 + e^-2)
    model = LearnedFairRepresentation()
    model.prototypes_ = np.array([[0.0, 0.0], [1.0, 0.0]])
    model.alpha_ = np.array([[1.0, 1.0], [2.0, 5.0]])
    model.w_ = np.array([0.2, 0.6])
    model.privileged_ = "P"
    model.n_features_in_ = 2
    x = np.zeros((2, 2))
    groups = ["U", "P"]
    a, b = 1 / (1 + math.exp(-1)), 1 / (1 + math.exp(-2))
    np.testing.assert_allclose(model.memberships(x, groups), [[a, 1 - a], [b, 1 - b]])
    # x_hat = M V: only the first coordinate of v2 is non-zero
    np.testing.assert_allclose(model.transform(x, groups), [[1 - a, 0], [1 - b, 0]])
    # y_hat = M w
    np.testing.assert_allclose(model.predict_proba(x, groups), [0.2 * a + 0.6 * (1 - a), 0.2 * b + 0.6 * (1 - b)])
    assert model.predict(x, groups).tolist() == [0, 0]


def test_fit_reduces_statistical_parity_and_keeps_accuracy(fitted):
    model, x, y, groups = fitted
    raw = _spd(y.astype(float), groups)
    assert raw < -0.4  # the labels favour "M" strongly
    p = model.predict_proba(x, groups)
    hard = model.predict(x, groups)
    assert abs(_spd(p, groups)) < 0.02  # the mean of y_hat is (almost) the same in both groups
    assert abs(_spd(hard.astype(float), groups)) < abs(raw) / 4
    majority = max(y.mean(), 1 - y.mean())
    assert (hard == y).mean() > majority + 0.05  # and the prediction still carries the label
    # the representation itself hides the group better than the features: a group's mean
    # reconstruction moves closer to the other's
    out = model.transform(x, groups)
    gap = np.abs(x[groups == "M"].mean(0) - x[groups == "F"].mean(0))
    assert np.abs(out[groups == "M"].mean(0) - out[groups == "F"].mean(0))[0] < gap[0] / 2


def test_loss_decreases_and_matches_the_paper_formula(fitted):
    model, x, y, groups = fitted
    assert model.loss_ < model.loss_history_[0] / 5
    assert len(model.loss_history_) > 10 and 0 < model.n_iter_ <= FIT_ITERATIONS
    # recompute each term with numpy from the fitted model's outputs
    m = model.memberships(x, groups)
    lz = np.abs(m[groups == "M"].mean(0) - m[groups == "F"].mean(0)).sum()
    lx = ((model.transform(x, groups) - x) ** 2).mean()
    p = model.predict_proba(x, groups)
    ly = -(y * np.log(p) + (1 - y) * np.log(1 - p)).mean()
    assert model.loss_terms_ == pytest.approx({"Lz": lz, "Lx": lx, "Ly": ly}, rel=1e-9, abs=1e-12)
    assert model.loss_ == pytest.approx(50 * lz + 0.01 * lx + ly)


def test_fitted_shapes_and_defaults(fitted):
    model, x, y, groups = fitted
    assert model.prototypes_.shape == (5, 3) and model.alpha_.shape == (2, 3) and model.w_.shape == (5,)
    assert (model.alpha_ > 0).all() and ((model.w_ > 0) & (model.w_ < 1)).all()
    assert model.privileged_ == "M"  # the larger positive rate
    m = model.memberships(x[:7], groups[:7])
    assert m.shape == (7, 5)
    np.testing.assert_allclose(m.sum(1), 1)
    assert model.transform(x[:7], groups[:7]).shape == (7, 3)
    assert model.predict_proba(x[:7], groups[:7]).shape == (7,)
    # one group alone (or an unseen label, counted as unprivileged) is fine at transform time
    assert model.transform(x[:3], ["M", "M", "M"]).shape == (3, 3)
    np.testing.assert_allclose(model.transform(x[:3], ["F", "F", "F"]), model.transform(x[:3], ["X", "Y", "Z"]))
    defaults = LearnedFairRepresentation()
    assert (defaults.prototypes, defaults.ax, defaults.ay, defaults.az, defaults.max_iter, defaults.seed) == (
        5,
        0.01,
        1.0,
        50.0,
        5000,
        0,
    )


def test_same_seed_same_numbers_and_other_seed_other_numbers():
    x, y, groups = _toy(120, seed=1)
    first = LearnedFairRepresentation(max_iter=40, seed=3, privileged="F").fit(x, y, groups)
    again = LearnedFairRepresentation(max_iter=40, seed=3, privileged="F").fit_transform(x, y, groups)
    other = LearnedFairRepresentation(max_iter=40, seed=4, privileged="F").fit(x, y, groups)
    assert first.privileged_ == "F"
    np.testing.assert_array_equal(first.transform(x, groups), again)
    assert not np.allclose(first.prototypes_, other.prototypes_)
    # tensors are accepted as well
    from_tensors = LearnedFairRepresentation(max_iter=40, seed=3, privileged="F").fit(
        torch.from_numpy(x), torch.from_numpy(y), groups
    )
    np.testing.assert_array_equal(from_tensors.prototypes_, first.prototypes_)


def test_bad_input():
    x, y, groups = _toy(30)
    with pytest.raises(InputError, match="^prototypes must be a positive integer, got 0$"):
        LearnedFairRepresentation(prototypes=0)
    with pytest.raises(InputError, match="^az must be a finite number >= 0, got -1$"):
        LearnedFairRepresentation(az=-1)
    with pytest.raises(InputError, match="^max_iter must be a positive integer"):
        LearnedFairRepresentation(max_iter=2.5)
    with pytest.raises(NotFittedError, match="LearnedFairRepresentation is not fitted"):
        LearnedFairRepresentation().transform(x, groups)
    model = LearnedFairRepresentation(max_iter=2)
    with pytest.raises(InputError, match="^x has 29 entries but there are 30 examples$"):
        model.fit(x[:29], y, groups)
    with pytest.raises(InputError, match="^y must be binary"):
        model.fit(x, y + 1, groups)
    with pytest.raises(InputError, match="single group"):
        model.fit(x, y, np.full(30, "F"))
    with pytest.raises(InputError, match="^privileged group 'Q' is not one of the groups: F, M$"):
        LearnedFairRepresentation(privileged="Q").fit(x, y, groups)
    model.fit(x, y, groups)
    with pytest.raises(InputError, match="^x has 2 columns but fit saw 3$"):
        model.transform(x[:, :2], groups)
    with pytest.raises(InputError, match="^x has 30 entries but there are 2 examples$"):
        model.predict_proba(x, groups[:2])
