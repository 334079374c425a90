"""Conformal thresholds on synthetic scores where the false-alarm rate is known exactly."""

import math

import pytest
import torch

from trustlab.core.exceptions import InputError
from trustlab.ood.calibration import ConformalThreshold, split_holdout


def test_threshold_is_the_conformal_order_statistic():
    scores = torch.arange(1, 20, dtype=torch.float64)[torch.randperm(19, generator=torch.Generator().manual_seed(0))]
    # n = 19, alpha = 0.1: k = ceil(20 * 0.9) = 18, so the 18th smallest score
    threshold = ConformalThreshold.fit(scores, 0.1)
    assert threshold.threshold == 18.0
    assert threshold.alarms(torch.tensor([18.0, 18.5])).tolist() == [False, True]


@pytest.mark.parametrize(("n", "alpha"), [(99, 0.1), (199, 0.05), (50, 0.2)])
def test_false_alarm_rate_matches_the_promise(n, alpha):
    """With continuous exchangeable scores, P(alarm) = (n + 1 - k) / (n + 1), k = ceil((n+1)(1-alpha)):
    exactly alpha when (n + 1) alpha is an integer. Checked over 4,000 independent calibrations."""
    g = torch.Generator().manual_seed(n)
    trials, k = 4000, math.ceil((n + 1) * (1 - alpha))
    expected = (n + 1 - k) / (n + 1)
    calibration = torch.rand(trials, n, generator=g, dtype=torch.float64)
    fresh = torch.rand(trials, 50, generator=g, dtype=torch.float64)
    rates = []
    for row, new in zip(calibration, fresh):
        rates.append(ConformalThreshold.fit(row, alpha).alarms(new).double().mean())
    realised = torch.stack(rates).mean().item()
    standard_error = math.sqrt(expected * (1 - expected) / (trials * 50)) * 3  # trials correlate within a row
    assert abs(realised - expected) < 4 * standard_error
    assert expected <= alpha + 1e-12 and expected >= alpha - 1 / (n + 1)


def test_p_values_are_uniform_and_agree_with_the_alarm():
    g = torch.Generator().manual_seed(3)
    threshold = ConformalThreshold.fit(torch.randn(999, generator=g, dtype=torch.float64), 0.05)
    fresh = torch.randn(20000, generator=g, dtype=torch.float64)
    p = threshold.p_values(fresh)
    assert torch.equal(p <= 0.05, threshold.alarms(fresh))
    assert ((p > 0) & (p <= 1)).all()
    for level in (0.1, 0.3, 0.5):
        assert abs((p <= level).double().mean().item() - level) < 0.015


def test_p_value_by_hand():
    threshold = ConformalThreshold.fit(torch.tensor([1.0, 2.0, 3.0, 4.0]), 0.4)
    # (1 + #{s_i >= s}) / 5
    assert threshold.p_values(torch.tensor([0.0, 2.0, 2.5, 9.0])).tolist() == [1.0, 0.8, 0.6, 0.2]


def test_too_few_calibration_scores_is_a_clear_error():
    with pytest.raises(InputError, match="needs at least 19 held-out in-distribution scores, got 10"):
        ConformalThreshold.fit(torch.rand(10), 0.05)
    with pytest.raises(InputError, match="alpha must lie in"):
        ConformalThreshold.fit(torch.rand(100), 1.5)
    with pytest.raises(InputError, match="NaN"):
        ConformalThreshold.fit(torch.tensor([1.0, float("nan")] * 20), 0.1)


def test_split_holdout_is_a_deterministic_partition():
    a, b = split_holdout(101, seed=4)
    assert len(a) + len(b) == 101 and len(set(a.tolist()) | set(b.tolist())) == 101
    c, _ = split_holdout(101, seed=4)
    assert torch.equal(a, c)
