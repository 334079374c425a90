"""Square Attack: strength with a few hundred queries, the p schedule, query accounting."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from trustlab.core.exceptions import InputError
from trustlab.data import load_dataset
from trustlab.models import Classifier
from trustlab.robustness.attacks import Square, margin
from trustlab.robustness.attacks.square import square_fraction


@pytest.fixture(scope="module")
def mnist():
    data = load_dataset("mnist", "sample")
    return torch.as_tensor(data.x[100:132]).float(), torch.as_tensor(data.y[100:132]).long()


def test_succeeds_at_eps_03_with_a_few_hundred_queries(reference, mnist):
    x, y = mnist
    result = Square(queries=200).attack(reference, x, y, eps=0.3)
    assert result.success_rate > 0.5
    assert result.gradient_calls == 0
    assert result.forward_calls <= 200 * x.shape[0]
    assert torch.all(result.norms <= 0.3 + 1e-6)
    assert torch.equal(result.success, reference.predict(result.adversarials) != y)


def test_the_p_schedule_halves_at_the_papers_iterations():
    # 10,000 queries: p_init up to iteration 10, then halved after 10, 50, 200, 500, 1000, ...
    assert square_fraction(0.8, 0, 10000) == 0.8
    assert square_fraction(0.8, 10, 10000) == 0.8
    assert square_fraction(0.8, 11, 10000) == 0.4
    assert square_fraction(0.8, 50, 10000) == 0.4
    assert square_fraction(0.8, 51, 10000) == 0.2
    assert square_fraction(0.8, 201, 10000) == 0.1
    assert square_fraction(0.8, 8001, 10000) == 0.8 / 512
    # rescaled to 1,000 queries: the same fractions of the budget
    assert square_fraction(0.8, 1, 1000) == 0.8
    assert square_fraction(0.8, 2, 1000) == 0.4
    assert square_fraction(0.8, 21, 1000) == 0.1
    assert square_fraction(0.8, 999, 1000) == 0.8 / 512


def test_only_improvements_are_accepted(reference, mnist):
    x, y = mnist
    x, y = x[:12], y[:12]
    start = Square(queries=1).attack(reference, x, y, eps=0.1)  # the stripes only
    later = Square(queries=40).attack(reference, x, y, eps=0.1)
    assert start.forward_calls == 12
    loss_start = margin(reference.logits(start.adversarials), y)
    loss_later = margin(reference.logits(later.adversarials), y)
    assert torch.all(loss_later >= loss_start)
    assert (loss_later > loss_start).any()


def test_adversarial_examples_are_not_queried_again(mnist):
    x, _ = mnist
    constant = nn.Sequential(nn.Flatten(), nn.Linear(784, 10))
    with torch.no_grad():
        constant[1].weight.zero_()
        constant[1].bias.copy_(torch.arange(10.0))  # always class 9
    model = Classifier(constant, input_shape=(1, 28, 28), num_classes=10)
    result = Square(queries=50).attack(model, x[:5], torch.zeros(5, dtype=torch.long), eps=0.1)
    assert result.success.all()
    assert result.forward_calls == 5  # the starting point only


def test_a_window_inside_the_masked_out_area_is_not_queried(reference, mnist):
    x, y = mnist
    mask = torch.zeros(1, 1, 28, 28)
    result = Square(queries=20).attack(reference, x[:4], y[:4], eps=0.3, mask=mask)
    assert torch.equal(result.adversarials, x[:4])
    assert result.forward_calls == 4


def test_l2_and_non_images_are_refused(mnist):
    with pytest.raises(InputError, match="linf"):
        Square(norm="l2")
    tabular = Classifier(nn.Linear(6, 3), input_shape=(6,), num_classes=3, bounds=None)
    with pytest.raises(InputError, match="image inputs"):
        Square(queries=5).attack(tabular, torch.zeros(2, 6), torch.zeros(2, dtype=torch.long), eps=0.1)


@pytest.mark.parametrize(
    ("kwargs", "word"),
    [({"queries": 0}, "queries"), ({"p_init": 0.0}, "p_init"), ({"p_init": 1.5}, "p_init"), ({"loss": "dlr"}, "loss")],
)
def test_bad_hyperparameters_are_named(kwargs, word):
    with pytest.raises(InputError, match=word):
        Square(**kwargs)
