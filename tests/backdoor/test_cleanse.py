"""Neural Cleanse: anomaly index by hand, a hand-built backdoor found, a clean twin not flagged,
the batched optimisation equal to the one-label-at-a-time reference, reproducibility, no side
effects, and one-line errors for bad input."""

from __future__ import annotations

import math

import pytest
import torch

from backdoor_helpers import CLASSES, SHAPE, clean_inputs, prototype_model
from cleanse_loop import cleanse_one_label
from trustlab.backdoor import CleanseSettings, anomaly_index, flagged_labels, neural_cleanse, reverse_triggers
from trustlab.backdoor.cleanse import BackdoorScanResult
from trustlab.core.exceptions import GradientsUnavailableError, InputError
from trustlab.models import BlackBoxClassifier

FAST = CleanseSettings(epochs=60)  # 180 steps: the hand-built masks converge


def test_anomaly_index_by_hand():
    norms = [10.0, 50.0, 52.0, 48.0, 55.0, 45.0]
    # median 49, |dev| = 39, 1, 3, 1, 6, 4 -> median 3.5, MAD = 1.4826 * 3.5
    expected = [39 / (1.4826 * 3.5), 1 / (1.4826 * 3.5), 3 / (1.4826 * 3.5)]
    got = anomaly_index(norms)
    assert torch.allclose(got[:3], torch.tensor(expected, dtype=torch.float64))
    assert flagged_labels(norms) == [0]
    # an abnormally LARGE norm is not a backdoor
    assert flagged_labels([100.0, 50.0, 52.0, 48.0, 55.0, 45.0]) == []
    # no spread at all: the ones at the median are 0, any other is infinitely anomalous
    assert anomaly_index([5.0, 5.0, 5.0, 1.0]).tolist() == [0.0, 0.0, 0.0, math.inf]


def test_finds_the_hand_built_backdoor_and_spares_the_clean_twin():
    x, _ = clean_inputs()
    infected = neural_cleanse(prototype_model(backdoor=3), x, seeds=(0, 1), settings=FAST, show_progress=False)
    clean = neural_cleanse(prototype_model(), x, seeds=(0, 1), settings=FAST, show_progress=False)
    assert infected.flagged == (3,)
    assert infected.mean_norms[3] < infected.flag_norm < infected.median_norm
    assert clean.flagged == ()
    assert clean.max_anomaly < 2
    # the reversed trigger of the target sits on the key pixel
    mask = torch.tensor(infected.masks[3])
    assert mask[0, 0] == mask.max()


def test_batched_equals_one_label_at_a_time():
    classifier = prototype_model(backdoor=2)
    x, _ = clean_inputs()
    batched = reverse_triggers(classifier, x, settings=FAST, seed=5, show_progress=False)
    for label in range(CLASSES):
        norm, epochs = cleanse_one_label(classifier, x, label, FAST, seed=5)
        assert batched.epochs[label] == epochs
        assert batched.norms[label] == pytest.approx(norm, rel=1e-4)


def test_same_seed_same_scan_and_inputs_untouched():
    classifier = prototype_model(backdoor=1)
    x, _ = clean_inputs()
    x_before = x.clone()
    weights = {k: v.clone() for k, v in classifier.module.state_dict().items()}
    first = neural_cleanse(classifier, x, settings=FAST, show_progress=False)
    second = neural_cleanse(classifier, x, settings=FAST, show_progress=False)
    assert first.norms == second.norms and first.flagged == second.flagged
    assert torch.equal(x, x_before)
    for key, value in classifier.module.state_dict().items():
        assert torch.equal(value, weights[key])
    assert all(p.grad is None for p in classifier.module.parameters())
    assert BackdoorScanResult.from_json(first.to_json()) == first


def test_bad_inputs_are_one_line_errors():
    classifier = prototype_model()
    x, _ = clean_inputs()
    with pytest.raises(InputError, match="at least 32 clean inputs"):
        neural_cleanse(classifier, x[:5], settings=FAST, show_progress=False)
    with pytest.raises(InputError, match="at least 32 clean inputs"):
        neural_cleanse(classifier, x[:0], settings=FAST, show_progress=False)
    blind = BlackBoxClassifier(
        lambda t: torch.full((len(t), CLASSES), 1 / CLASSES), input_shape=SHAPE, num_classes=CLASSES
    )
    with pytest.raises(GradientsUnavailableError, match="Neural Cleanse needs gradients"):
        neural_cleanse(blind, x, settings=FAST, show_progress=False)
    with pytest.raises(InputError, match="NaN"):
        neural_cleanse(classifier, torch.full_like(x, float("nan")), settings=FAST, show_progress=False)
    with pytest.raises(InputError, match="at least one seed"):
        neural_cleanse(classifier, x, seeds=(), settings=FAST, show_progress=False)
