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


def test_outlier_exposure_lowers_the_max_softmax_on_its_outliers(sample):
    """Same model, same seed, same steps; with outlier exposure its softmax on synthetic outliers
    (other draws of the same families) is less confident, and digits stay classified."""
    from trustlab.data.near_ood import synthetic_outliers
    from trustlab.models import Classifier, build_architecture, train

    fit_set, held = sample
    config = {"channels": [16, 32], "hidden": 128}
    models = []
    for outliers in (None, synthetic_outliers(fit_set.x, fit_set.y, 600, seed=1)):
        module = build_architecture("mnist_cnn", seed=0, **config)
        model = Classifier(module, input_shape=(1, 28, 28), num_classes=10, architecture="mnist_cnn", config=config)
        train(model, fit_set.x, fit_set.y, epochs=10, batch_size=64, seed=0, outliers=outliers, show_progress=False)
        models.append(model)
    plain, exposed = models
    fresh = synthetic_outliers(held.x, held.y, 300, seed=7)
    confidence = [float(m.proba(fresh).amax(1).mean()) for m in models]
    assert confidence[1] < confidence[0] - 0.1
    assert float((exposed.predict(held.x) == held.y).double().mean()) > 0.8


def test_outlier_families_parse_and_bad_ones_are_one_line_errors():
    import pytest

    from trustlab.core.exceptions import InputError
    from trustlab.data.near_ood import NEAR_OOD_NAMES, outlier_families

    assert outlier_families("all") == NEAR_OOD_NAMES
    assert outlier_families("letters, near_strokes") == ("near_letters", "near_strokes")
    with pytest.raises(InputError, match="unknown outlier family 'near_emoji'") as info:
        outlier_families("letters,emoji")
    assert "\n" not in str(info.value)


def test_cli_train_with_outlier_exposure(capsys, tmp_path):
    from cli_helpers import assert_one_line_error, run_cli

    out = tmp_path / "oe.safetensors"
    code, printed, err = run_cli(
        capsys, "train", "--dataset", "mnist", "--split", "sample", "--epochs", "1", "--outlier-exposure",
        "letters,strokes", "--outliers", "200", "--out", out,
    )  # fmt: skip
    assert code == 0, err
    assert out.is_file() and "saved" in printed
    code, _, err = run_cli(capsys, "train", "--dataset", "digits", "--epochs", "1", "--outlier-exposure", "all",
                           "--out", tmp_path / "d.safetensors")  # fmt: skip
    assert_one_line_error(code, err, "1 x 28 x 28")
    code, _, err = run_cli(capsys, "train", "--dataset", "mnist", "--split", "sample", "--outlier-exposure", "emoji",
                           "--out", tmp_path / "e.safetensors")  # fmt: skip
    assert_one_line_error(code, err, "unknown outlier family")


def _linear_wgan(inverter, **kw):
    """A WGAN detector whose generator is a hand-built linear map G(z) = A z (orthonormal columns)."""
    from torch import nn

    from trustlab.ood.generative import WGANInverter

    basis = torch.linalg.qr(torch.randn(784, 4, generator=torch.Generator().manual_seed(0))).Q
    generator = nn.Sequential(nn.Linear(4, 784, bias=False), nn.Unflatten(1, (1, 28, 28)))
    generator[0].weight.data = basis
    detector = WGANInverter(latent_dim=4, score="regret", **kw)
    detector.set_fitted((1, 28, 28), (0.0, 1.0))
    detector.generator_, detector.inverter_ = generator, inverter(basis)
    return detector, basis


def test_wgan_regret_is_zero_for_an_optimal_inverter_and_the_whole_error_for_a_blind_one():
    """Least squares by hand: with the inverter A^T x (the optimum for a linear generator) nothing is
    left to gain; with an inverter answering 0, an image G(z) is drawn exactly after optimising, so
    the regret is its whole squared error ||A z||^2 = ||z||^2."""

    def optimal(basis):
        return lambda x: x.flatten(1) @ basis

    def blind(basis):
        return lambda x: torch.zeros(x.shape[0], 4)

    z = 0.05 * torch.randn(6, 4, generator=torch.Generator().manual_seed(1))
    detector, basis = _linear_wgan(optimal)
    images = (z @ basis.T).reshape(6, 1, 28, 28) + 0.1  # off the generator's range: a residual remains
    assert torch.allclose(detector._score_batch(images), torch.zeros(6), atol=1e-4)
    detector, basis = _linear_wgan(blind, regret_steps=400, regret_learning_rate=0.01)
    drawn = (z @ basis.T).reshape(6, 1, 28, 28)
    assert torch.allclose(detector._score_batch(drawn), z.square().sum(dim=1), rtol=1e-2, atol=1e-5)
