"""The contract every attack in ``ATTACKS`` keeps, checked on the reference CNN and a few images.

Most tests use the reference CNN on 12 images with batch_size 8 (a full and a partial batch).
Inputs are never modified, masked-out pixels are bit-identical to the input, results stay in
bounds and (for bounded attacks, and for FMN given an upper bound) within eps, the result's
fields agree with the model, the same seed gives the same adversarials, targeted attacks reach
their targets, model calls are counted, black-box models work exactly for score-based attacks,
and a saturated softmax does not stop gradient attacks.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from trustlab.core.exceptions import GradientsUnavailableError, InputError, UnknownNameError
from trustlab.data import load_dataset
from trustlab.models import BlackBoxClassifier, Classifier, load_reference_model
from trustlab.robustness.attacks import ATTACKS, Attack, lp_norms, make_attack

# few steps / queries: these tests check the contract, not strength
FAST = {
    "pgd": {"steps": 5},
    "apgd": {"steps": 5},
    "fmn": {"steps": 10},
    "square": {"queries": 30},
}
NAMES = sorted(ATTACKS)
EPS = {"linf": 0.2, "l2": 1.5}


def fast(name: str, **kwargs) -> Attack:
    return make_attack(name, **{**FAST.get(name, {}), **kwargs})


def supports(name: str, norm: str) -> bool:
    try:
        fast(name, norm=norm)
    except InputError:
        return False
    return True


CASES = [(name, norm) for name in NAMES for norm in ("linf", "l2") if supports(name, norm)]


@pytest.fixture(scope="module")
def mnist() -> tuple[torch.Tensor, torch.Tensor]:
    data = load_dataset("mnist", "sample")
    return torch.as_tensor(data.x[:12]).float(), torch.as_tensor(data.y[:12]).long()


@pytest.fixture(scope="module")
def model() -> Classifier:
    """The reference CNN with batch_size 8, so that 12 images make a full and a partial batch."""
    return load_reference_model(batch_size=8)


@pytest.fixture(scope="module")
def reference() -> Classifier:
    return load_reference_model()


@pytest.mark.parametrize(("name", "norm"), CASES)
def test_result_contract(name, norm, model, mnist):
    x, y = mnist
    attack = fast(name, norm=norm)
    eps = torch.full((x.shape[0],), EPS[norm])
    eps[0] = 0.0  # a zero budget is legal
    copies = (x.clone(), y.clone(), eps.clone())
    result = attack.attack(model, x, y, eps=eps)
    assert torch.equal(x, copies[0]) and torch.equal(y, copies[1]) and torch.equal(eps, copies[2])

    adv = result.adversarials
    assert adv.shape == x.shape and adv.dtype == x.dtype
    assert result.success.shape == (12,) and result.success.dtype == torch.bool
    assert result.norms.shape == (12,) and result.eps.shape == (12,)
    assert result.norm == norm and result.targeted is False
    assert adv.min() >= 0.0 and adv.max() <= 1.0
    assert torch.all(result.norms <= eps + 1e-6)  # FMN: eps is an upper bound
    assert torch.equal(adv[0], x[0])
    assert torch.allclose(result.norms, lp_norms(adv - x, norm))
    assert torch.equal(result.success, model.predict(adv) != y)


@pytest.mark.parametrize("name", NAMES)
def test_init_is_not_modified_and_is_projected(name, model, mnist):
    x, y = mnist
    init = (x + 0.5 * torch.rand(x.shape, generator=torch.Generator().manual_seed(1))).clamp(0, 1)
    kept = init.clone()
    mask = torch.ones(1, 1, 28, 28)
    mask[..., :10, :] = 0
    result = fast(name).attack(model, x, y, eps=0.1, init=init, mask=mask)
    assert torch.equal(init, kept)
    assert torch.all(result.norms <= 0.1 + 1e-6)
    assert torch.equal(result.adversarials[..., :10, :], x[..., :10, :])


@pytest.mark.parametrize("per_example", [False, True], ids=["broadcast", "per-example"])
@pytest.mark.parametrize("name", NAMES)
def test_mask_is_respected_to_the_pixel(name, per_example, model, mnist):
    x, y = mnist
    if per_example:
        mask = (torch.rand(x.shape, generator=torch.Generator().manual_seed(2)) < 0.5).float()
    else:
        mask = torch.ones(1, 1, 28, 28)
        mask[..., :14] = 0  # the left half may not change
    kept = mask.clone()
    result = fast(name).attack(model, x, y, eps=0.3, mask=mask)
    frozen = (mask == 0).expand_as(x)
    assert torch.equal(result.adversarials[frozen], x[frozen])
    assert torch.equal(mask, kept)
    assert (result.adversarials != x).any(), "the attack should change some allowed pixel"


@pytest.mark.parametrize("name", NAMES)
def test_same_seed_same_adversarials(name, model, mnist):
    x, y = mnist
    first = fast(name, seed=3).attack(model, x, y, eps=0.2)
    second = fast(name, seed=3).attack(model, x, y, eps=0.2)
    assert torch.equal(first.adversarials, second.adversarials)
    assert torch.equal(first.success, second.success)
    assert (first.gradient_calls, first.forward_calls) == (second.gradient_calls, second.forward_calls)


@pytest.mark.parametrize("name", NAMES)
def test_model_calls_are_counted(name, model, mnist):
    x, y = mnist
    n = x.shape[0]
    attack = fast(name)
    result = attack.attack(model, x, y, eps=0.2)
    assert result.gradient_calls + result.forward_calls > 0
    expected = {  # (gradient_calls, forward_calls) in examples
        "fgsm": (n, n),
        "pgd": (5 * n, n),
        "apgd": (5 * n, n),
        "fmn": (10 * n, n),
    }
    if name in expected:
        assert (result.gradient_calls, result.forward_calls) == expected[name]
    elif not attack.needs_gradients:
        assert result.gradient_calls == 0
        assert 0 < result.forward_calls <= getattr(attack, "queries", result.forward_calls) * n
    else:
        assert result.gradient_calls > 0


@pytest.mark.parametrize("name", NAMES)
def test_targeted_attacks_reach_targets_more_often_than_chance(name, reference):
    data = load_dataset("mnist", "sample")
    x, y = torch.as_tensor(data.x[:16]).float(), torch.as_tensor(data.y[:16]).long()
    targets = (y + 1) % 10
    budget = {"queries": 200} if name == "square" else {}  # random search needs more tries for one class
    result = fast(name, targeted=True, **budget).attack(reference, x, targets, eps=0.3)
    assert result.targeted is True
    reached = reference.predict(result.adversarials) == targets
    assert torch.equal(result.success, reached)
    assert reached.float().mean() > 0.25  # chance is 0.1


def test_black_box_models_take_score_based_attacks_only(model, mnist):
    x, y = mnist
    black_box = BlackBoxClassifier(lambda v: model.proba(v), input_shape=(1, 28, 28), num_classes=10, batch_size=8)
    for name in NAMES:
        attack = fast(name)
        if attack.needs_gradients:
            with pytest.raises(GradientsUnavailableError, match=name):
                attack.attack(black_box, x, y, eps=0.2)
            continue
        result = attack.attack(black_box, x, y, eps=0.2)
        assert result.gradient_calls == 0 and result.forward_calls > 0
        assert torch.all(result.norms <= 0.2 + 1e-6)
        assert torch.equal(result.success, black_box.predict(result.adversarials) != y)
    assert any(not ATTACKS[name].needs_gradients for name in NAMES)


@pytest.mark.parametrize("name", ["fgsm", "pgd", "apgd"])
def test_a_saturated_softmax_does_not_stop_gradient_attacks(name, mnist):
    x, _ = mnist
    linear = nn.Sequential(nn.Flatten(), nn.Linear(784, 10))
    with torch.no_grad():
        linear[1].weight.copy_(torch.randn(10, 784, generator=torch.Generator().manual_seed(0)) * 1e4)
        linear[1].bias.zero_()
    saturated = Classifier(linear, input_shape=(1, 28, 28), num_classes=10)
    y = saturated.predict(x)  # confidently "correct" by construction
    logits = saturated.logits(x).double().requires_grad_(True)
    F.cross_entropy(logits, y, reduction="sum").backward()
    assert torch.all(logits.grad == 0), "the cross-entropy gradient should underflow to zero"
    result = fast(name).attack(saturated, x, y, eps=0.3)
    assert result.success.all()


def test_registry_and_eps_requirements(model, mnist):
    x, y = mnist
    assert set(NAMES) >= {"fgsm", "pgd", "apgd", "fmn", "square"}
    for name, cls in ATTACKS.items():
        assert cls.name == name
    with pytest.raises(UnknownNameError, match="unknown attack"):
        make_attack("nope")
    for name in NAMES:
        attack = fast(name)
        if attack.needs_eps:
            with pytest.raises(InputError, match="eps is required"):
                attack.attack(model, x, y)
        else:
            assert attack.attack(model, x, y).eps.isinf().all()
