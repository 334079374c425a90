"""The audit on a user's model in each accepted format, of an architecture that is not trustlab's:
every check that applies runs, none fails."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from tabular_helpers import SKIPPED_FOR_TABULAR
from trustlab.audit.runner import prepare, run_audit
from trustlab.data import load_dataset
from trustlab.models import Classifier, load_model, train
from trustlab.report.run import RunDirectory


class OtherCNN(nn.Module):
    """Not in trustlab's registry: a different layout, ReLU as modules (for guided methods)."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(8, 16, 3), nn.ReLU()
        )
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(16 * 12 * 12, 32), nn.ReLU(), nn.Linear(32, 10))

    def forward(self, x):
        return self.head(self.body(x))


@pytest.fixture(scope="module")
def trained():
    torch.manual_seed(0)
    data = load_dataset("mnist", "sample")
    classifier = Classifier(OtherCNN(), input_shape=(1, 28, 28), num_classes=10)
    train(classifier, data.x, data.y, epochs=4, batch_size=64, seed=0, show_progress=False)
    return classifier.module.eval()


def _save(module, kind, path):
    example = torch.rand(2, 1, 28, 28)
    if kind == "torchscript":
        torch.jit.save(torch.jit.trace(module, example), path)
    elif kind == "export":
        batch = torch.export.Dim("batch", min=1)
        torch.export.save(torch.export.export(module, (example,), dynamic_shapes=({0: batch},)), path)
    else:
        pytest.importorskip("onnx")
        torch.onnx.export(
            module, (example,), str(path), input_names=["x"], output_names=["y"],
            dynamic_axes={"x": {0: "n"}, "y": {0: "n"}}, dynamo=False,
        )  # fmt: skip


@pytest.mark.parametrize(("kind", "suffix"), [("torchscript", ".pt"), ("export", ".pt2"), ("onnx", ".onnx")])
def test_audit_runs_every_check_on_a_user_model(trained, kind, suffix, tmp_path, monkeypatch):
    monkeypatch.delenv("TRUSTLAB_DATA", raising=False)
    path = tmp_path / f"model{suffix}"
    _save(trained, kind, path)
    classifier = load_model(path, input_shape=(1, 28, 28))
    data = load_dataset("mnist", "sample").subset(slice(0, 70))
    ctx, planned = prepare(classifier, data, profile="quick")
    assert [p.step.name for p in planned if p.skip_reason] == ["fairness"]  # MNIST has no protected attribute
    outcome = run_audit(RunDirectory(tmp_path / "run"), ctx, planned, source=str(path))
    failures = [r for r in outcome.run.results.values() if r.kind == "audit.failure"]
    assert failures == []
    axes = {g.axis for g in outcome.scorecard.gates}
    assert axes == {
        "accuracy", "adversarial robustness", "OOD alarm", "explanation sanity", "backdoor", "distribution shift"
    }  # fmt: skip
    assert outcome.run.results["accuracy-mnist-sample"].accuracy > 0.5  # four short epochs: about 0.67; chance 0.1


def test_audit_of_a_scikit_learn_model_saved_with_skops(tmp_path, reference_data, monkeypatch):
    """Probability-only: the checks that need gradients are skipped and say why; the rest run."""
    sio = pytest.importorskip("skops.io")
    from sklearn.linear_model import LogisticRegression

    from trustlab.core.exceptions import ModelLoadError

    monkeypatch.delenv("TRUSTLAB_DATA", raising=False)
    train_set = load_dataset("pima", "train", root=reference_data)
    test_set = load_dataset("pima", "test", root=reference_data)
    estimator = LogisticRegression(max_iter=2000).fit(train_set.x.numpy(), train_set.y.numpy())
    sio.dump(estimator, tmp_path / "pima.skops")
    classifier = load_model(tmp_path / "pima.skops")
    assert classifier.input_shape == (8,) and not classifier.requires_gradients
    expected = estimator.predict_proba(test_set.x.numpy())
    assert torch.allclose(classifier.proba(test_set.x), torch.from_numpy(expected).float(), atol=1e-5)
    ctx, planned = prepare(classifier, test_set, profile="quick")
    skipped = {p.step.name: p.skip_reason for p in planned if p.skip_reason}
    assert set(skipped) == SKIPPED_FOR_TABULAR
    assert "tabular inputs" in skipped["robustness"]
    outcome = run_audit(RunDirectory(tmp_path / "run"), ctx, planned, source="pima.skops")
    assert {g.axis for g in outcome.scorecard.gates} == {"accuracy", "OOD alarm"}
    assert "tabular inputs" in outcome.scorecard.skipped["adversarial robustness"]
    alarm = outcome.run.results["alarm-pima"]
    assert alarm.detectors == ("msp", "energy", "maxlogit")  # no features to read, and the report says why
    assert alarm.notes and "feature-space detectors (mahalanobis, knn) left out" in alarm.notes[0]
    assert "feature-space detectors (mahalanobis, knn) left out" in outcome.report.read_text()
    (tmp_path / "junk.skops").write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(ModelLoadError, match="is not a readable skops file"):
        load_model(tmp_path / "junk.skops")


def test_checks_that_need_grad_cam_are_skipped_up_front_when_it_cannot_run(tmp_path):
    """A model with no 4-D feature map (an MLP on images): the plan says why before anything runs."""
    module = nn.Sequential(nn.Flatten(), nn.Linear(784, 32), nn.ReLU(), nn.Linear(32, 10))
    classifier = Classifier(module, input_shape=(1, 28, 28), num_classes=10)
    ctx, planned = prepare(classifier, load_dataset("mnist", "sample").subset(slice(0, 70)), profile="quick")
    skipped = {p.step.name: p.skip_reason for p in planned if p.skip_reason}
    assert set(skipped) == {"regions", "fairness"} and "--gradcam-layer" in skipped["regions"]  # the gallery runs
