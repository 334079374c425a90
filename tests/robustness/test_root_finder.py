"""FGSM's minimal-eps root finder ("quadratic") against the reference bisection.

Hand-built models whose margin along the FGSM ray is known exactly, and the shipped reference
CNN, where the bracket is re-checked by evaluating the model at its two ends.
"""

import math

import pytest
import torch
from torch import nn

from trustlab.core.exceptions import InputError
from trustlab.models import Classifier
from trustlab.robustness.attacks import FGSM
from trustlab.robustness.attacks.base import BatchContext, Counter
from trustlab.robustness.search import ERR_ROOT_FINDER, ROOT_FINDERS, minimal_eps


class SumModel(nn.Module):
    """Class 1 wins when sum(x) > c: the margin along FGSM's ray is sum(x) + d * eps - c, linear."""

    def __init__(self, c: float) -> None:
        super().__init__()
        self.c = c

    def forward(self, x):
        score = x.flatten(1).sum(1) - self.c
        return torch.stack([torch.zeros_like(score), score], dim=1)


class CliffModel(nn.Module):
    """Margin almost flat below ``at``, then a cliff: interpolation keeps guessing near 0."""

    def __init__(self, at: float) -> None:
        super().__init__()
        self.at = at

    def forward(self, x):
        u = x[:, 0]
        score = torch.where(u > self.at, 1e4 * (u - self.at) + 1e-6, -1.0 + 1e-3 * u)
        return torch.stack([torch.zeros_like(score), score], dim=1)


class TwoWindowsModel(nn.Module):
    """Class 1 for u in (0.3, 0.4) and u > 0.6: flipped, correct again, flipped again at eps_max."""

    def forward(self, x):
        u = x[:, 0]
        score = torch.maximum(0.05 - (u - 0.35).abs(), (u - 0.6) * 0.5)
        return torch.stack([torch.zeros_like(score), score], dim=1)


class BumpModel(nn.Module):
    """Class 1 only inside a bump: flipped, then correct again at eps_max (non-monotonic)."""

    def forward(self, x):
        u = x[:, 0]
        score = 0.5 - (0.5 / 0.175**2) * (u - 0.475) ** 2
        return torch.stack([torch.zeros_like(score), score], dim=1)


def classifier(module: nn.Module, dims: int) -> Classifier:
    return Classifier(module, input_shape=(dims,), num_classes=2, bounds=(0.0, 1.0))


def both(model, x, y, attack="fgsm", **kwargs):
    return {
        finder: minimal_eps(model, x, y, attack, root_finder=finder, show_progress=False, **kwargs)
        for finder in ROOT_FINDERS
    }


def ray_predictions(model: Classifier, x: torch.Tensor, y: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
    """trustlab's FGSM point clip(x + eps * direction), computed afresh, and its prediction."""
    attack = FGSM()
    ctx = BatchContext(
        model=model,
        x=x,
        y=y,
        eps=eps,
        mask=None,
        init=None,
        generator=torch.Generator(),
        counter=Counter(),
    )
    with torch.enable_grad():
        direction, _ = attack.direction(ctx, x)
    with torch.no_grad():
        points = (x + eps.view(-1, *[1] * (x.ndim - 1)) * direction).clamp(0.0, 1.0)
        return model.forward(points).argmax(1)


def assert_bracket_holds(model: Classifier, x, y, result) -> None:
    """Correct at lower (or lower = 0), flipped at upper, width <= tol, for every searched example."""
    searched = ~result.clean_wrong & ~result.censored
    rows = torch.nonzero(searched).squeeze(1)
    width = result.upper[rows] - result.lower[rows]
    assert torch.all(width <= result.tol) and torch.all(width > 0)
    assert torch.all(ray_predictions(model, x[rows], y[rows], result.upper[rows]) != y[rows])
    inside = rows[result.lower[rows] > 0]
    assert torch.all(ray_predictions(model, x[inside], y[inside], result.lower[inside]) == y[inside])


def test_unknown_root_finder_is_refused_with_the_choices():
    model = classifier(SumModel(1.0), 4)
    with pytest.raises(InputError) as info:
        minimal_eps(model, torch.full((1, 4), 0.1), torch.tensor([0]), root_finder="brent", show_progress=False)
    assert str(info.value) == ERR_ROOT_FINDER.format(choices="quadratic, bisection", got="brent")


def test_linear_margin_is_solved_in_two_evaluations():
    # sum(x) + 4 eps = 1: thresholds 0.15, 0.1375, 0.02, 0.2375 (x + eps stays inside [0, 1])
    x = torch.tensor([[0.1] * 4, [0.0, 0.2, 0.15, 0.1], [0.23] * 4, [0.01, 0.02, 0.0, 0.02]])
    truth = torch.tensor([0.15, 0.1375, 0.02, 0.2375])
    y = torch.zeros(4, dtype=torch.long)
    model = classifier(SumModel(1.0), 4)
    results = both(model, x, y, eps_max=0.5, tol=1 / 512)
    fast, slow = results["quadratic"], results["bisection"]
    for result in (fast, slow):
        # at eps = truth the scores tie and argmax keeps class 0: the flip set is (truth, inf)
        assert torch.all(result.upper >= truth - 1e-6) and torch.all(result.lower <= truth + 1e-6)
        assert torch.all(result.upper - result.lower <= 1 / 512)
        assert result.gradient_calls == 4
    # the check at eps_max, the secant's point (the root) and one step of tol beside it
    assert fast.forward_calls <= 4 * 3
    assert slow.forward_calls == 4 * (8 + 1)
    assert_bracket_holds(model, x, y, fast)


def test_targeted_search_finds_the_same_threshold():
    x = torch.tensor([[0.1] * 4, [0.2] * 4])
    model = classifier(SumModel(1.0), 4)
    untargeted = minimal_eps(model, x, torch.tensor([0, 0]), show_progress=False)
    targeted = minimal_eps(model, x, torch.tensor([1, 1]), FGSM(targeted=True), show_progress=False)
    assert torch.equal(untargeted.upper, targeted.upper) and torch.equal(untargeted.lower, targeted.lower)
    assert torch.all((targeted.eps_star - torch.tensor([0.15, 0.05])).abs() <= 1 / 512)


def test_useless_interpolation_still_ends_within_twice_the_bisection_rounds():
    x = torch.tensor([[0.2], [0.05], [0.0]])
    y = torch.zeros(3, dtype=torch.long)
    model = classifier(CliffModel(at=0.45), 1)
    results = both(model, x, y, eps_max=0.5, tol=1 / 512)
    fast = results["quadratic"]
    rounds = math.ceil(math.log2(0.5 * 512))
    truth = torch.tensor([0.25, 0.4, 0.45])
    assert torch.all(fast.upper >= truth - 1e-6) and torch.all(fast.lower <= truth + 1e-6)
    assert torch.all((fast.eps_star - results["bisection"].eps_star).abs() <= 1 / 512)
    assert fast.forward_calls <= 3 * (1 + 2 * rounds)
    assert_bracket_holds(model, x, y, fast)


def test_nonmonotonic_example_not_flipped_at_eps_max_is_bisected_with_the_same_flags():
    model = classifier(BumpModel(), 1)
    results = both(model, torch.tensor([[0.2]]), torch.tensor([0]))
    fast, slow = results["quadratic"], results["bisection"]
    assert fast.nonmonotonic.item() and not fast.censored.item()
    for field in ("eps_star", "lower", "upper", "censored", "clean_wrong", "nonmonotonic"):
        assert torch.equal(getattr(fast, field), getattr(slow, field)), field
    assert fast.forward_calls == slow.forward_calls  # the same bisection, eps_max checked first


def test_two_flip_windows_give_an_honest_bracket():
    # flipped on (0.1, 0.2) and above 0.4 along the ray from 0.2; flipped at eps_max = 0.5
    model = classifier(TwoWindowsModel(), 1)
    x, y = torch.tensor([[0.2]]), torch.tensor([0])
    results = both(model, x, y)
    for result in results.values():
        assert not result.nonmonotonic.item() and not result.censored.item()  # flipped at eps_max
        assert_bracket_holds(model, x, y, result)
        to_start = min(abs(result.upper.item() - 0.1), abs(result.upper.item() - 0.4))
        assert to_start <= 1 / 512 + 1e-6  # the start of one of the two windows


def test_censored_and_clean_wrong_examples_match_the_bisection():
    x = torch.tensor([[0.0] * 4, [0.4] * 4, [0.1] * 4])  # needs 0.25 > eps_max; already wrong; 0.15
    y = torch.zeros(3, dtype=torch.long)
    results = both(classifier(SumModel(1.0), 4), x, y, eps_max=0.2, tol=1 / 1024)
    fast, slow = results["quadratic"], results["bisection"]
    assert fast.censored.tolist() == [True, False, False] and fast.clean_wrong.tolist() == [False, True, False]
    for field in ("censored", "clean_wrong", "nonmonotonic"):
        assert torch.equal(getattr(fast, field), getattr(slow, field)), field
    assert torch.equal(fast.eps_star[:2], slow.eps_star[:2])
    assert abs(fast.eps_star[2].item() - slow.eps_star[2].item()) <= 1 / 1024


def test_reference_model_agrees_with_bisection_with_fewer_forward_passes(reference):
    from trustlab.data import load_dataset

    data = load_dataset("mnist", "sample").subset(slice(0, 128))
    x, y = torch.as_tensor(data.x, dtype=torch.float32), torch.as_tensor(data.y, dtype=torch.long)
    results = both(reference, x, y)
    fast, slow = results["quadratic"], results["bisection"]
    for field in ("censored", "clean_wrong", "nonmonotonic"):
        assert torch.equal(getattr(fast, field), getattr(slow, field)), field
    finite = torch.isfinite(slow.eps_star)
    assert torch.equal(finite, torch.isfinite(fast.eps_star))
    agree = (fast.eps_star[finite] - slow.eps_star[finite]).abs() <= fast.tol + 1e-7
    assert agree.float().mean() >= 0.97
    assert fast.gradient_calls == slow.gradient_calls == 128
    assert fast.forward_calls <= 0.75 * slow.forward_calls
    assert_bracket_holds(reference, x, y, fast)
