"""The detector contract, checked for every registered detector."""

import pytest
import torch

from trustlab.core.exceptions import InputError, NotFittedError
from trustlab.ood.base import list_detectors, load_detector, make_detector, save_detector
from trustlab.ood.generative import ComplexityCorrected, VAEDetector, WGANInverter
from trustlab.ood.reference import load_reference_detector

SMALL = {"vae": {"epochs": 2}, "wgan": {"gan_steps": 3, "critic_iters": 2, "inverter_steps": 10}}


def _fitted(name, reference, fit_set):
    """Every detector, fitted: post-hoc ones on the sample, generative ones are the shipped ones."""
    if name in ("vae", "wgan"):
        return load_reference_detector(name)
    if name == "complexity":
        return ComplexityCorrected(base=load_reference_detector("vae")).fit(fit_set)
    return make_detector(name, reference).fit(fit_set)


def test_every_detector_is_covered():
    assert set(list_detectors()) == {
        "msp",
        "energy",
        "maxlogit",
        "mahalanobis",
        "knn",
        "vae",
        "wgan",
        "complexity",
        "combined",
        "ratio",
    }  # fmt: skip (combined and ratio: tests/ood/test_combined.py and test_near_ood_detectors.py)


@pytest.mark.parametrize("name", ["msp", "energy", "maxlogit", "mahalanobis", "knn", "vae", "wgan", "complexity"])
def test_in_distribution_scores_lower_than_noise(name, reference, sample, noise):
    fit_set, held_out = sample
    detector = _fitted(name, reference, fit_set)
    inside, outside = detector.score(held_out.x), detector.score(noise)
    assert inside.dtype == torch.float64 and inside.shape == (len(held_out),)
    assert torch.isfinite(inside).all() and torch.isfinite(outside).all()
    # most noise scores above the typical in-distribution score: the defining property
    assert (outside > inside.median()).float().mean() > 0.9


@pytest.mark.parametrize("name", ["msp", "mahalanobis", "knn", "vae", "wgan", "complexity"])
def test_scores_do_not_depend_on_batching_and_survive_a_round_trip(name, reference, sample, tmp_path):
    fit_set, held_out = sample
    detector = _fitted(name, reference, fit_set)
    x = held_out.x[:70]
    scores = detector.score(x)
    detector.batch_size = 16
    torch.testing.assert_close(detector.score(x), scores, rtol=1e-5, atol=1e-5)
    path = save_detector(detector, tmp_path / f"{name}.safetensors")
    loaded = load_detector(path, classifier=reference if detector.needs_classifier else None)
    assert torch.equal(loaded.score(x), detector.score(x))
    assert loaded.config() == detector.config()


@pytest.mark.parametrize("name", ["mahalanobis", "vae"])
def test_bad_inputs_get_clear_errors(name, reference, sample):
    detector = _fitted(name, reference, sample[0])
    with pytest.raises(InputError, match=r"shape \(3, 28, 28\), but \(N, 1, 28, 28\) is expected"):
        detector.score(torch.zeros(3, 28, 28))
    bad = torch.zeros(2, 1, 28, 28)
    bad[0, 0, 0, 0] = float("nan")
    with pytest.raises(InputError, match="1 NaN or infinite"):
        detector.score(bad)
    with pytest.raises(InputError, match=r"bounds \[0, 1\]"):
        detector.score(torch.full((2, 1, 28, 28), 2.0))


def test_unfitted_detectors_refuse_to_score(reference):
    for detector in (make_detector("knn", reference), VAEDetector(), WGANInverter()):
        with pytest.raises(NotFittedError, match="not fitted"):
            detector.score(torch.zeros(1, 1, 28, 28))


def test_posthoc_detectors_need_a_classifier():
    with pytest.raises(InputError, match="pass classifier="):
        make_detector("mahalanobis")


def test_bad_options_are_refused(reference):
    with pytest.raises(InputError, match="k must be a positive integer"):
        make_detector("knn", reference, k=0)
    with pytest.raises(InputError, match="bad options for the msp detector"):
        make_detector("msp", reference, temperature=2.0)
    with pytest.raises(InputError, match="score must be one of"):
        VAEDetector(score="likelihood")


@pytest.mark.parametrize("name", ["vae", "wgan"])
def test_generative_detectors_train_deterministically(name, sample):
    fit_set, held_out = sample
    cls = VAEDetector if name == "vae" else WGANInverter
    first = cls(**SMALL[name]).fit(fit_set.x[:200]).score(held_out.x[:20])
    second = cls(**SMALL[name]).fit(fit_set.x[:200]).score(held_out.x[:20])
    assert torch.equal(first, second)


def test_vae_learns_the_data(sample, noise):
    fit_set, held_out = sample
    detector = VAEDetector(epochs=3).fit(fit_set.x)
    assert detector.history_[-1] < detector.history_[0]  # training lowers the negative ELBO
    assert detector.score(held_out.x).max() < detector.score(noise).min()


def test_the_two_vae_scores_differ_by_the_kl_term(sample):
    vae = load_reference_detector("vae")
    x = sample[1].x[:10]
    gap = vae.score(x) - vae.rescored("recon").score(x)
    assert (gap > 0).all()  # KL(q || p) > 0
