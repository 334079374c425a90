"""Every attribution method: shapes, determinism, batching, and agreement with references."""

import pytest
import torch
from captum.attr import IntegratedGradients, NoiseTunnel, Occlusion, Saliency
from torch import nn

from trustlab.core.exceptions import InputError
from trustlab.data import load_dataset
from trustlab.explain import METHODS, explain
from trustlab.models import Classifier, load_reference_model

FAST = {"lime": {"n_samples": 60}, "kernelshap": {"n_samples": 60}, "smoothgrad": {"samples": 5}}


@pytest.fixture(scope="module")
def model():
    return load_reference_model()


@pytest.fixture(scope="module")
def digits():
    data = load_dataset("mnist", "sample")
    return data.x[:6], data.y[:6]


@pytest.mark.parametrize("method", METHODS)
def test_maps_are_shaped_like_inputs_finite_and_batch_size_free(method, model, digits, one_thread):
    x, y = digits
    maps = explain(model, x, y, method=method, batch_size=4, **FAST.get(method, {}))
    channels = 1 if method == "gradcam" else x.shape[1]
    assert maps.shape == (6, channels, 28, 28) and torch.isfinite(maps).all() and maps.abs().sum() > 0
    again = explain(model, x, y, method=method, batch_size=256, **FAST.get(method, {}))
    torch.testing.assert_close(maps, again, rtol=1e-4, atol=1e-5)


def test_saliency_is_the_target_logits_gradient(model, digits):
    x, y = digits
    xs = x.clone().requires_grad_(True)
    model.forward(xs).gather(1, y[:, None]).sum().backward()
    torch.testing.assert_close(explain(model, x, y, method="saliency"), xs.grad)
    torch.testing.assert_close(explain(model, x, y, method="saliency_abs"), xs.grad.abs())


def test_integrated_gradients_match_captum_and_are_complete(model, digits):
    x, y = digits
    ours = explain(model, x, y, method="integrated_gradients", batch_size=7)
    reference = IntegratedGradients(model.forward).attribute(x, target=y, n_steps=50)
    assert (ours - reference).abs().max() < 1e-5
    with torch.no_grad():
        gap = model.forward(x).gather(1, y[:, None]) - model.forward(torch.zeros_like(x)).gather(1, y[:, None])
    relative = (ours.flatten(1).sum(1) - gap.squeeze(1)).abs() / gap.squeeze(1).abs()
    assert relative.max() < 0.01  # completeness within 1% at 50 steps


def test_smoothgrad_without_noise_is_saliency_and_is_seeded(model, digits):
    x, y = digits
    torch.testing.assert_close(
        explain(model, x, y, method="smoothgrad", samples=3, noise=0.0), explain(model, x, y, method="saliency")
    )
    a = explain(model, x, y, method="smoothgrad", samples=4, seed=1)
    assert torch.equal(a, explain(model, x, y, method="smoothgrad", samples=4, seed=1))
    assert not torch.equal(a, explain(model, x, y, method="smoothgrad", samples=4, seed=2))


def test_smoothgrad_agrees_with_captum_in_expectation(model, digits, one_thread):
    x, y = digits
    ours = explain(model, x, y, method="smoothgrad", samples=200)
    torch.manual_seed(0)
    captum = NoiseTunnel(Saliency(model.forward)).attribute(x, target=y, nt_samples=200, stdevs=0.15, abs=False)
    for a, b in zip(ours.flatten(1), captum.flatten(1)):
        assert torch.corrcoef(torch.stack([a, b]))[0, 1] > 0.9


def test_occlusion_matches_captum_one_window_at_a_time(model, digits):
    x, y = digits
    reference = Occlusion(model.forward).attribute(x, sliding_window_shapes=(1, 4, 4), strides=(1, 2, 2), target=y)
    torch.testing.assert_close(explain(model, x, y, method="occlusion"), reference, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("method", ["lime", "kernelshap"])
def test_surrogates_find_the_only_patch_that_matters(method):
    """A model whose class-1 logit is the mean of the top-left 4x4 patch."""

    class TopLeft(nn.Module):
        def forward(self, x):
            score = x[:, :, :4, :4].mean(dim=(1, 2, 3))
            return torch.stack([torch.zeros_like(score), score], dim=1)

    model = Classifier(TopLeft(), input_shape=(1, 8, 8), num_classes=2)
    x = torch.rand(2, 1, 8, 8, generator=torch.Generator().manual_seed(0)) * 0.5 + 0.5
    maps = explain(model, x, 1, method=method, n_samples=80)
    for m in maps:
        assert m[0, :4, :4].mean() > 5 * m[0, 4:, :].abs().max() + 1e-6
    assert torch.equal(maps, explain(model, x, 1, method=method, n_samples=80))  # seeded


def test_guided_backprop_is_not_plain_saliency_and_guided_gradcam_is_input_shaped(model, digits):
    x, y = digits
    guided = explain(model, x, y, method="guided_backprop")
    assert not torch.allclose(guided, explain(model, x, y, method="saliency"))
    guided_cam = explain(model, x, y, method="guided_gradcam")
    assert guided_cam.shape == x.shape


def test_bad_requests_are_clear(model, digits):
    x, y = digits
    with pytest.raises(InputError, match="unknown explanation method 'shap'"):
        explain(model, x, y, method="shap")
    with pytest.raises(InputError, match="does not take samples"):
        explain(model, x, y, method="saliency", samples=3)
    with pytest.raises(
        InputError, match=r"target must be one index or \d+ class indices in 0\.\.9 \(integers\), got 12"
    ):
        explain(model, x, 12, method="saliency")
    with pytest.raises(
        InputError, match=r"target must be .* \(integers\), got Tensor of shape \(\d+,\) \(torch.float32\)"
    ):
        explain(model, x, y.float(), method="saliency")  # float targets are refused, never truncated
    with pytest.raises(InputError, match="bounds"):
        explain(model, x + 2, y, method="saliency")


def test_weights_stay_trainable(model, digits):
    x, y = digits
    explain(model, x, y, method="integrated_gradients", steps=4)
    assert all(p.requires_grad for p in model.module.parameters())
