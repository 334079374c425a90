"""Certified bounds (IBP, CROWN-IBP), certified radius and IBP training."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from trustlab.core.exceptions import InputError
from trustlab.models import Classifier, MnistCNN, train
from trustlab.robustness.attacks import PGD
from trustlab.robustness.bounds import (
    ERR_SCRIPTED,
    IntervalCertifier,
    certified,
    certified_radius,
    logit_bounds,
    margin_lower_bounds,
)

METHODS = ("ibp", "crown-ibp")


class _Residual(nn.Module):
    """Conv, batch norm, leaky ReLU, average pooling, strided conv, tanh, a view with x.size(0),
    a residual connection with a scaled branch, ELU: most of what the bounds claim to handle."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 3, 3, padding=1)
        self.bn = nn.BatchNorm2d(3)
        self.act = nn.LeakyReLU(0.1)
        self.pool = nn.AvgPool2d(2)
        self.conv2 = nn.Conv2d(3, 4, 3, stride=2)
        self.fc = nn.Linear(4 * 2 * 2, 6)
        self.branch = nn.Linear(6, 6)
        self.out = nn.Linear(6, 5)

    def forward(self, x):
        h = self.pool(self.act(self.bn(self.conv1(x))))
        h = torch.tanh(self.conv2(h))
        h = self.fc(h.view(x.size(0), -1))
        h = h + 0.5 * torch.relu(self.branch(h))
        return self.out(nn.functional.elu(h))


def _randomise_batch_norm(module: nn.Module, seed: int) -> None:
    generator = torch.Generator().manual_seed(seed)
    for sub in module.modules():
        if isinstance(sub, nn.BatchNorm1d | nn.BatchNorm2d):
            n = sub.num_features
            sub.running_mean.copy_(torch.randn(n, generator=generator) * 0.3)
            sub.running_var.copy_(torch.rand(n, generator=generator) + 0.5)
            sub.weight.data.copy_(torch.randn(n, generator=generator))
            sub.bias.data.copy_(torch.randn(n, generator=generator) * 0.1)


def _model(name: str, seed: int = 0) -> Classifier:
    torch.manual_seed(seed)
    if name == "cnn":
        module = MnistCNN(channels=(3, 4), hidden=8, image_size=12)
        return Classifier(module, input_shape=(1, 12, 12), mean=0.13, std=0.31)
    if name == "cnn_bn":
        module = MnistCNN(channels=(3, 4), hidden=8, image_size=12, batch_norm=True, dropout=0.3)
        _randomise_batch_norm(module, seed)
        return Classifier(module, input_shape=(1, 12, 12))
    if name == "residual":
        module = _Residual()
        _randomise_batch_norm(module, seed)
        return Classifier(module, input_shape=(1, 12, 12), mean=0.5, std=0.25)
    if name == "mlp":
        module = nn.Sequential(
            nn.Linear(6, 10), nn.BatchNorm1d(10), nn.Sigmoid(), nn.Dropout(0.2), nn.Linear(10, 8), nn.ReLU(),
            nn.Linear(8, 3),
        )  # fmt: skip
        _randomise_batch_norm(module, seed)
        return Classifier(module, input_shape=(6,), bounds=(-1.0, 1.0), mean=[0.1] * 6, std=[0.5] * 6)
    if name == "conv_variety":  # strides, dilation, groups, overlapping padded pooling, per-channel normalisation
        module = nn.Sequential(
            nn.Conv2d(2, 4, 3, stride=2, padding=2, dilation=2), nn.ReLU(), nn.MaxPool2d(3, stride=2, padding=1),
            nn.Conv2d(4, 4, 3, padding=1, groups=2), nn.LeakyReLU(0.2), nn.AvgPool2d(3, stride=1, padding=1),
            nn.Flatten(), nn.Linear(64, 5),
        )  # fmt: skip
        return Classifier(module, input_shape=(2, 15, 15), mean=[0.2, 0.4], std=[0.3, 0.5])
    raise ValueError(name)


ARCHITECTURES = ("cnn", "cnn_bn", "residual", "mlp", "conv_variety")


def _inputs(model: Classifier, n: int, seed: int = 1) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    low, high = model.bounds
    return low + (high - low) * torch.rand((n, *model.input_shape), generator=generator)


def _samples(model: Classifier, x: torch.Tensor, eps: float, count: int, seed: int = 2) -> torch.Tensor:
    """Random points of the clipped ball, half of them corners (sign perturbations): (count, N, ...)."""
    generator = torch.Generator().manual_seed(seed)
    noise = torch.rand((count, *x.shape), generator=generator) * 2 - 1
    noise[: count // 2] = noise[: count // 2].sign()
    return (x + eps * noise).clamp(*model.bounds)


def _margins(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    margins = logits.gather(1, y[:, None]) - logits
    return margins.scatter(1, y[:, None], math.inf)


@pytest.mark.parametrize("arch", ARCHITECTURES)
@pytest.mark.parametrize("method", METHODS)
def test_bounds_contain_sampled_perturbations(arch, method):
    model = _model(arch)
    x = _inputs(model, 6)
    y = model.predict(x)
    eps = 0.03
    box = logit_bounds(model, x, eps, method=method)
    margins = margin_lower_bounds(model, x, y, eps, method=method)
    assert box.lower.shape == box.upper.shape == margins.shape == (6, model.num_classes)
    assert torch.isinf(margins.gather(1, y[:, None])).all()
    points = _samples(model, x, eps, 40)
    logits = model.logits(points.flatten(0, 1)).reshape(40, 6, -1)
    assert (logits >= box.lower - 1e-5).all() and (logits <= box.upper + 1e-5).all()
    sampled = torch.stack([_margins(z, y) for z in logits]).amin(0)
    assert (margins <= sampled + 1e-5).all()
    assert (box.upper - box.lower).min() > 0  # a real ball, not a point


@pytest.mark.parametrize("arch", ARCHITECTURES)
@pytest.mark.parametrize("method", METHODS)
def test_zero_eps_gives_the_exact_output(arch, method):
    model = _model(arch, seed=3)
    x = _inputs(model, 5)
    y = torch.arange(5) % model.num_classes
    logits = model.logits(x)
    box = logit_bounds(model, x, 0.0, method=method)
    torch.testing.assert_close(box.lower, logits, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(box.upper, logits, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(
        margin_lower_bounds(model, x, y, 0.0, method=method), _margins(logits, y), atol=1e-5, rtol=1e-5
    )


def _hand_model() -> Classifier:
    """h = relu(W1 x + b1) with W1 = [[1, -1], [1, 1], [1, 0]], b1 = [0.5, 0, -0.5];
    logits = W2 h with W2 = [[1, 1, 1], [1, -1, -1]]."""
    first, second = nn.Linear(2, 3), nn.Linear(3, 2, bias=False)
    with torch.no_grad():
        first.weight.copy_(torch.tensor([[1.0, -1.0], [1.0, 1.0], [1.0, 0.0]]))
        first.bias.copy_(torch.tensor([0.5, 0.0, -0.5]))
        second.weight.copy_(torch.tensor([[1.0, 1.0, 1.0], [1.0, -1.0, -1.0]]))
    return Classifier(nn.Sequential(first, nn.ReLU(), second), input_shape=(2,))


def test_hand_computed_two_layer_network():
    # x = (0.5, 0.5), eps = 0.1: x1, x2 in [0.4, 0.6]
    # h1 = x1 - x2 + 0.5 in [0.3, 0.7] (active), h2 = x1 + x2 in [0.8, 1.2] (active),
    # h3 = x1 - 0.5 in [-0.1, 0.1] (crossing: chord r3 <= 0.5 h3 + 0.05; u >= -l so r3 >= h3)
    # IBP: z0 = r1 + r2 + r3 in [0.3 + 0.8 + 0, 0.7 + 1.2 + 0.1] = [1.1, 2.0]
    #      z1 = r1 - r2 - r3 in [0.3 - 1.2 - 0.1, 0.7 - 0.8 - 0] = [-1.0, -0.1]
    # margin layer (y = 0): z0 - z1 = 0 r1 + 2 r2 + 2 r3 >= 1.6 (naive l0 - u1 would be 1.2)
    # CROWN: z0 >= h1 + h2 + h3 = 3 x1 >= 1.2;  z0 <= h1 + h2 + 0.5 h3 + 0.05 = 2.5 x1 + 0.3 <= 1.8
    #        z1 >= h1 - h2 - 0.5 h3 - 0.05 = -0.5 x1 - 2 x2 + 0.7 >= -0.8
    #        z1 <= h1 - h2 - h3 = -x1 - 2 x2 + 1 <= -0.2
    #        z0 - z1 >= 2 h2 + 2 h3 = 4 x1 + 2 x2 - 1 >= 1.4 (looser than IBP's margin layer here)
    model = _hand_model()
    x, y = torch.tensor([[0.5, 0.5]]), torch.tensor([0])
    ibp = logit_bounds(model, x, 0.1, method="ibp")
    torch.testing.assert_close(ibp.lower, torch.tensor([[1.1, -1.0]]))
    torch.testing.assert_close(ibp.upper, torch.tensor([[2.0, -0.1]]))
    crown = logit_bounds(model, x, 0.1, method="crown-ibp")
    torch.testing.assert_close(crown.lower, torch.tensor([[1.2, -0.8]]))
    torch.testing.assert_close(crown.upper, torch.tensor([[1.8, -0.2]]))
    torch.testing.assert_close(margin_lower_bounds(model, x, y, 0.1, method="ibp"), torch.tensor([[math.inf, 1.6]]))
    torch.testing.assert_close(margin_lower_bounds(model, x, y, 0.1), torch.tensor([[math.inf, 1.6]]))
    torch.testing.assert_close(
        margin_lower_bounds(model, x, y, 0.1, method="crown-ibp"), torch.tensor([[math.inf, 1.4]])
    )
    # the box is clipped to the input bounds [0, 1]: at x = (0.95, 0.5), x1 lies in [0.85, 1.0]
    edge = logit_bounds(model, torch.tensor([[0.95, 0.5]]), 0.1, method="ibp")
    # h1 in [0.75, 1.1], h2 in [1.25, 1.6], h3 in [0.35, 0.5]: z0 in [2.35, 3.2]
    torch.testing.assert_close(edge.lower[0, 0], torch.tensor(2.35))
    torch.testing.assert_close(edge.upper[0, 0], torch.tensor(3.2))


@pytest.mark.parametrize("arch", ("cnn", "cnn_bn", "mlp"))
def test_crown_ibp_is_tighter_on_average(arch):
    """Not elementwise (see the hand-computed case), but on random networks CROWN-IBP's margin
    bounds are higher on average; both stay below the sampled margins (previous test). ("residual"
    ends in ELU, which CROWN-IBP concretises with IBP, so there the two coincide.)"""
    gains = []
    for seed in range(3):
        model = _model(arch, seed=seed)
        x = _inputs(model, 8, seed=seed)
        y = model.predict(x)
        ibp = margin_lower_bounds(model, x, y, 0.02, method="ibp")
        crown = margin_lower_bounds(model, x, y, 0.02, method="crown-ibp")
        finite = torch.isfinite(ibp)
        gains.append(float((crown - ibp)[finite].mean()))
    assert min(gains) > 0, gains


def test_per_example_eps_matches_one_call_per_eps():
    model = _model("cnn")
    x = _inputs(model, 4)
    y = model.predict(x)
    eps = torch.tensor([0.0, 0.01, 0.02, 0.05])
    together = margin_lower_bounds(model, x, y, eps, method="crown-ibp", batch_size=3)
    for i in range(4):
        alone = margin_lower_bounds(model, x[i : i + 1], y[i : i + 1], float(eps[i]), method="crown-ibp")
        torch.testing.assert_close(together[i : i + 1], alone)


class _Unsupported(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 4)
        self.gelu = nn.GELU()
        self.out = nn.Linear(8, 2)

    def forward(self, x):
        h = self.gelu(self.fc(x))
        return self.out(torch.cat([h, h.abs()], 1))


def test_unsupported_modules_are_all_named_in_one_line():
    model = Classifier(_Unsupported(), input_shape=(4,))
    with pytest.raises(InputError) as info:
        margin_lower_bounds(model, torch.rand(2, 4), [0, 1], 0.1)
    message = str(info.value)
    assert "\n" not in message
    assert "gelu (GELU)" in message and "torch.cat" in message and ".abs()" in message


@pytest.mark.parametrize("mirrored", [False, True])
def test_a_torchscript_model_gets_one_clear_line(mirrored):
    """torch.fx cannot trace TorchScript (compiled, or the hookable mirror replaying its graph)."""
    from trustlab.models.scripted import hookable_script

    script = torch.jit.script(nn.Sequential(nn.Flatten(), nn.Linear(4, 2)))
    module = hookable_script(script, torch.rand(1, 4))[0] if mirrored else script
    with pytest.raises(InputError) as info:
        margin_lower_bounds(Classifier(module, input_shape=(4,)), torch.rand(2, 4), [0, 1], 0.1)
    assert str(info.value) == ERR_SCRIPTED


def test_bad_arguments_are_refused():
    model = _model("cnn")
    x = _inputs(model, 3)
    with pytest.raises(InputError, match="method must be one of"):
        certified(model, x, [0, 1, 2], 0.1, "crown")
    with pytest.raises(InputError, match="one value per example"):
        margin_lower_bounds(model, x, [0, 1, 2], torch.tensor([0.1, 0.2]))
    with pytest.raises(InputError, match="eps"):
        margin_lower_bounds(model, x, [0, 1, 2], -0.1)


def test_misclassified_examples_are_never_certified():
    model = _model("mlp")
    x = _inputs(model, 12)
    predicted = model.predict(x)
    wrong = (predicted + 1) % model.num_classes
    assert not certified(model, x, wrong, 0.0).any()
    assert certified(model, x, predicted, 0.0).all()


@pytest.mark.parametrize("method", METHODS)
def test_certified_radius_is_certified_below_and_not_at_the_upper_end(method):
    model = _model("mlp", seed=1)
    x = _inputs(model, 16, seed=4)
    y = model.predict(x)
    y[:3] = (y[:3] + 1) % model.num_classes  # three misclassified
    result = certified_radius(model, x, y, eps_max=0.5, tol=1 / 256, method=method, show_progress=False)
    assert result.clean_wrong[:3].all() and (result.radius[:3] == 0).all()
    correct = ~result.clean_wrong
    assert (result.radius[correct] > 0).any()
    assert ((result.upper - result.radius)[correct] <= 1 / 256).all()
    for fraction in (1.0, 0.5, 0.0):
        eps = result.radius * fraction
        assert certified(model, x, y, eps, method)[correct & (result.radius > 0)].all()
    below_max = correct & (result.upper < result.eps_max)
    assert not certified(model, x, y, result.upper, method)[below_max].any()
    # the curve is non-increasing and starts at the clean accuracy
    curve = result.curve([0.0, 0.01, 0.05, 0.1, 0.5])
    assert curve[0] == pytest.approx(float(correct.float().mean()))
    assert (curve[1:] <= curve[:-1]).all()
    assert result.certified_accuracy(0.05) == pytest.approx(float(curve[2]))
    with pytest.raises(InputError, match="eps_max"):
        result.certified_accuracy(0.6)


def test_ibp_radius_matches_a_grid_of_certificates():
    """IBP's certificate is monotone in eps: certified exactly on the grid points <= radius."""
    model = _model("cnn", seed=2)
    x = _inputs(model, 6, seed=5)
    y = model.predict(x)
    result = certified_radius(model, x, y, eps_max=0.1, tol=1 / 1024, method="ibp", show_progress=False)
    for eps in torch.linspace(0, 0.1, 9).tolist():
        expected = result.radius >= eps
        uncertain = (result.radius < eps) & (result.upper > eps)  # inside a bracket: either answer
        got = certified(model, x, y, eps, "ibp")
        assert (got == expected)[~uncertain].all()


@pytest.mark.parametrize("method", METHODS)
def test_pgd_never_flips_a_certified_example(method):
    model = _model("mlp", seed=4)
    x = _inputs(model, 16, seed=6)
    y = model.predict(x)
    radius = certified_radius(model, x, y, eps_max=0.2, tol=1 / 512, method=method, show_progress=False)
    keep = radius.radius > 0
    assert keep.sum() >= 4
    attack = PGD(steps=30, restarts=2, seed=1)
    result = attack.attack(model, x[keep], y[keep], eps=radius.radius[keep])
    assert not result.success.any()
    # ... while at ten times the radius PGD does flip some of them: the test is not vacuous
    bigger = attack.attack(model, x[keep], y[keep], eps=(radius.radius[keep] * 10).clamp(max=1.0))
    assert bigger.success.any()


def test_ibp_training_records_its_settings_and_raises_certified_accuracy():
    torch.manual_seed(0)
    n = 64
    generator = torch.Generator().manual_seed(0)
    x = torch.rand((n, 6), generator=generator) * 2 - 1
    y = (x[:, 0] + 0.5 * x[:, 1] > 0).long()
    module = nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 2))
    model = Classifier(module, input_shape=(6,), bounds=(-1.0, 1.0))
    before = model.copy()
    result = train(
        model,
        x,
        y,
        epochs=8,
        batch_size=16,
        learning_rate=1e-2,
        certifier=IntervalCertifier(),
        certified_eps=0.1,
        certified_warmup_epochs=1,
        certified_ramp_epochs=2,
        show_progress=False,
    )
    assert result.certifier == "IntervalCertifier(method='ibp')"
    assert (result.certified_eps, result.certified_warmup_epochs, result.certified_ramp_epochs) == (0.1, 1, 2)
    assert result.certified_kappa == 0.5
    assert type(result).from_dict(result.to_dict()) == result
    assert certified(model, x, y, 0.1).float().mean() > certified(before, x, y, 0.1).float().mean()
    with pytest.raises(InputError, match="certifier"):
        train(model, x, y, epochs=1, certified_eps=0.1, show_progress=False)
    with pytest.raises(InputError, match="certified_eps"):
        train(model, x, y, epochs=1, certifier=IntervalCertifier(), show_progress=False)


def test_shipped_certified_model_matches_its_record(reference_data):
    """The shipped IBP-trained CNN certifies at eps 0.1 about as its record says (first 200 test
    images), and far more than the naturally trained reference."""
    import json

    from trustlab.data import load_dataset
    from trustlab.models import load_reference_model
    from trustlab.models.reference import reference_path

    data = load_dataset("mnist", "test", root=reference_data)
    x, y = data.x[:200], data.y[:200]
    model = load_reference_model("mnist_cnn_certified")
    record = json.loads(reference_path("mnist_cnn_certified").with_suffix(".json").read_text())
    share = float(certified(model, x, y, 0.1, "ibp").float().mean())
    assert share == pytest.approx(1 - record["ibp_verified_error"]["0.1"], abs=0.1)
    assert float(certified(load_reference_model(), x, y, 0.1, "ibp").float().mean()) < share / 2
