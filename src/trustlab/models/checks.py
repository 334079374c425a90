"""The model's own checks: its card and its accuracy on a data set, written into a run directory."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from trustlab.models.classifier import Classifier
from trustlab.models.evaluation import AccuracyResult, evaluate, model_card


def add_model_card(run: Any, classifier: Classifier, *, source: str) -> None:
    """Record the model in ``run``'s manifest and add its card (every report names its model)."""
    run.describe_model(classifier, source=source)
    run.add("model_card", model_card(classifier, name=Path(source).stem if Path(source).exists() else source))


def run_accuracy(
    run: Any, classifier: Classifier, data: Any, *, source: str, batch_size: int | None = None
) -> AccuracyResult:
    """Record the model and data in ``run``'s manifest, add the model card and the accuracy on
    ``data``; an interrupted evaluation resumes from its last completed batch."""
    add_model_card(run, classifier, source=source)
    run.describe_data(data)
    key = f"accuracy-{data.name}-{data.split}"
    fingerprint = {
        "model": classifier.weights_sha256(),
        "data": data.sha256,
        "n": len(data),
        "batch_size": batch_size or classifier.batch_size,
    }
    checkpoint = run.checkpoint(key, fingerprint)
    with run.timed(key):
        result = evaluate(classifier, data, batch_size=batch_size, checkpoint=checkpoint)
    run.add(key, result)
    checkpoint.clear()
    return result
