"""Randomised smoothing: CERTIFY and PREDICT against closed forms and hand-computed bounds."""

from __future__ import annotations

import math
from statistics import NormalDist

import numpy as np
import pytest
import torch
from torch import nn

from trustlab.core.exceptions import InputError
from trustlab.core.results import Record
from trustlab.models.classifier import Classifier
from trustlab.robustness.smoothing import (
    SmoothedPrediction,
    SmoothingResult,
    binomial_test_half,
    certify,
    clopper_pearson_lower,
    smoothed_predict,
)

PHI_INV = NormalDist().inv_cdf


class RandomLogits(nn.Module):
    """Logits drawn at random, independent of the input: no class dominates under any noise."""

    def __init__(self, classes: int = 10) -> None:
        super().__init__()
        self.classes = classes
        self.generator = torch.Generator().manual_seed(123)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.randn(x.shape[0], self.classes, generator=self.generator)


class Constant(nn.Module):
    """Always class ``k``."""

    def __init__(self, k: int, classes: int = 10) -> None:
        super().__init__()
        self.k, self.classes = k, classes

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.zeros(x.shape[0], self.classes)
        out[:, self.k] = 1.0
        return out


class Linear(nn.Module):
    """Binary f(x) = [w.x + b > 0]: logits (0, w.x + b)."""

    def __init__(self, w: torch.Tensor, b: float) -> None:
        super().__init__()
        self.w, self.b = w, b

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        score = x.flatten(1) @ self.w + self.b
        return torch.stack([torch.zeros_like(score), score], 1)


class Threshold(nn.Module):
    """Class 0 if the first feature exceeds 1/2, else class 1: exactly 50/50 under noise at x0 = 1/2."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        first = x.flatten(1)[:, 0]
        return torch.stack([first - 0.5, 0.5 - first], 1)


def wrap(module: nn.Module, shape: tuple[int, ...], classes: int, batch_size: int = 4096) -> Classifier:
    return Classifier(module, input_shape=shape, num_classes=classes, bounds=None, batch_size=batch_size)


def test_abstains_on_a_model_that_outputs_noise():
    model = wrap(RandomLogits(), (1, 4, 4), 10)
    x = torch.rand(12, 1, 4, 4)
    y = torch.zeros(12, dtype=torch.long)
    result = certify(model, x, y, sigma=0.25, n0=100, n=2000, show_progress=False)
    assert result.abstention_rate == 1.0
    assert set(result.prediction) == {-1} and set(result.radius) == {0.0}
    assert max(result.pa_lower) < 0.2  # about 1/10 of the draws each
    assert result.certified_accuracy(0.0) == 0.0
    predicted = smoothed_predict(model, x, sigma=0.25, n=2000, show_progress=False)
    assert predicted.abstention_rate == 1.0


def test_constant_classifier_gets_the_hand_computed_clopper_pearson_bound():
    k, n, alpha, sigma = 3, 1000, 0.001, 0.5
    model = wrap(Constant(k), (2, 3, 3), 10, batch_size=700)  # chunks straddle examples
    x = torch.rand(5, 2, 3, 3)
    result = certify(model, x, torch.full((5,), k), sigma=sigma, n0=100, n=n, alpha=alpha, show_progress=False)
    bound = alpha ** (1 / n)  # the only p with P(Bin(n, p) >= n) = p^n = alpha
    assert result.prediction == (k,) * 5 and result.counts == (n,) * 5
    assert np.allclose(result.pa_lower, bound, rtol=1e-12, atol=0)
    assert np.allclose(result.radius, sigma * PHI_INV(bound), rtol=1e-9)
    assert result.forward_calls == 5 * (100 + n)
    assert result.certified_accuracy(sigma * PHI_INV(bound) - 1e-9) == 1.0
    assert result.certified_accuracy(sigma * PHI_INV(bound) + 1e-6) == 0.0
    assert np.allclose(result.linf_radius, np.asarray(result.radius) / math.sqrt(18))


def test_linear_classifier_radius_is_sound_and_tight():
    torch.manual_seed(0)
    d, sigma, n = 5, 0.5, 100_000
    w, b = torch.randn(d), 0.3
    norm = float(w.norm())
    distance = torch.linspace(-1.1, 1.1, 23)  # signed distance to the boundary w.x + b = 0
    base = torch.randn(23, d)
    base = base - ((base @ w + b) / norm**2)[:, None] * w  # onto the boundary
    x = base + distance[:, None] * (w / norm)
    y = (distance > 0).long()
    model = wrap(Linear(w, b), (d,), 2, batch_size=1 << 16)
    result = certify(model, x, y, sigma=sigma, n0=100, n=n, alpha=0.001, seed=1, show_progress=False)
    true = (x @ w + b).abs() / norm  # exactly |distance|; g(x) has P = Phi((w.x + b) / (sigma ||w||))
    radius = torch.tensor(result.radius, dtype=torch.float64)
    assert (radius <= true.double() + 1e-9).all(), "a certified radius exceeds the distance to the boundary"
    certified = ~torch.from_numpy(result.abstained)
    assert (torch.tensor(result.prediction)[certified] == y[certified]).all()
    # large n: close to the truth wherever P is away from 1/2 and 1
    p_true = torch.tensor([NormalDist().cdf(float(t) / sigma) for t in true])
    informative = (p_true > 0.6) & (p_true < 0.99)
    assert informative.sum() >= 10
    assert (radius[informative] >= 0.9 * true[informative].double()).all()
    assert (radius[informative] >= true[informative].double() - 0.05).all()
    assert (torch.tensor(result.counts) >= 0).all() and result.forward_calls == 23 * (100 + n)


def test_certify_is_deterministic_given_the_seed():
    torch.manual_seed(0)
    w = torch.randn(4)
    model = wrap(Linear(w, 0.0), (4,), 2, batch_size=300)
    x = torch.randn(6, 4) * 0.3
    y = torch.zeros(6, dtype=torch.long)
    first = certify(model, x, y, sigma=1.0, n0=50, n=1000, seed=7, show_progress=False)
    again = certify(model, x, y, sigma=1.0, n0=50, n=1000, seed=7, show_progress=False)
    other = certify(model, x, y, sigma=1.0, n0=50, n=1000, seed=8, show_progress=False)
    assert first.counts == again.counts and first.radius == again.radius and first.selected == again.selected
    assert first.counts != other.counts
    assert x.equal(x.clone())  # inputs untouched


def test_predict_abstains_at_the_binomial_tests_rate_on_a_fifty_fifty_model():
    n, alpha, examples = 100, 0.05, 4000
    model = wrap(Threshold(), (3,), 2, batch_size=1 << 15)
    x = torch.full((examples, 3), 0.5)
    result = smoothed_predict(model, x, sigma=0.3, n=n, alpha=alpha, seed=0, show_progress=False)
    # hand-computed: reject when 2 P(K >= max(k, n - k)) <= alpha, K ~ Bin(100, 1/2); that is |k - 50| >= 11
    tail = [sum(math.comb(n, i) for i in range(j, n + 1)) / 2**n for j in range(n + 1)]
    reject = [min(1.0, 2 * tail[max(k, n - k)]) <= alpha for k in range(n + 1)]
    rate = sum(math.comb(n, k) / 2**n for k in range(n + 1) if reject[k])
    assert rate == pytest.approx(2 * tail[61])
    answered = 1 - result.abstention_rate
    assert abs(answered - rate) < 5 * math.sqrt(rate * (1 - rate) / examples)
    assert rate <= alpha
    assert isinstance(result, SmoothedPrediction) and result.forward_calls == examples * n


def test_predict_answers_a_dominant_class():
    model = wrap(Constant(2, classes=4), (3,), 4)
    result = smoothed_predict(model, torch.zeros(3, 3), sigma=1.0, n=200, show_progress=False)
    assert result.prediction == (2, 2, 2) and max(result.p_value) < 1e-50


@pytest.mark.parametrize(
    ("options", "name"),
    [
        ({"sigma": 0.0}, "sigma"),
        ({"sigma": -0.1}, "sigma"),
        ({"sigma": float("nan")}, "sigma"),
        ({"sigma": float("inf")}, "sigma"),
        ({"sigma": "0.25"}, "sigma"),
        ({"n0": 0}, "n0"),
        ({"n0": 2.5}, "n0"),
        ({"n": -3}, "n"),
        ({"n": True}, "n"),
        ({"alpha": 0.0}, "alpha"),
        ({"alpha": 1.0}, "alpha"),
        ({"alpha": 1.5}, "alpha"),
        ({"seed": -1}, "seed"),
        ({"batch_size": 0}, "batch_size"),
    ],
)
def test_bad_parameters_raise_input_errors_naming_them(options, name):
    model = wrap(Constant(0, classes=2), (3,), 2)
    settings = {"sigma": 0.25, "n0": 10, "n": 10} | options
    with pytest.raises(InputError, match=rf"^{name} must"):
        certify(model, torch.zeros(2, 3), torch.zeros(2, dtype=torch.long), show_progress=False, **settings)
    if name != "n0":
        settings.pop("n0")
        with pytest.raises(InputError, match=rf"^{name} must"):
            smoothed_predict(model, torch.zeros(2, 3), show_progress=False, **settings)


def test_bad_inputs_and_labels_are_refused():
    model = wrap(Constant(0, classes=2), (3,), 2)
    with pytest.raises(InputError):
        certify(model, torch.zeros(2, 4), torch.zeros(2, dtype=torch.long), sigma=0.1, show_progress=False)
    with pytest.raises(InputError):
        certify(model, torch.zeros(2, 3), torch.tensor([0, 5]), sigma=0.1, show_progress=False)


def test_clopper_pearson_lower_bound():
    scipy_stats = pytest.importorskip("scipy.stats")
    alpha = 0.001
    k = np.array([0, 1, 7, 50, 99, 100, 5000, 9999, 10000])
    n = np.array([100, 100, 100, 100, 100, 100, 10000, 10000, 10000])
    lower = clopper_pearson_lower(k, n, alpha)
    assert lower[0] == 0.0
    assert lower[5] == pytest.approx(alpha ** (1 / 100), rel=1e-12)
    assert lower[8] == pytest.approx(alpha ** (1 / 10000), rel=1e-12)
    # the definition: the p at which seeing k or more successes has probability alpha
    positive = k > 0
    tail = scipy_stats.binom.sf(k[positive] - 1, n[positive], lower[positive])
    assert np.allclose(tail, alpha, rtol=1e-6)
    # scipy's own exact interval: a two-sided 1 - 2 alpha interval's lower end is the one-sided 1 - alpha bound
    for ki, ni, li in zip(k, n, lower):
        ci = scipy_stats.binomtest(int(ki), int(ni)).proportion_ci(confidence_level=1 - 2 * alpha, method="exact")
        assert li == pytest.approx(ci.low, rel=1e-9, abs=1e-15)


def test_binomial_test_half_matches_scipy():
    scipy_stats = pytest.importorskip("scipy.stats")
    cases = [(0, 0), (0, 1), (1, 1), (5, 10), (6, 10), (61, 100), (60, 100), (39, 100), (130, 200), (1000, 1000)]
    got = binomial_test_half([k for k, _ in cases], [m for _, m in cases])
    for (k, m), p in zip(cases, got):
        expected = 1.0 if m == 0 else scipy_stats.binomtest(k, m, 0.5).pvalue
        assert p == pytest.approx(expected, rel=1e-9), (k, m)


def test_result_accuracy_curve_and_json():
    result = SmoothingResult(
        sigma=0.25,
        n0=100,
        n=1000,
        alpha=0.001,
        seed=0,
        input_dim=4,
        labels=(0, 1, 2, 3),
        prediction=(0, 1, -1, 2),
        selected=(0, 1, 2, 2),
        counts=(990, 800, 400, 999),
        pa_lower=(0.98, 0.76, 0.36, 0.99),
        radius=(0.8, 0.3, 0.0, 0.9),
        correct=(True, True, False, False),
        forward_calls=4400,
        seconds=2.0,
    )
    assert result.abstention_rate == 0.25 and result.seconds_per_example == 0.5
    assert result.certified_accuracy(0.0) == 0.5
    assert result.certified_accuracy(0.5) == 0.25
    assert result.certified_accuracy(0.85) == 0.0
    assert result.curve([0.0, 0.3, 0.5, 1.0]).tolist() == [0.5, 0.5, 0.25, 0.0]
    assert result.linf_radius.tolist() == [0.4, 0.15, 0.0, 0.45]  # radius / sqrt(4)
    assert result.certified_accuracy(0.2, norm="linf") == 0.25
    with pytest.raises(InputError, match="norm"):
        result.certified_accuracy(0.1, norm="l1")
    with pytest.raises(InputError, match="radius"):
        result.certified_accuracy(-1.0)
    assert Record.from_json(result.to_json()) == result


def test_noise_trained_reference_model_is_shipped_and_certifies_sample_digits():
    import json
    from importlib import resources

    from trustlab.data import load_dataset
    from trustlab.models import load_reference_model

    model = load_reference_model("mnist_cnn_noise")
    record = json.loads(resources.files("trustlab.models.weights").joinpath("mnist_cnn_noise.json").read_text())
    assert record["weights_sha256"] == model.weights_sha256() and record["recipe"]["noise_sigma"] == 0.25
    data = load_dataset("mnist", "sample").subset(slice(0, 6))
    result = certify(model, data.x, data.y, sigma=0.25, n0=50, n=200, show_progress=False)
    assert result.certified_accuracy(0.0) >= 0.75 and max(result.radius) > 0.3


def test_cli_certify_smoothing_writes_a_report_section(capsys, tmp_path):
    import json

    from cli_helpers import run_cli

    code, out, err = run_cli(
        capsys, "robustness", "--model", "mnist_cnn_noise", "--dataset", "mnist", "--split", "sample", "--limit", "6",
        "--no-search", "--certify", "smoothing", "--samples", "300", "--out", tmp_path / "run",
    )  # fmt: skip
    assert code == 0, err
    results = json.loads((tmp_path / "run" / "results.json").read_text())["results"]
    smoothing = results["smoothing-0.25-mnist-sample"]
    assert len(smoothing["radius"]) == 6 and smoothing["n"] == 300
    assert max(smoothing["radius"]) <= 0.25 * 2.001  # sigma Phi^-1(0.001^(1/300)) = 0.25 x 2.00: the ceiling
    html = (tmp_path / "run" / "report.html").read_text()
    assert "Randomised smoothing: sigma 0.25" in html and "randomised smoothing (sigma 0.25" in out
    from trustlab.core import format as fmt
    from trustlab.core.views import view_for
    from trustlab.report.run import read_results

    result = read_results(tmp_path / "run")["smoothing-0.25-mnist-sample"]
    (table,) = view_for(result.kind).section("smoothing", result).tables
    assert [row[2] for row in table.rows] == [fmt.pct(result.certified_accuracy(float(row[0]))) for row in table.rows]
