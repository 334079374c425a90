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
        direction = attack.direction(ctx, x).step
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


class AffineModel(nn.Module):
    """Logits W x + b: along a ray inside the bounds every logit changes at a constant rate."""

    def __init__(self, classes: int, dims: int, seed: int) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.weight = nn.Parameter(torch.randn(classes, dims, generator=g))
        self.bias = nn.Parameter(torch.randn(classes, generator=g))

    def forward(self, x):
        return x @ self.weight.T + self.bias


def finite_difference_rate(model, x, y, step, targeted: bool, h: float = 1e-4) -> torch.Tensor:
    from trustlab.robustness.attacks.base import margin

    sign = -1.0 if targeted else 1.0
    with torch.no_grad():
        at = [sign * margin(model.forward((x + e * step).clamp(0, 1)).double(), y) for e in (0.0, h)]
    return (at[1] - at[0]) / h


@pytest.mark.parametrize("loss", ["ce", "margin"])
@pytest.mark.parametrize("targeted", [False, True])
def test_margin_rate_is_exact_where_it_can_be(loss, targeted):
    """Exact for the margin loss, and for cross-entropy with two classes (one other class holds all
    the weight); pixels at a bound that the step pushes outwards do not move."""
    x = torch.rand(16, 6, generator=torch.Generator().manual_seed(1)) * 0.8 + 0.1
    x[:, 0], x[:, 1] = 0.0, 1.0  # at the bounds: whichever way the step points there, one side is stopped
    y = torch.randint(0, 2, (16,), generator=torch.Generator().manual_seed(2))
    model = Classifier(AffineModel(2, 6, seed=3), input_shape=(6,), num_classes=2, bounds=(0.0, 1.0))
    attack = FGSM(loss=loss, targeted=targeted)
    ctx = BatchContext(model=model, x=x, y=y, eps=torch.zeros(16), mask=None, init=None,
                       generator=torch.Generator(), counter=Counter())  # fmt: skip
    with torch.enable_grad():
        ray = attack.direction(ctx, x)
    expected = finite_difference_rate(model, x, y, ray.step, targeted)
    assert torch.allclose(ray.margin_rate, expected, rtol=1e-3, atol=1e-3)
    assert torch.all(ray.margin_rate > 0)  # the step raises the objective, hence the margin


def test_margin_rate_of_cross_entropy_follows_the_dominant_runner_up():
    """Ten classes, one runner-up far ahead of the others: the estimate is close to its exact rate."""
    module = AffineModel(10, 6, seed=4)
    with torch.no_grad():
        module.bias.copy_(torch.tensor([6.0, 3.0] + [-6.0] * 8))  # class 0 first, class 1 runner-up
    model = Classifier(module, input_shape=(6,), num_classes=10, bounds=(0.0, 1.0))
    x = torch.full((4, 6), 0.5) + 0.01 * torch.arange(4.0)[:, None]
    y = torch.zeros(4, dtype=torch.long)
    attack = FGSM()
    ctx = BatchContext(model=model, x=x, y=y, eps=torch.zeros(4), mask=None, init=None,
                       generator=torch.Generator(), counter=Counter())  # fmt: skip
    with torch.enable_grad():
        ray = attack.direction(ctx, x)
    expected = finite_difference_rate(model, x, y, ray.step, targeted=False)
    assert torch.allclose(ray.margin_rate, expected, rtol=0.05)


def test_midpoints_a_rate_bound_clears_are_skipped_for_examples_not_flipped_at_eps_max():
    """sum(x) + 4 eps - 10 along the ray: -9.6 at 0, -7.6 at eps_max, rate 4 (also the secant's), so
    the bound is 4; every bisection midpoint p has -9.6 + 4 p < 0 and -7.6 + 4 (0.5 - p) < 0: none
    is evaluated."""
    x = torch.full((3, 4), 0.1)
    y = torch.zeros(3, dtype=torch.long)
    results = both(classifier(SumModel(10.0), 4), x, y, eps_max=0.5, tol=1 / 512)
    fast, slow = results["quadratic"], results["bisection"]
    for field in ("eps_star", "lower", "upper", "censored", "clean_wrong", "nonmonotonic"):
        assert torch.equal(getattr(fast, field), getattr(slow, field)), field
    assert fast.censored.all()
    assert fast.forward_calls == 3  # eps_max only
    assert slow.forward_calls == 3 * 9
