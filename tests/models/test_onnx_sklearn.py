"""scikit-learn models exported to ONNX (skl2onnx writes ai.onnx.ml operators) read as
differentiable classifiers, and audited like any tabular model."""

import numpy as np
import pytest
import torch

from trustlab.data import load_dataset
from trustlab.models import load_model

pytest.importorskip("onnx")
skl2onnx = pytest.importorskip("skl2onnx")


@pytest.fixture(scope="module")
def pima(reference_data):
    return load_dataset("pima", "train", root=reference_data), load_dataset("pima", "test", root=reference_data)


@pytest.mark.parametrize("classes", [2, 3])
@pytest.mark.parametrize("zipmap", [True, False])
def test_probabilities_match_scikit_learn_and_gradients_flow(pima, tmp_path, classes, zipmap):
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    train, test = pima
    x = train.x.numpy()
    y = train.y.numpy() if classes == 2 else np.digitize(x[:, 1], np.quantile(x[:, 1], [1 / 3, 2 / 3]))
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)).fit(x, y)
    onx = skl2onnx.to_onnx(model, x[:1].astype(np.float32), options={"zipmap": zipmap})
    (tmp_path / "model.onnx").write_bytes(onx.SerializeToString())
    classifier = load_model(tmp_path / "model.onnx")
    assert classifier.input_shape == (8,) and classifier.num_classes == classes and classifier.bounds is None
    expected = torch.from_numpy(model.predict_proba(test.x.numpy())).float()
    assert torch.allclose(classifier.proba(test.x), expected, atol=1e-5)
    inputs = test.x[:5].clone().requires_grad_(True)
    classifier.forward(inputs).logsumexp(1).sum().backward()
    assert inputs.grad is not None and inputs.grad.abs().sum() > 0


def test_audit_of_a_scikit_learn_onnx_model(pima, tmp_path, monkeypatch):
    from sklearn.linear_model import LogisticRegression

    from trustlab.audit.runner import prepare, run_audit
    from trustlab.report.run import RunDirectory

    monkeypatch.delenv("TRUSTLAB_DATA", raising=False)
    train, test = pima
    model = LogisticRegression(max_iter=2000).fit(train.x.numpy(), train.y.numpy())
    onx = skl2onnx.to_onnx(model, train.x.numpy()[:1].astype(np.float32))
    (tmp_path / "model.onnx").write_bytes(onx.SerializeToString())
    ctx, planned = prepare(load_model(tmp_path / "model.onnx"), test, profile="quick")
    outcome = run_audit(RunDirectory(tmp_path / "run"), ctx, planned, source="model.onnx")
    assert not [r for r in outcome.run.results.values() if r.kind == "audit.failure"]
    assert {g.axis for g in outcome.scorecard.gates} == {"accuracy", "OOD alarm"}
    assert outcome.run.results["accuracy-pima-test"].accuracy > 0.7
