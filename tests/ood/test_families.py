"""Families of OOD sets and choosing a detector by its worst family."""

import torch

from ood_helpers import ToyDetector
from trustlab.data.ood_sets import OODSet
from trustlab.ood.evaluate import FittedDetector, evaluate_alarm


def _brightness(sign: float) -> ToyDetector:
    """Scores an image by its mean pixel times ``sign``."""
    return ToyDetector(lambda x: sign * x.mean(dim=(1, 2, 3)))


def _images(level: float, n: int = 200, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (level + 0.05 * torch.rand(n, 1, 28, 28, generator=g)).clamp(0, 1)


def test_detectors_are_ranked_by_their_worst_family():
    ind = _images(0.5)
    train, cal, ev = ind[:50], ind[50:120], ind[120:]
    sets = {
        "uniform_noise": OODSet("uniform_noise", _images(0.9, seed=1), "bright"),  # family noise
        "gaussian_noise": OODSet("gaussian_noise", _images(0.8, seed=2), "bright"),  # family noise
        "near_strokes": OODSet("near_strokes", _images(0.1, seed=3), "dark"),  # family strokes
    }
    bright = _brightness(1.0).fit(train)  # perfect on noise, blind (AUROC 0) on the dark strokes
    either = _brightness(0.0).fit(train)  # constant: AUROC 0.5 everywhere
    fitted = {"bright": FittedDetector(bright, 0.0, ""), "constant": FittedDetector(either, 0.0, "")}
    result = evaluate_alarm(fitted, calibration=cal, evaluation=ev, ood_sets=sets, alpha=0.1)
    assert result.families == {"uniform_noise": "noise", "gaussian_noise": "noise", "near_strokes": "strokes"}
    assert result.family_names == ("noise", "strokes")
    assert result.family_auroc("bright") == {"noise": 1.0, "strokes": 0.0}
    assert result.weakest_family("bright") == "strokes"
    assert result.best("uniform_noise") == "bright"  # best on one set ...
    assert result.ranking() == ("constant", "bright")  # ... last by its worst case
    assert result.most_reliable() == "constant" and result.worst_auroc("constant") == 0.5


def test_guard_default_is_the_detector_with_the_best_worst_family(reference, sample, reference_data):
    from trustlab.ood.checks import choose_guard_detector

    train, held = sample
    calibration, evaluation = held.subset(slice(0, 200)), held.subset(slice(200, 400))
    chosen, compared = choose_guard_detector(
        reference, train, calibration, evaluation, pretrained=False, data_dir=reference_data, limit=60
    )
    assert compared.detectors == ("msp", "energy", "maxlogit", "mahalanobis", "knn")
    assert chosen == compared.ranking()[0]
    assert all(compared.worst_auroc(chosen) >= compared.worst_auroc(d) for d in compared.detectors)
    assert {"flipped", "overlays", "fragments", "strokes", "letters", "symbols"} <= set(compared.family_names)
