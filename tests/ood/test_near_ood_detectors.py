"""The generative scores made for near-OOD inputs: likelihood regret and the likelihood ratio."""

import torch

from trustlab.ood.base import load_detector, save_detector
from trustlab.ood.generative import LikelihoodRatio, VAEDetector


def _tiny_vae(train, **kw):
    return VAEDetector(latent_dim=4, channels=(4, 8), epochs=2, train_batch_size=100, seed=0, **kw).fit(train)


def test_a_background_equal_to_the_foreground_gives_a_zero_ratio(sample):
    train, held = sample
    vae = _tiny_vae(train.x[:300])
    ratio = LikelihoodRatio(foreground=vae, background=vae)
    ratio.set_fitted(vae.input_shape_, vae.bounds_)
    assert torch.equal(ratio.score(held.x[:50]), torch.zeros(50, dtype=torch.float64))


def test_ratio_trains_a_perturbed_background_and_round_trips(sample, tmp_path):
    train, held = sample
    ratio = LikelihoodRatio(
        foreground=VAEDetector(latent_dim=4, channels=(4, 8), epochs=1, seed=0),
        background=VAEDetector(latent_dim=4, channels=(4, 8), epochs=1, seed=0, perturb_rate=0.2),
    ).fit(train.x[:300])
    assert ratio.background.perturb_rate == 0.2 and ratio.foreground.perturb_rate == 0.0
    scores = ratio.score(held.x[:20])
    expected = ratio.foreground.score(held.x[:20]) - ratio.background.score(held.x[:20])
    assert torch.allclose(scores, expected)
    save_detector(ratio, tmp_path / "ratio.safetensors")
    assert torch.equal(load_detector(tmp_path / "ratio.safetensors").score(held.x[:20]), scores)


def test_regret_is_what_optimising_the_latent_gains_never_negative(sample):
    train, held = sample
    vae = _tiny_vae(train.x[:300])
    nelbo, regret = vae.score(held.x[:40]), vae.rescored("regret").score(held.x[:40])
    assert (regret >= 0).all() and (regret > 0).any()
    assert (regret <= nelbo).all()  # the optimised bound stays a positive number of bits
    longer = VAEDetector(**{**vae.config(), "score": "regret", "regret_steps": 60})
    longer.set_fitted(vae.input_shape_, vae.bounds_)
    longer.load_state(vae.state())
    assert (longer.score(held.x[:40]) >= regret - 1e-9).all()  # more steps never find less
