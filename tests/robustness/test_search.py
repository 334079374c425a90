"""Minimal-eps search on hand-built models whose thresholds are known exactly."""

import math

import pytest
import torch
from torch import nn

from trustlab.core.batching import BatchCheckpoint
from trustlab.models import Classifier, load_reference_model
from trustlab.robustness.attacks import PGD
from trustlab.robustness.search import linear_scan, minimal_eps


class SumModel(nn.Module):
    """Class 1 wins when sum(x) > c, so FGSM (all coordinates +eps) flips class 0 at (c - sum(x)) / d."""

    def __init__(self, c: float) -> None:
        super().__init__()
        self.c = c

    def forward(self, x):
        score = x.flatten(1).sum(1) - self.c
        return torch.stack([torch.zeros_like(score), score], dim=1)


class BumpModel(nn.Module):
    """Class 1 only inside a bump: pushing x up flips class 0, then un-flips it (non-monotonic)."""

    def forward(self, x):
        u = x[:, 0]
        score = 0.5 - (0.5 / 0.175**2) * (u - 0.475) ** 2
        return torch.stack([torch.zeros_like(score), score], dim=1)


def linear_classifier(c: float = 1.0, batch_size: int = 256) -> Classifier:
    return Classifier(SumModel(c), input_shape=(4,), num_classes=2, bounds=(0.0, 1.0), batch_size=batch_size)


def test_bisection_finds_the_known_threshold():
    x = torch.tensor([[0.1, 0.1, 0.1, 0.1], [0.0, 0.2, 0.0, 0.2], [0.225, 0.225, 0.225, 0.225], [0.0, 0.0, 0.0, 0.0]])
    y = torch.zeros(4, dtype=torch.long)
    model = Classifier(SumModel(1.0), input_shape=(4,), num_classes=2, bounds=(0.0, 1.0))
    result = minimal_eps(model, x, y, "fgsm", eps_max=0.2, tol=1 / 1024, show_progress=False)
    truth = torch.tensor([0.15, 0.15, 0.025, math.inf])  # last: needs 0.25 > eps_max -> censored
    finite = torch.isfinite(truth)
    # at eps = truth the scores tie and argmax keeps class 0, so the flip set is (truth, inf)
    assert torch.all(result.upper[finite] >= truth[finite] - 1e-6)
    assert torch.all(result.lower[finite] <= truth[finite] + 1e-6)
    assert torch.all(result.upper[finite] - result.lower[finite] <= 1 / 1024)
    assert result.censored.tolist() == [False, False, False, True] and math.isinf(result.eps_star[3])
    assert not result.clean_wrong.any() and not result.nonmonotonic.any()
    # gradient once, then forward passes only
    assert result.gradient_calls == 4 and result.forward_calls <= 4 * (math.ceil(math.log2(0.2 * 1024)) + 1)


def test_already_wrong_examples_get_zero_and_pgd_agrees():
    x = torch.tensor([[0.1, 0.1, 0.1, 0.1], [0.4, 0.4, 0.4, 0.4]])
    y = torch.tensor([0, 0])  # the second is already class 1
    model = linear_classifier()
    fgsm = minimal_eps(model, x, y, "fgsm", eps_max=0.5, tol=1 / 512, show_progress=False)
    pgd = minimal_eps(model, x, y, PGD(steps=5), eps_max=0.5, tol=1 / 512, show_progress=False)
    for result in (fgsm, pgd):
        assert result.clean_wrong.tolist() == [False, True] and result.eps_star[1] == 0
        assert abs(result.eps_star[0].item() - 0.15) <= 1 / 512 + 1e-6  # eps is float32: 0.15 is not exact


def test_mask_restricts_the_search():
    x = torch.full((1, 4), 0.1)
    mask = torch.tensor([1.0, 1.0, 0.0, 0.0])  # two coordinates may move: threshold (1 - 0.4) / 2
    result = minimal_eps(linear_classifier(), x, torch.tensor([0]), "fgsm", mask=mask, show_progress=False)
    assert abs(result.eps_star.item() - 0.3) <= 1 / 512 and result.eps_star.item() >= 0.3


def test_nonmonotonic_examples_are_detected():
    model = Classifier(BumpModel(), input_shape=(1,), num_classes=2, bounds=(0.0, 1.0))
    result = minimal_eps(model, torch.tensor([[0.2]]), torch.tensor([0]), "fgsm", show_progress=False)
    assert result.nonmonotonic.item() and not result.censored.item()
    assert abs(result.eps_star.item() - 0.1) <= 1 / 512


def test_curve_is_derived_from_eps_star():
    x = torch.tensor([[0.1] * 4, [0.2] * 4, [0.0] * 4])
    result = minimal_eps(linear_classifier(), x, torch.zeros(3, dtype=torch.long), "fgsm", show_progress=False)
    curve = result.curve([0.0, 0.06, 0.16, 0.26])  # thresholds 0.15, 0.05, 0.25
    assert curve.tolist() == pytest.approx([1.0, 2 / 3, 1 / 3, 0.0])
    assert result.robust_accuracy(0.1) == pytest.approx(2 / 3)


def test_agrees_with_a_linear_scan_on_the_reference_model():
    from trustlab.data import load_dataset

    data = load_dataset("mnist", "sample").subset(slice(0, 96))
    model = load_reference_model()
    search = minimal_eps(model, data.x, data.y, "fgsm", show_progress=False)
    scan = linear_scan(model, data.x, data.y, show_progress=False)
    agree = ((search.eps_star.double() - scan.first_flip).abs() <= search.tol + 1e-9) | (
        torch.isinf(search.eps_star) & torch.isinf(scan.first_flip)
    )
    # every disagreement is an example that flipped early and was correct again at the bisection's lower end
    assert torch.all(scan.first_flip[~agree] < search.lower[~agree].double())
    assert agree.float().mean() >= 0.95


def test_resume_gives_the_same_result_as_an_uninterrupted_run(tmp_path):
    torch.manual_seed(0)
    x = torch.rand(40, 4) * 0.2
    y = torch.zeros(40, dtype=torch.long)
    model = linear_classifier(batch_size=8)
    expected = minimal_eps(model, x, y, "fgsm", show_progress=False)
    calls = {"gradients": 0}
    original = model.forward

    def dying(batch):
        calls["gradients"] += batch.requires_grad  # one gradient call opens each batch
        if calls["gradients"] == 3 and not batch.requires_grad:  # inside the third batch
            raise KeyboardInterrupt
        return original(batch)

    model.forward = dying
    checkpoint = BatchCheckpoint(tmp_path / "ck", fingerprint={"run": 1})
    with pytest.raises(KeyboardInterrupt):
        minimal_eps(model, x, y, "fgsm", checkpoint=checkpoint, show_progress=False)
    assert 0 < checkpoint.completed() < 5
    model.forward = original
    resumed = minimal_eps(
        model, x, y, "fgsm", checkpoint=BatchCheckpoint(tmp_path / "ck", fingerprint={"run": 1}), show_progress=False
    )
    for field in ("eps_star", "lower", "upper", "censored", "clean_wrong", "nonmonotonic"):
        assert torch.equal(getattr(resumed, field), getattr(expected, field)), field
