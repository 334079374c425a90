"""FMN: small norms on the reference model, honest results, eps as an upper bound, edge cases."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from trustlab.core.exceptions import InputError
from trustlab.data import load_dataset
from trustlab.models import Classifier
from trustlab.robustness.attacks import FMN, lp_norms


@pytest.fixture(scope="module")
def correct(reference):
    """About 32 images the reference model classifies correctly."""
    data = load_dataset("mnist", "sample")
    x, y = torch.as_tensor(data.x[:33]).float(), torch.as_tensor(data.y[:33]).long()
    keep = reference.predict(x) == y
    return x[keep], y[keep]


@pytest.fixture(scope="module")
def linf_result(reference, correct):
    x, y = correct
    return FMN(steps=20).attack(reference, x, y)


def test_median_linf_norm_is_small(linf_result, correct):
    assert correct[0].shape[0] >= 30
    assert linf_result.success.float().mean() >= 0.9
    assert linf_result.norms[linf_result.success].median() < 0.2


def test_successes_are_misclassified_with_their_true_norm(reference, linf_result, correct):
    x, y = correct
    adv = linf_result.adversarials[linf_result.success]
    assert torch.all(reference.predict(adv) != y[linf_result.success])
    assert torch.equal(linf_result.norms, lp_norms(linf_result.adversarials - x, "linf"))
    failed = ~linf_result.success
    assert torch.equal(linf_result.adversarials[failed], x[failed])  # failures return the clean input
    assert linf_result.gradient_calls == 20 * x.shape[0]


def test_eps_is_an_upper_bound(reference, linf_result, correct):
    x, y = correct
    bound = float(linf_result.norms[linf_result.success].median())
    bounded = FMN(steps=20).attack(reference, x, y, eps=bound)
    assert torch.all(bounded.norms <= bound)
    assert torch.equal(bounded.adversarials[~bounded.success], x[~bounded.success])
    # the same run, filtered: those within the bound succeed, the others return the clean input
    assert torch.equal(bounded.success, linf_result.success & (linf_result.norms <= bound))
    assert 0 < bounded.success.sum() < x.shape[0]


def test_l2(reference, correct):
    x, y = correct
    result = FMN(norm="l2", steps=20).attack(reference, x[:8], y[:8])
    assert result.success.all()
    assert result.norms.median() < 2.5
    assert torch.all(reference.predict(result.adversarials) != y[:8])


def test_targeted(reference, correct):
    x, y = correct
    targets = (y[:8] + 3) % 10
    result = FMN(steps=20, targeted=True).attack(reference, x[:8], targets)
    assert result.success.float().mean() >= 0.75
    assert torch.all(reference.predict(result.adversarials[result.success]) == targets[result.success])


def test_already_misclassified_examples_return_the_clean_input(reference, correct):
    x, y = correct
    wrong = (y[:4] + 1) % 10
    for init in (None, (x[:4] + 0.2).clamp(0, 1)):
        result = FMN(steps=3).attack(reference, x[:4], wrong, init=init)
        assert result.success.all()
        assert torch.equal(result.adversarials, x[:4])
        assert torch.all(result.norms == 0)


def test_an_unreachable_class_returns_the_clean_input_and_fails(correct):
    x, _ = correct
    constant = nn.Sequential(nn.Flatten(), nn.Linear(784, 10))
    with torch.no_grad():
        constant[1].weight.zero_()
        constant[1].bias.copy_(torch.arange(10.0))  # always class 9
    model = Classifier(constant, input_shape=(1, 28, 28), num_classes=10)
    y = torch.full((4,), 9)
    result = FMN(steps=5).attack(model, x[:4], y)
    assert not result.success.any()
    assert torch.equal(result.adversarials, x[:4])
    assert torch.all(result.norms == 0)


@pytest.mark.parametrize(
    ("kwargs", "word"),
    [
        ({"steps": 0}, "steps"),
        ({"alpha_init": 0.0}, "alpha_init"),
        ({"alpha_final": -1.0}, "alpha_final"),
        ({"gamma_init": 1.0}, "gamma_init"),
        ({"gamma_final": 0.0}, "gamma_final"),
        ({"norm": "l0"}, "norm"),
    ],
)
def test_bad_hyperparameters_are_named(kwargs, word):
    with pytest.raises(InputError, match=word):
        FMN(**kwargs)
