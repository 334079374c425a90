"""A Keras model exported to ONNX by tf2onnx (N x H x W x C input, Transpose and Slice in its
graph) reads as a classifier of N x C x H x W images, matches Keras, and audits like a PyTorch one.
The file is built by scripts/build_keras_onnx_fixture.py (TensorFlow is not needed here)."""

from pathlib import Path

import numpy as np
import pytest
import torch

from trustlab.data import load_dataset
from trustlab.models import load_model

pytest.importorskip("onnx")
DATA = Path(__file__).parent / "data"


def test_keras_logits_match_and_layers_are_found():
    from trustlab.models.probe import feature_layer, gradcam_layer, hookable

    classifier = load_model(DATA / "keras_cnn.onnx")
    assert classifier.input_shape == (1, 28, 28) and classifier.num_classes == 10
    x = torch.from_numpy(np.load(DATA / "keras_cnn_inputs.npy")).permute(0, 3, 1, 2)  # Keras's NHWC -> NCHW
    logits = classifier.logits(x).numpy()
    assert np.abs(logits - np.load(DATA / "keras_cnn_logits.npy")).max() < 1e-4
    assert gradcam_layer(hookable(classifier)).endswith("relu") and feature_layer(hookable(classifier))


def test_audit_of_the_keras_model_runs_every_check(tmp_path, monkeypatch):
    from trustlab.audit.runner import prepare, run_audit
    from trustlab.report.run import RunDirectory

    monkeypatch.delenv("TRUSTLAB_DATA", raising=False)
    data = load_dataset("mnist", "sample").subset(slice(0, 70))
    ctx, planned = prepare(load_model(DATA / "keras_cnn.onnx"), data, profile="quick")
    assert [p.step.name for p in planned if p.skip_reason] == ["fairness"]  # MNIST has no protected attribute
    outcome = run_audit(RunDirectory(tmp_path / "run"), ctx, planned, source="keras_cnn.onnx")
    assert not [r for r in outcome.run.results.values() if r.kind == "audit.failure"]
    assert {g.axis for g in outcome.scorecard.gates} == {
        "accuracy", "adversarial robustness", "OOD alarm", "explanation sanity", "backdoor", "distribution shift"
    }  # fmt: skip
    assert outcome.run.results["accuracy-mnist-sample"].accuracy > 0.9
