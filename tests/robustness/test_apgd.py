"""APGD: the paper's checkpoint schedule, strength against PGD, warm starts, restarts, early stop."""

from __future__ import annotations

import pytest
import torch

from trustlab.core.exceptions import InputError
from trustlab.data import load_dataset
from trustlab.robustness.attacks import APGD, PGD
from trustlab.robustness.attacks.apgd import apgd_checkpoints


@pytest.fixture(scope="module")
def mnist():
    data = load_dataset("mnist", "sample")
    return torch.as_tensor(data.x[:64]).float(), torch.as_tensor(data.y[:64]).long()


def test_checkpoints_for_100_steps_follow_the_paper_by_hand():
    # p_0 = 0, p_1 = 0.22, p_j+1 = p_j + max(p_j - p_j-1 - 0.03, 0.06):
    # 0.22 + 0.19 = 0.41, + 0.16 = 0.57, + 0.13 = 0.70, + 0.10 = 0.80, + 0.07 = 0.87,
    # + max(0.04, 0.06) = 0.93, + 0.06 = 0.99, + 0.06 = 1.05 > 1 (stop); w_j = ceil(100 p_j)
    assert apgd_checkpoints(100) == [0, 22, 41, 57, 70, 80, 87, 93, 99]


def test_checkpoints_for_few_steps_round_up_and_drop_duplicates():
    # 10 steps: ceil of 2.2, 4.1, 5.7, 7.0, 8.0, 8.7, 9.3, 9.9 -> 3, 5, 6, 7, 8, 9, 10, 10
    assert apgd_checkpoints(10) == [0, 3, 5, 6, 7, 8, 9, 10]
    # 1000 steps: exact hundredths, no floating-point drift (41.000000000000004 -> 42 would be wrong)
    assert apgd_checkpoints(1000) == [0, 220, 410, 570, 700, 800, 870, 930, 990]
    assert apgd_checkpoints(1) == [0, 1]
    with pytest.raises(InputError, match="steps"):
        apgd_checkpoints(0)


def test_at_least_as_strong_as_pgd_with_the_same_steps(reference, mnist):
    x, y = mnist
    pgd = PGD(steps=5).attack(reference, x, y, eps=0.1)
    apgd = APGD(steps=5).attack(reference, x, y, eps=0.1)
    assert apgd.gradient_calls == pgd.gradient_calls
    assert apgd.success_rate >= pgd.success_rate
    assert apgd.success_rate > 0.2


def test_an_adversarial_warm_start_is_kept(reference, mnist):
    x, y = mnist
    x, y = x[:16], y[:16]
    found = PGD(steps=10).attack(reference, x, y, eps=0.3)
    assert found.success.sum() >= 8
    warm = APGD(steps=1).attack(reference, x, y, eps=0.3, init=found.adversarials)
    assert torch.all(warm.success[found.success])


def test_restarts_only_reattack_unfooled_examples(reference, mnist):
    x, y = mnist
    x, y = x[:16], y[:16]
    one = APGD(steps=4, restarts=1).attack(reference, x, y, eps=0.1)
    three = APGD(steps=4, restarts=3).attack(reference, x, y, eps=0.1)
    assert torch.all(three.success[one.success])  # the first restart is the same run
    unfooled = int((~one.success).sum())
    assert one.gradient_calls == 4 * 16
    assert 4 * 16 < three.gradient_calls <= 4 * (16 + 2 * unfooled)


def test_early_stop_returns_adversarials_for_fewer_calls(reference, mnist):
    x, y = mnist
    x, y = x[:16], y[:16]
    full = APGD(steps=8).attack(reference, x, y, eps=0.3)
    early = APGD(steps=8, early_stop=True).attack(reference, x, y, eps=0.3)
    assert torch.equal(early.success, full.success)
    assert early.gradient_calls < full.gradient_calls
    assert torch.equal(early.success, reference.predict(early.adversarials) != y)


def test_l2_stays_in_the_ball(reference, mnist):
    x, y = mnist
    x, y = x[:16], y[:16]
    result = APGD(norm="l2", steps=5).attack(reference, x, y, eps=1.5)
    assert torch.all(result.norms <= 1.5 + 1e-5)
    assert result.success.any()


@pytest.mark.parametrize(
    ("kwargs", "word"),
    [
        ({"steps": 0}, "steps"),
        ({"restarts": 0}, "restarts"),
        ({"rho": 0.0}, "rho"),
        ({"momentum": 1.5}, "momentum"),
        ({"norm": "l1"}, "norm"),
        ({"loss": "dlr"}, "loss"),
    ],
)
def test_bad_hyperparameters_are_named(kwargs, word):
    with pytest.raises(InputError, match=word):
        APGD(**kwargs)
