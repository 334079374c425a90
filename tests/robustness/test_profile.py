import math

import numpy as np
import pytest
import torch

from trustlab.core.results import Result
from trustlab.robustness.profile import attackable_median, class_profile, robustness_result
from trustlab.robustness.search import MinimalEps


def test_class_profile_by_hand():
    eps = np.array([0.1, 0.2, 0.3, math.inf, 0.05, math.inf, math.inf, 0.4])
    labels = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    rows = class_profile(eps, labels, ("a", "b"), eps_max=0.5, samples=500)
    a, b = rows
    assert a.median == pytest.approx(0.25) and a.median_exact is True  # 1 of 4 censored: below half
    assert a.censored == 1 and a.mean == pytest.approx((0.1 + 0.2 + 0.3 + 0.5) / 4)
    assert a.mean_is_lower_bound is True
    assert math.isinf(b.median) and b.median_exact is False  # half censored: only known to exceed eps_max
    assert math.isinf(b.median_interval[1])
    low, high = a.mean_interval
    assert low <= a.mean <= high
    assert class_profile(eps, labels, ("a", "b"), eps_max=0.5, samples=500) == rows  # seeded


def test_examples_wrong_before_the_attack_are_left_out_of_every_statistic():
    eps = np.array([0.0, 0.0, 0.0, 0.2, 0.4, math.inf])  # three wrong before the attack, one censored
    (row,) = class_profile(eps, np.zeros(6, dtype=int), ("a",), eps_max=0.5, samples=200)
    assert (row.examples, row.clean_wrong, row.attackable, row.censored) == (6, 3, 3, 1)
    assert row.median == pytest.approx(0.4)  # median of 0.2, 0.4, inf; with the zeros it would be 0.1
    assert row.mean == pytest.approx((0.2 + 0.4 + 0.5) / 3)
    (empty,) = class_profile(np.array([0.0]), np.zeros(1, dtype=int), ("a",), eps_max=0.5, samples=10)
    assert empty.median is None and empty.mean is None and empty.median_interval is None


def test_headline_median_is_over_attackable_examples_with_censored_as_inf():
    # 1 wrong, 4 attackable of which 2 censored: the median of (0.1, 0.3, inf, inf) is inf
    assert math.isinf(attackable_median(np.array([0.0, 0.1, 0.3, math.inf, math.inf])))
    assert attackable_median(np.array([0.0, 0.0, 0.1, 0.3, math.inf])) == pytest.approx(0.3)
    assert math.isnan(attackable_median(np.array([0.0, 0.0])))


def test_result_round_trip_and_orderings():
    eps = torch.tensor([0.0, 0.1, 0.3, math.inf, 0.2, 0.25])
    search = MinimalEps(
        eps_star=eps,
        lower=eps.clamp(max=0.5) - 0.01,
        upper=eps.clamp(max=0.5),
        clean_wrong=eps == 0,
        censored=torch.isinf(eps),
        nonmonotonic=torch.zeros(6, dtype=torch.bool),
        labels=torch.tensor([0, 0, 0, 1, 1, 1]),
        eps_max=0.5,
        tol=0.01,
        attack="FGSM()",
        norm="linf",
        forward_calls=10,
        gradient_calls=6,
        seconds=0.1,
    )
    result = robustness_result(search, ("zero", "one"), dataset="d", split="s")
    assert Result.from_json(result.to_json()) == result
    assert result.most_sensitive[0] == "zero" and result.most_robust[0] == "one"
    assert result.curve_accuracy[0] == pytest.approx(5 / 6) and result.curve_accuracy[-1] == pytest.approx(1 / 6)
    assert result.censored == 1 and result.clean_wrong == 1
    # attackable: 0.1, 0.3, inf, 0.2, 0.25 -> median 0.25 (the zero of the wrong example is left out)
    assert result.median_eps_star == pytest.approx(0.25) and result.attackable == 5
