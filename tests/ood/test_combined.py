"""Detectors combined through conformal p-values: hand-computed p-values and rules, the false-alarm
guarantee over many synthetic calibrations, one artefact, one forward pass."""

import numpy as np
import pytest
import torch

from ood_helpers import ToyDetector
from trustlab.core.exceptions import TrustlabError
from trustlab.ood.base import make_detector
from trustlab.ood.calibration import ConformalThreshold
from trustlab.ood.combined import CombinedDetector, combine_p_values, conformal_p_values
from trustlab.ood.evaluate import build_detectors, parse_detector
from trustlab.ood.guard import GuardedClassifier


def _feature(pixel: int) -> ToyDetector:
    """Scores a (N, 1, 2, 2) input by one of its pixels (independent components of known behaviour)."""
    return ToyDetector(lambda x: x.flatten(1)[:, pixel], any_bounds=True)


def test_conformal_p_values_by_hand():
    reference = torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64)
    p = conformal_p_values(reference, torch.tensor([0.0, 2.0, 2.5, 5.0]))
    assert p.tolist() == [1.0, 0.75, 0.5, 0.25]  # (1 + #{reference >= s}) / 4


def test_combination_rules_by_hand():
    p = torch.tensor([[0.01, 0.04, 0.5], [0.02, 0.02, 0.02]], dtype=torch.float64)
    assert combine_p_values(p, "bonferroni").tolist() == pytest.approx([0.03, 0.06])
    assert combine_p_values(p, "simes").tolist() == pytest.approx([0.03, 0.02])  # min(3 p_(k) / k)
    from scipy.stats import chi2

    fisher = chi2.sf(-2 * np.log([0.01, 0.04, 0.5]).sum(), 6)
    assert combine_p_values(p, "fisher")[0].item() == pytest.approx(fisher)


@pytest.mark.parametrize("rule", ["simes", "bonferroni", "fisher"])
def test_false_alarm_rate_stays_at_alpha_over_many_calibrations(rule):
    """300 independent draws of fitting data, calibration and test inputs (in-distribution, with
    correlated components): the guard's realised false-alarm rate averages alpha."""
    alpha, rates, raw = 0.1, [], []
    rng = np.random.default_rng(0)
    for _ in range(300):
        mix = rng.normal(size=(1600, 4))
        x = torch.from_numpy(mix + 0.8 * mix[:, :1]).float().reshape(1600, 1, 2, 2)  # components correlate
        combined = CombinedDetector(components=[_feature(0), _feature(1), _feature(2)], rule=rule).fit(x[:1000])
        threshold = ConformalThreshold.fit(combined.score(x[1000:1300]), alpha)
        rates.append(float(threshold.alarms(combined.score(x[1300:])).double().mean()))
        raw.append(float((10 ** -combined.score(x[1300:]) <= alpha).double().mean()))
    # at most alpha (conformal), and close to it: p-values on a grid of 1 / 201 leave few ties
    assert alpha - 0.015 < np.mean(rates) < alpha + 0.01
    if rule == "bonferroni":  # valid without the threshold too (conservative)
        assert np.mean(raw) <= alpha + 0.01


def test_combined_guard_saves_loads_and_reads_the_model_once_per_batch(reference, sample, tmp_path):
    train, held = sample
    combined = CombinedDetector(
        reference, components=[make_detector("msp", reference), make_detector("knn", reference)], rule="simes"
    ).fit(train)
    guard = GuardedClassifier.calibrate(reference, combined, held.x[:200], alpha=0.1)
    calls = []
    handle = reference.module.register_forward_hook(lambda *_: calls.append(1))
    try:
        out = guard.predict(held.x[200:])
    finally:
        handle.remove()
    assert len(calls) == 1  # 200 inputs, one batch: one forward pass for the label and both components
    guard.save(tmp_path / "guard.safetensors")
    again = GuardedClassifier.load(tmp_path / "guard.safetensors")
    assert torch.equal(again.predict(held.x[200:]).scores, out.scores)
    assert again.detector.labels == ["msp", "knn"] and again.detector.rule == "simes"


def test_combination_specs_build_and_bad_ones_are_one_line_errors(reference, sample):
    train, _ = sample
    assert parse_detector("simes[msp,energy]").name == "combined"
    built = build_detectors(["bonferroni[msp,vae:recon]"], classifier=reference, train=train)
    detector = built["bonferroni[msp,vae:recon]"].detector
    assert isinstance(detector, CombinedDetector) and detector.labels == ["msp", "vae:recon"]
    for spec, needle in [
        ("simes[msp]", "at least two"),
        ("median[msp,knn]", "write a combination"),
        ("simes[msp,bonferroni[knn,energy]]", "cannot contain"),
        ("simes[msp,nosuch]", "unknown detector"),
    ]:
        with pytest.raises(TrustlabError, match=needle) as info:
            parse_detector(spec)
        assert "\n" not in str(info.value)
