"""Budgets larger than the input range are refused, with the option and the range named, before
any attack runs: an L-inf eps above high - low, an L2 eps above (high - low) * sqrt(values)."""

import math

import pytest
import torch
from torch import nn

from trustlab.core.exceptions import InputError
from trustlab.models import Classifier
from trustlab.robustness.attacks import FGSM
from trustlab.robustness.checks import run_robustness
from trustlab.robustness.evaluate import check_eps, eps_limit, robust_accuracy
from trustlab.robustness.search import minimal_eps


class CountingModel(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.calls = 0
        self.linear = nn.Linear(12, 3)

    def forward(self, x):
        self.calls += 1
        return self.linear(x.flatten(1))


def classifier(bounds=(0.0, 1.0)) -> Classifier:
    return Classifier(CountingModel(), input_shape=(1, 3, 4), num_classes=3, bounds=bounds)


class RecordingAttack(FGSM):
    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.calls = 0

    def attack(self, *args, **kwargs):
        self.calls += 1
        return super().attack(*args, **kwargs)


def test_limits_by_hand():
    assert eps_limit(classifier(), "linf") == 1.0
    assert eps_limit(classifier((-1.0, 1.0)), "linf") == 2.0
    assert eps_limit(classifier(), "l2") == pytest.approx(math.sqrt(12))
    assert eps_limit(classifier((-1.0, 1.0)), "l2") == pytest.approx(2 * math.sqrt(12))
    assert eps_limit(classifier(None), "linf") is None  # tabular: unbounded


def test_check_eps_accepts_up_to_the_range_and_names_option_and_range():
    model = classifier()
    assert check_eps(model, "linf", 1.0) == 1.0 and check_eps(model, "linf", 0) == 0.0
    with pytest.raises(InputError, match=r"^--eps-max 5 is larger than the L-inf input range 1 \(bounds \[0, 1\]\)"):
        check_eps(model, "linf", 5, option="--eps-max")
    with pytest.raises(InputError, match=r"^eps 1\.001 is larger than the L-inf input range 1 "):
        check_eps(model, "linf", 1.001)
    assert check_eps(model, "l2", math.sqrt(12)) == pytest.approx(math.sqrt(12))
    with pytest.raises(InputError, match=r"L2 input range 3\.4641 = 1 x sqrt\(12 input values\) \(bounds \[0, 1\]\)"):
        check_eps(model, "l2", 3.5)
    assert check_eps(classifier(None), "linf", 1e6) == 1e6
    for bad in (-0.1, math.nan, math.inf, "0.1", True, None):
        with pytest.raises(InputError, match="must be a finite number >= 0"):
            check_eps(model, "linf", bad)


def test_minimal_eps_refuses_before_any_forward_pass():
    model = classifier()
    x, y = torch.rand(4, 1, 3, 4), torch.zeros(4, dtype=torch.long)
    with pytest.raises(InputError, match=r"^eps_max 5 is larger than the L-inf input range 1"):
        minimal_eps(model, x, y, "fgsm", eps_max=5, show_progress=False)
    with pytest.raises(InputError, match=r"^eps_max 4 is larger than the L2 input range"):
        minimal_eps(model, x, y, FGSM(norm="l2"), eps_max=4, show_progress=False)
    assert model.module.calls == 0
    minimal_eps(model, x, y, FGSM(norm="l2"), eps_max=3, show_progress=False)  # within sqrt(12): runs


def test_robust_accuracy_refuses_before_attacking():
    model, attack = classifier(), RecordingAttack()
    x, y = torch.rand(4, 1, 3, 4), torch.zeros(4, dtype=torch.long)
    with pytest.raises(InputError, match=r"^eps 2 is larger than the L-inf input range 1"):
        robust_accuracy(model, x, y, attack, [0.1, 2.0])
    assert attack.calls == 0  # not even the 0.1 budget ran
    assert robust_accuracy(model, x, y, attack, [0.1, 1.0]).eps == (0.1, 1.0)


class _Run:
    """Records what a check would write; a real run directory is not needed to see nothing happen."""

    def __init__(self) -> None:
        self.added = []

    def add(self, name, result):
        self.added.append(name)
        return result


def test_run_robustness_refuses_every_option_before_any_attack():
    from trustlab.data import Dataset, DatasetMetadata

    data = Dataset(
        "t", "all", torch.rand(4, 1, 3, 4), torch.zeros(4, dtype=torch.long), ("a", "b", "c"), (0.0, 1.0),
        DatasetMetadata("s", "l", "d"),
    )  # fmt: skip
    model, attack, run = classifier(), RecordingAttack(), _Run()
    with pytest.raises(InputError, match=r"^--eps-max 5 is larger than the L-inf input range 1 \(bounds \[0, 1\]\)"):
        run_robustness(run, model, data, attack, eps_max=5)
    with pytest.raises(InputError, match=r"^--eps-max 5 "):
        run_robustness(run, model, data, attack, search=False, regions=True, eps_max=5)
    with pytest.raises(InputError, match=r"^--eps 5 is larger than the L-inf input range 1"):
        run_robustness(run, model, data, attack, search=True, fixed_eps=(0.1, 5.0), eps_max=0.5)
    assert attack.calls == 0 and run.added == []
