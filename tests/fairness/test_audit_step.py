"""The audit's fairness step: it runs on a binary model of data with protected attributes, one
result per attribute, and its disparate impact reaches the scorecard; otherwise it says why not."""

from __future__ import annotations

import torch
from torch import nn

from fairness_helpers import toy_dataset as _dataset
from trustlab.audit.runner import prepare, run_audit
from trustlab.models.classifier import Classifier
from trustlab.report.run import RunDirectory


def test_the_fairness_step_runs_per_attribute_and_reaches_the_scorecard(tmp_path):
    torch.manual_seed(0)
    classifier = Classifier(nn.Linear(3, 2), input_shape=(3,), num_classes=2, bounds=None)
    data = _dataset(300)
    ctx, planned = prepare(classifier, data, profile="quick")
    (fairness,) = [p for p in planned if p.step.name == "fairness"]
    assert fairness.skip_reason is None and fairness.step.axis == "fairness"
    outcome = run_audit(RunDirectory(tmp_path / "run"), ctx, [fairness], source="linear")
    assert set(outcome.run.results) >= {"fairness-toy-sex", "fairness-toy-race"}
    gates = {g.key: g for g in outcome.scorecard.gates if g.axis == "fairness"}
    assert set(gates) == {"fairness.disparate_impact", "fairness.equalized_odds_difference"}
    assert gates["fairness.disparate_impact"].green == 0.8 and gates["fairness.disparate_impact"].red == 0.6
    odds = gates["fairness.equalized_odds_difference"]
    assert (odds.green, odds.red) == (0.1, 0.2)
    assert odds.verdict == ("green" if odds.value <= 0.1 else "red" if odds.value > 0.2 else "amber")
    assert "Fairness by sex (toy/test)" in outcome.report.read_text()

    three = Classifier(nn.Linear(3, 3), input_shape=(3,), num_classes=3, bounds=None)
    _, planned = prepare(three, data, profile="quick")
    (step,) = [p for p in planned if p.step.name == "fairness"]
    assert step.skip_reason == "fairness metrics need a binary classifier; this model has 3 classes"


def test_protected_picks_the_attributes_the_audit_judges(tmp_path, reference_data):
    """``trustlab audit --dataset adult --protected sex``: the data keeps only ``sex``, so the
    fairness step judges sex alone (adult also carries race)."""
    from trustlab.data.io import open_dataset

    data = open_dataset("adult", "test", root=reference_data, protected=["sex"])
    assert set(data.protected) == {"sex"}
    torch.manual_seed(0)
    width = data.x.shape[1]
    classifier = Classifier(nn.Linear(width, 2), input_shape=(width,), num_classes=2, bounds=None)
    ctx, planned = prepare(classifier, data.subset(slice(0, 2000)), profile="quick")
    (fairness,) = [p for p in planned if p.step.name == "fairness"]
    outcome = run_audit(RunDirectory(tmp_path / "run"), ctx, [fairness], source="linear")
    assert [k for k in outcome.run.results if k.startswith("fairness-")] == ["fairness-adult-sex"]
