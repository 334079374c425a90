"""Explanation metrics: hand-computed cases for each, and Quantus as the reference where it has one.

The Quantus comparisons skip unless quantus is importable; they run in the benchmark environment:
``.venv-bench/bin/python -m pytest tests/explain/test_metrics.py``.
"""

from __future__ import annotations

import copy
import math
import warnings

import numpy as np
import pytest
import torch
from torch import nn

from trustlab.core import stats
from trustlab.core.exceptions import InputError
from trustlab.explain import metrics as M
from trustlab.explain.metrics.randomisation import _reinitialise
from trustlab.models import Classifier


@pytest.fixture(scope="module", autouse=True)
def _one_thread(one_thread):
    """Models run many times here (see ``one_thread``)."""


def randn(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def rand(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.rand(*shape, generator=torch.Generator().manual_seed(seed))


def input_gradient(model: Classifier, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Plain gradient of the target logit with respect to the input (the saliency map)."""
    x = x.clone().requires_grad_(True)
    logit = model.forward(x).gather(1, target[:, None]).sum()
    return torch.autograd.grad(logit, x)[0]


def linear_model(weights: list[float]) -> Classifier:
    """Two classes on a 1 x 2 x 2 image: logit 0 = w . x, logit 1 = 0, so p(0) = sigmoid(w . x)."""
    module = nn.Sequential(nn.Flatten(), nn.Linear(4, 2, bias=False))
    with torch.no_grad():
        module[1].weight.zero_()
        module[1].weight[0] = torch.tensor(weights)
    return Classifier(module, input_shape=(1, 2, 2), num_classes=2)


def sigmoid(v: float) -> float:
    return 1 / (1 + math.exp(-v))


def test_the_package_exports_every_family():
    for name in M.__all__:
        assert getattr(M, name).__module__.startswith(("trustlab.explain.metrics.", "trustlab.core.stats")), name
    assert M.spearman is stats.spearman and M.pearson is stats.pearson  # re-exported for existing callers
    assert not hasattr(M, "copy_classifier") and not hasattr(M, "gaussian_blur")


# ============================================================================ alignment ======
def test_cosine_alignment_by_hand():
    x = rand(3, 2, 4, 4)
    torch.testing.assert_close(M.cosine_alignment(x, x), torch.ones(3))
    torch.testing.assert_close(M.cosine_alignment(x, -x), -torch.ones(3))
    pair = torch.tensor([1.0, 0.0]).view(1, 1, 1, 2)
    torch.testing.assert_close(
        M.cosine_alignment(pair, torch.tensor([1.0, 1.0]).view(1, 1, 1, 2)), torch.tensor([0.5**0.5])
    )
    # a one-channel map is broadcast over channels: an image with equal channels aligns perfectly with it
    grey = rand(2, 1, 4, 4)
    torch.testing.assert_close(M.cosine_alignment(grey.expand(2, 3, 4, 4), grey), torch.ones(2))
    zeros = torch.zeros(2, 1, 4, 4)
    assert M.cosine_alignment(grey, zeros).tolist() == [0.0, 0.0]
    assert M.cosine_alignment(zeros, grey).tolist() == [0.0, 0.0]


def test_etmann_alignment_is_the_absolute_projection_on_the_gradient():
    x = torch.tensor([3.0, 4.0]).view(1, 1, 1, 2)
    g = torch.tensor([1.0, 0.0]).view(1, 1, 1, 2)
    assert M.etmann_alignment(x, g).item() == pytest.approx(3.0)
    assert M.etmann_alignment(x, -2 * g).item() == pytest.approx(3.0)  # sign and scale of g do not matter
    assert M.etmann_alignment(x, g, normalise=True).item() == pytest.approx(3 / 5)
    assert M.etmann_alignment(x, torch.zeros_like(g)).item() == 0.0
    assert M.etmann_alignment(torch.zeros_like(x), g, normalise=True).item() == 0.0


# ============================================================================ compactness ====
def test_gini_by_hand():
    n = 16
    one_hot = torch.zeros(1, 1, 4, 4)
    one_hot[0, 0, 1, 2] = -3.0  # absolute values: the sign does not matter
    assert M.gini(one_hot).item() == pytest.approx((n - 1) / n)
    assert M.gini(torch.full((1, 1, 4, 4), 0.7)).item() == pytest.approx(0.0, abs=1e-7)
    assert M.gini(torch.zeros(1, 1, 4, 4)).item() == 0.0  # no mass: treated as uniform
    # sorted [0, 0, 1, 3], weights 2i - n - 1 = (-3, -1, 1, 3): (1 + 9) / (4 * 4)
    assert M.gini(torch.tensor([[3.0, 0.0, -1.0, 0.0]])).item() == pytest.approx(10 / 16)


def test_gini_equals_the_mean_absolute_difference_form():
    a = randn(5, 1, 6, 6).abs()
    v = a.flatten(1).double()
    n = v.shape[1]
    brute = (v[:, :, None] - v[:, None, :]).abs().sum((1, 2)) / (2 * n * v.sum(1))
    torch.testing.assert_close(M.gini(a).double(), brute, atol=1e-6, rtol=0)


def test_entropy_complexity_by_hand():
    n = 16
    assert M.entropy_complexity(torch.ones(1, 1, 4, 4)).item() == pytest.approx(math.log(n))
    assert M.entropy_complexity(torch.zeros(1, 1, 4, 4)).item() == pytest.approx(math.log(n))
    one_hot = torch.zeros(1, 1, 4, 4)
    one_hot[0, 0, 0, 0] = 2.0
    assert M.entropy_complexity(one_hot).item() == pytest.approx(0.0, abs=1e-7)
    # p = (1/4, 1/4, 1/2): entropy 1.5 log 2
    assert M.entropy_complexity(torch.tensor([[1.0, -1.0, 2.0]])).item() == pytest.approx(1.5 * math.log(2))


def test_top_k_mass_by_hand():
    a = torch.tensor([[4.0, -3.0, 2.0, 1.0]])
    assert M.top_k_mass(a, 0.25).item() == pytest.approx(0.4)
    assert M.top_k_mass(a, 0.5).item() == pytest.approx(0.7)
    assert M.top_k_mass(a, 1.0).item() == pytest.approx(1.0)
    assert M.top_k_mass(torch.ones(1, 1, 10, 10)).item() == pytest.approx(0.1)
    assert M.top_k_mass(torch.zeros(1, 1, 10, 10)).item() == pytest.approx(0.1)  # no mass: uniform
    for bad in (0, 0.0, 1.5, -0.1, True):
        with pytest.raises(InputError, match="fraction must lie in"):
            M.top_k_mass(a, bad)


def test_spatial_spread_by_hand():
    single = torch.zeros(1, 1, 5, 7)
    single[0, 0, 2, 3] = 1.0
    assert M.spatial_spread(single).item() == pytest.approx(0.0, abs=1e-7)
    corners = torch.zeros(1, 1, 5, 7)
    corners[0, 0, 0, 0] = corners[0, 0, 4, 6] = -2.0
    assert M.spatial_spread(corners).item() == pytest.approx(1.0)
    # two neighbours: every unit of mass is 0.5 from the centroid; half diagonal of a 3x3 image is sqrt(2)
    pair = torch.zeros(1, 2, 3, 3)
    pair[0, 0, 1, 0] = 1.0
    pair[0, 1, 1, 1] = 1.0  # mass of a pixel is summed over channels
    assert M.spatial_spread(pair).item() == pytest.approx(0.5 / math.sqrt(2))
    uniform = M.spatial_spread(torch.ones(1, 1, 200, 200)).item()
    assert uniform == pytest.approx(1 / math.sqrt(3), abs=0.01)
    assert M.spatial_spread(torch.zeros(1, 1, 200, 200)).item() == pytest.approx(uniform)
    assert M.spatial_spread(torch.ones(2, 3, 1, 1)).tolist() == [0.0, 0.0]


# ============================================================================ faithfulness ===
def test_deletion_curve_on_a_model_whose_probability_is_known():
    model = linear_model([4.0, 3.0, 2.0, 1.0])
    x = torch.ones(1, 1, 2, 2)
    a = torch.tensor([1.0, 4.0, 3.0, 2.0]).view(1, 1, 2, 2)  # removal order: pixels 1, 2, 3, 0
    curve = M.deletion_curve(model, x, a, 0, steps=4)
    expected = [sigmoid(10), sigmoid(7), sigmoid(5), sigmoid(4), sigmoid(0)]
    torch.testing.assert_close(curve.fractions, torch.tensor([0.0, 0.25, 0.5, 0.75, 1.0], dtype=torch.float64))
    torch.testing.assert_close(curve.scores, torch.tensor([expected]))
    trapezoid = sum((p + q) / 2 * 0.25 for p, q in zip(expected[:-1], expected[1:], strict=True))
    assert M.deletion_auc(model, x, a, 0, steps=4).item() == pytest.approx(trapezoid, rel=1e-6)
    # two equal chunks of two pixels; the baseline replaces, it does not zero
    two = M.deletion_curve(model, x, a, 0, steps=2, baseline=0.5)
    torch.testing.assert_close(two.scores, torch.tensor([[sigmoid(10), sigmoid(5 + 0.5 * 5), sigmoid(0.5 * 10)]]))


def test_insertion_curve_reveals_pixels_in_order():
    model = linear_model([4.0, 3.0, 2.0, 1.0])
    x = torch.ones(1, 1, 2, 2)
    a = torch.tensor([1.0, 4.0, 3.0, 2.0]).view(1, 1, 2, 2)
    curve = M.insertion_curve(model, x, a, 0, steps=4, baseline=0.0)
    expected = [sigmoid(0), sigmoid(3), sigmoid(5), sigmoid(6), sigmoid(10)]
    torch.testing.assert_close(curve.scores, torch.tensor([expected]))
    # Petsiuk's start is the blurred image: a constant image is its own blur, so the curve is flat
    flat = M.insertion_curve(model, x, a, 0, steps=4)
    torch.testing.assert_close(flat.scores, torch.full((1, 5), sigmoid(10)))


def test_ties_are_broken_in_memory_order():
    model = linear_model([4.0, 3.0, 2.0, 1.0])
    curve = M.deletion_curve(model, torch.ones(1, 1, 2, 2), torch.zeros(1, 1, 2, 2), 0, steps=4)
    expected = [sigmoid(10), sigmoid(6), sigmoid(3), sigmoid(1), sigmoid(0)]
    torch.testing.assert_close(curve.scores, torch.tensor([expected]))


def test_insertion_blur_keeps_constants_and_mass():
    const = torch.full((2, 3, 9, 9), 0.3)
    torch.testing.assert_close(M.insertion_blur(const), const)
    img = rand(2, 3, 28, 28)
    blurred = M.insertion_blur(img)
    assert blurred.shape == img.shape
    assert blurred.std() < img.std()


def test_curves_do_not_depend_on_batch_size(tiny_cnn):
    x, a = rand(6, 1, 28, 28), randn(6, 1, 28, 28, seed=1)
    one = M.deletion_curve(tiny_cnn, x, a, steps=7, batch_size=1)
    many = M.deletion_curve(tiny_cnn, x, a, steps=7, batch_size=100)
    torch.testing.assert_close(one.scores, many.scores)
    assert one.scores.shape == (6, 8) and one.auc.shape == (6,)
    torch.testing.assert_close(one.scores[:, 0], tiny_cnn.proba(x).max(1).values)  # start: predicted class
    ins = M.insertion_curve(tiny_cnn, x, a, [1, 2, 3, 4, 5, 6], steps=7, batch_size=5)
    torch.testing.assert_close(ins.scores[:, -1], tiny_cnn.proba(x)[torch.arange(6), torch.arange(1, 7)])


class Counting(nn.Module):
    """``inner`` counting the examples it evaluates."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner
        self.examples = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.examples += x.shape[0]
        return self.inner(x)


def test_steps_that_change_nothing_reuse_the_previous_probability(tiny_cnn):
    x = rand(3, 1, 28, 28)
    x[:, :, :, :14] = 0.0  # a black left half: deleting it with baseline 0 changes nothing
    a = randn(3, 1, 28, 28, seed=3)
    a[:, :, :, 14:] += 10.0  # the right half goes first, so the last half of the steps only delete zeros
    counting = Counting(tiny_cnn.module)
    model = Classifier(counting, input_shape=(1, 28, 28), num_classes=10, mean=0.13, std=0.31)
    steps, target = 56, tiny_cnn.predict(x)
    curve = M.deletion_curve(model, x, a, target, steps=steps, batch_size=50)
    assert counting.examples == 3 * (steps // 2 + 1)
    # the reference: every step evaluated
    order = torch.argsort(-a.flatten(1), dim=1, stable=True)
    expected = []
    for count in curve.fractions.mul(784).round().long().tolist():
        removed = torch.zeros(3, 784, dtype=torch.bool).scatter(1, order[:, :count], True).view_as(x)
        expected.append(tiny_cnn.proba(torch.where(removed, 0.0, x))[torch.arange(3), target])
    torch.testing.assert_close(curve.scores, torch.stack(expected, 1))


def test_pixel_flipping_is_the_deletion_curve_without_its_start(tiny_cnn):
    x, a = rand(4, 1, 28, 28), randn(4, 1, 28, 28, seed=2)
    target = tiny_cnn.predict(x)
    curve = M.pixel_flipping(tiny_cnn, x, a, target, features_in_step=28, batch_size=64)
    deletion = M.deletion_curve(tiny_cnn, x, a, target, steps=28, batch_size=64)
    assert curve.shape == (4, 28)
    torch.testing.assert_close(curve, deletion.scores[:, 1:])
    ragged = M.pixel_flipping(tiny_cnn, x, a, target, features_in_step=100)  # 784 = 7 * 100 + 84
    assert ragged.shape == (4, 8)
    torch.testing.assert_close(ragged[:, -1], deletion.scores[:, -1])


def test_faithfulness_errors(tiny_cnn):
    x, a = rand(2, 1, 28, 28), randn(2, 1, 28, 28)
    with pytest.raises(InputError, match="steps must be an integer between 1 and the number of features"):
        M.deletion_auc(tiny_cnn, x, a, steps=0)
    with pytest.raises(InputError, match=r"\(784\), got 785"):
        M.deletion_auc(tiny_cnn, x, a, steps=785)
    with pytest.raises(InputError, match="baseline must be a number, 'blur'"):
        M.deletion_auc(tiny_cnn, x, a, baseline="blur")
    with pytest.raises(InputError, match="baseline must be"):
        M.deletion_auc(tiny_cnn, x, a, baseline=torch.zeros(3, 28, 28))
    with pytest.raises(InputError, match=r"a must have the shape of x \(2, 1, 28, 28\)"):
        M.deletion_auc(tiny_cnn, x, a[:, :, :14])
    with pytest.raises(
        InputError, match=r"target must be one index or 2 class indices in 0\.\.9 \(integers\), got \[1, 10\]"
    ):
        M.deletion_auc(tiny_cnn, x, a, target=[1, 10])
    with pytest.raises(InputError, match="features_in_step must be an integer"):
        M.pixel_flipping(tiny_cnn, x, a, features_in_step=0)
    with pytest.raises(InputError, match="batch_size must be a positive integer"):
        M.insertion_auc(tiny_cnn, x, a, batch_size=0)
    a[0, 0, 3, 3] = math.nan
    with pytest.raises(InputError, match="a contain 1 NaN or infinite values"):
        M.deletion_auc(tiny_cnn, x, a)


# ============================================================================ randomisation ==
def test_randomisation_leaves_the_model_and_the_global_rng_alone(tiny_cnn):
    x = rand(5, 1, 28, 28)
    before = {k: v.clone() for k, v in tiny_cnn.module.state_dict().items()}
    rng = torch.get_rng_state()
    result = M.model_parameter_randomisation(tiny_cnn, x, None, input_gradient, seed=3)
    for k, v in tiny_cnn.module.state_dict().items():
        assert torch.equal(v, before[k]), k
    assert torch.equal(torch.get_rng_state(), rng)
    assert result.layers == ("fc2", "fc1", "features.3", "features.0")
    assert result.scores.shape == (4, 5)
    assert (result.scores < 0.9).all()  # gradients depend on every layer's weights
    again = M.model_parameter_randomisation(tiny_cnn, x, None, input_gradient, seed=3)
    torch.testing.assert_close(result.scores, again.scores)
    other = M.model_parameter_randomisation(tiny_cnn, x, None, input_gradient, seed=4)
    assert not torch.allclose(result.scores, other.scores)
    assert result.to_dict()["layers"] == list(result.layers)


def test_a_map_that_ignores_the_model_fails_the_check(tiny_cnn):
    x = rand(4, 1, 28, 28)
    result = M.model_parameter_randomisation(tiny_cnn, x, 0, lambda m, x, t: x.clone(), order="bottom_up")
    assert result.layers == ("features.0", "features.3", "fc1", "fc2")
    torch.testing.assert_close(result.scores, torch.ones(4, 4))


def test_independent_order_randomises_one_layer_at_a_time(tiny_cnn):
    x = rand(4, 1, 28, 28)
    target = tiny_cnn.predict(x)
    cascading = M.model_parameter_randomisation(tiny_cnn, x, target, input_gradient, similarity="pearson")
    independent = M.model_parameter_randomisation(
        tiny_cnn, x, target, input_gradient, order="independent", similarity="pearson"
    )
    assert independent.layers == ("features.0", "features.3", "fc1", "fc2")
    # only fc2 randomised, in both: the first cascading step and the last independent one
    torch.testing.assert_close(cascading.scores[0], independent.scores[3])
    assert not torch.allclose(cascading.scores[3], independent.scores[0])


def test_reinitialisation_matches_reset_parameters_under_the_same_seed():
    for layer in (nn.Linear(7, 3), nn.Conv2d(2, 4, 3), nn.ConvTranspose2d(2, 4, 3), nn.BatchNorm2d(3)):
        ours = copy.deepcopy(layer)
        _reinitialise("layer", ours, seed=11)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(11)
            layer.reset_parameters()
        for (name, p), q in zip(layer.named_parameters(), ours.parameters(), strict=True):
            assert torch.equal(p, q), (type(layer).__name__, name)


def test_randomisation_errors(tiny_cnn):
    x = rand(2, 1, 28, 28)
    with pytest.raises(InputError, match="order must be one of top_down, bottom_up, independent, got 'sideways'"):
        M.model_parameter_randomisation(tiny_cnn, x, None, input_gradient, order="sideways")
    with pytest.raises(InputError, match="similarity must be one of spearman, pearson or a callable"):
        M.model_parameter_randomisation(tiny_cnn, x, None, input_gradient, similarity="ssim")
    with pytest.raises(InputError, match="explain_fn must return 2 maps"):
        M.model_parameter_randomisation(tiny_cnn, x, None, lambda m, x, t: x[:1])
    no_params = Classifier(nn.Flatten(), input_shape=(1, 2, 2), num_classes=4)
    with pytest.raises(InputError, match="needs a model with parameters; Flatten has none"):
        M.model_parameter_randomisation(no_params, torch.zeros(1, 1, 2, 2), 0, lambda m, x, t: x)


# ============================================================================ Quantus ========
@pytest.fixture()
def quantus():
    module = pytest.importorskip("quantus")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield module


@pytest.fixture()
def mnist_like(tiny_cnn):
    x = rand(8, 1, 28, 28, seed=5)
    y = tiny_cnn.predict(x)
    return tiny_cnn, x, y, input_gradient(tiny_cnn, x, y)


def test_sparseness_and_complexity_match_quantus(quantus, mnist_like):
    model, x, y, a = mnist_like
    kwargs = {"model": model.as_module().eval(), "x_batch": x.numpy(), "y_batch": y.numpy()}
    sparseness = quantus.Sparseness(disable_warnings=True)(a_batch=a.numpy().copy(), **kwargs)
    np.testing.assert_allclose(M.gini(a).numpy(), sparseness, atol=1e-4, rtol=0)
    complexity = quantus.Complexity(disable_warnings=True)(a_batch=a.numpy().copy(), **kwargs)
    np.testing.assert_allclose(M.entropy_complexity(a).numpy(), complexity, atol=1e-4, rtol=0)


def test_pixel_flipping_matches_quantus(quantus, mnist_like):
    model, x, y, a = mnist_like
    metric = quantus.PixelFlipping(features_in_step=28, perturb_baseline=0.0, disable_warnings=True)
    theirs = np.asarray(
        metric(model=model.as_module().eval(), x_batch=x.numpy(), y_batch=y.numpy(), a_batch=a.numpy().copy())
    )
    ours = M.pixel_flipping(model, x, a, y, features_in_step=28)
    np.testing.assert_allclose(ours.numpy(), theirs, atol=1e-4, rtol=0)
    # Quantus's per-sample AUC helper is the trapezoid rule with unit spacing (numpy.trapz, gone in numpy 2.4)
    np.testing.assert_allclose(
        torch.trapezoid(ours, dim=1).numpy(), np.trapezoid(theirs, dx=1, axis=1), atol=1e-4, rtol=0
    )


def test_mprt_matches_quantus(quantus, mnist_like):
    model, x, y, a = mnist_like

    def quantus_gradient(model, inputs, targets, **kwargs):
        xt = torch.as_tensor(inputs).clone().requires_grad_(True)
        logit = model(xt).gather(1, torch.as_tensor(targets).long()[:, None]).sum()
        return torch.autograd.grad(logit, xt)[0].numpy()

    theirs = quantus.MPRT(seed=41, disable_warnings=True)(
        model=model.as_module().eval(),
        x_batch=x.numpy(),
        y_batch=y.numpy(),
        a_batch=a.numpy().copy(),
        explain_func=quantus_gradient,
        batch_size=8,
    )
    ours = M.model_parameter_randomisation(model, x, y, input_gradient, seed=42, original=a)
    layers = [name for name in theirs if name != "original"]
    assert [name.removeprefix("inner.") for name in layers] == list(ours.layers)
    np.testing.assert_allclose(ours.scores.numpy(), np.array([theirs[name] for name in layers]), atol=1e-4, rtol=0)
