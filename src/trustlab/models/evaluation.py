"""Accuracy of a classifier on a data set, and the model card that heads every report."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from trustlab.core.batching import BatchCheckpoint, run_batches
from trustlab.core.exceptions import InputError
from trustlab.core.results import Result
from trustlab.core.stats import wilson_interval
from trustlab.data.dataset import Dataset, require_examples
from trustlab.models.classifier import Classifier

MOST_CONFUSED = 5


@dataclass(frozen=True)
class ModelCard(Result):
    """Who the model is: architecture, size, inputs, classes, normalisation, weights digest."""

    measures_model = False

    kind = "model_card"
    name: str
    architecture: str | None
    config: dict[str, Any]
    parameters: int
    input_shape: tuple[int, ...]
    class_names: tuple[str, ...]
    bounds: tuple[float, float] | None
    mean: tuple[float, ...] | None
    std: tuple[float, ...] | None
    weights_sha256: str
    description: str = ""


@dataclass(frozen=True)
class AccuracyResult(Result):
    """Overall and per-class accuracy, the confusion matrix (rows: true, columns: predicted)
    and the most-confused (true, predicted, count) pairs."""

    kind = "accuracy"
    dataset: str
    split: str
    examples: int
    accuracy: float
    accuracy_interval: tuple[float, float]
    class_names: tuple[str, ...]
    per_class_accuracy: tuple[float | None, ...]
    per_class_support: tuple[int, ...]
    confusion: tuple[tuple[int, ...], ...]
    most_confused: tuple[tuple[str, str, int], ...]


def model_card(classifier: Classifier, *, name: str, description: str = "") -> ModelCard:
    """The model card of ``classifier``, under ``name``."""
    d = classifier.describe()
    return ModelCard(
        name=name,
        architecture=classifier.architecture,
        config=_jsonable(classifier.config),
        parameters=classifier.num_parameters,
        input_shape=classifier.input_shape,
        class_names=classifier.class_names,
        bounds=classifier.bounds,
        mean=None if d["mean"] is None else tuple(d["mean"]),
        std=None if d["std"] is None else tuple(d["std"]),
        weights_sha256=classifier.weights_sha256(),
        description=description,
    )


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return tuple(_jsonable(v) for v in value)
    return value


def accuracy_from_predictions(
    y: torch.Tensor, predicted: torch.Tensor, class_names: tuple[str, ...], *, dataset: str = "", split: str = ""
) -> AccuracyResult:
    """Build the accuracy result from labels and predictions (pure; no model involved)."""
    k = len(class_names)
    confusion = torch.bincount(y.long() * k + predicted.long(), minlength=k * k).reshape(k, k)
    support = confusion.sum(1)
    correct = confusion.diag()
    per_class = tuple(float(c) / float(s) if s else None for c, s in zip(correct.tolist(), support.tolist()))
    off = confusion.clone()
    off.fill_diagonal_(0)
    counts, flat = off.flatten().sort(descending=True, stable=True)
    pairs = tuple(
        (class_names[i // k], class_names[i % k], int(c))
        for c, i in zip(counts.tolist()[:MOST_CONFUSED], flat.tolist()[:MOST_CONFUSED])
        if c > 0
    )
    n, hits = int(y.numel()), int(correct.sum())
    return AccuracyResult(
        dataset=dataset,
        split=split,
        examples=n,
        accuracy=hits / n if n else float("nan"),
        accuracy_interval=wilson_interval(hits, n),
        class_names=tuple(class_names),
        per_class_accuracy=per_class,
        per_class_support=tuple(support.tolist()),
        confusion=tuple(tuple(row) for row in confusion.tolist()),
        most_confused=pairs,
    )


def evaluate(
    classifier: Classifier,
    dataset: Dataset,
    *,
    batch_size: int | None = None,
    checkpoint: BatchCheckpoint | None = None,
    show_progress: bool = True,
) -> AccuracyResult:
    """Accuracy of ``classifier`` on ``dataset``; resumable batch by batch with a checkpoint. An
    empty data set is an InputError (its accuracy would be nan)."""
    require_examples(dataset)
    if dataset.num_classes != classifier.num_classes:
        raise InputError(
            f"dataset {dataset.name!r} has {dataset.num_classes} classes but the model "
            f"predicts {classifier.num_classes}"
        )
    x = classifier.validate(dataset.x, name=f"inputs of dataset {dataset.name!r}")
    size = batch_size or classifier.batch_size

    def predict(start: int, stop: int) -> dict[str, torch.Tensor]:
        return {"predicted": classifier.predict(x[start:stop], batch_size=size)}

    outputs = run_batches(
        predict, len(dataset), size, checkpoint=checkpoint, desc="evaluating", show_progress=show_progress
    )
    predicted = outputs.get("predicted", torch.empty(0, dtype=torch.long))
    return accuracy_from_predictions(
        dataset.y, predicted, classifier.class_names, dataset=dataset.name, split=dataset.split
    )
