"""The fairness check written into a run directory: a model's (or bare predictions') decisions on a
data set with protected attributes, measured group by group with bootstrap intervals."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from trustlab.core.exceptions import InputError
from trustlab.fairness.groups import binary, protected_groups
from trustlab.fairness.metrics import DEFAULT_BINS, DEFAULT_NEIGHBOURS
from trustlab.fairness.table import DEFAULT_MIN_GROUP_SIZE, DEFAULT_RESAMPLES, FairnessResult, fairness_table

DEFAULT_THRESHOLD = 0.5
ERR_NOT_BINARY_MODEL = "fairness metrics need a binary classifier (two classes); this model has {classes}"
ERR_PREDICTIONS = "predictions must be one 0/1 decision or one positive-class probability per example"


def decisions(model_or_predictions: Any, data: Any, *, threshold: float = DEFAULT_THRESHOLD) -> tuple:
    """(y_pred, y_score or None, model description) for ``data``.

    ``model_or_predictions`` is a trustlab Classifier with two classes (the score is its class-1
    probability), a fitted scikit-learn-style estimator with ``predict_proba``, or an array with
    one entry per example: integers or booleans are decisions (no scores: calibration is left
    out), other floats are class-1 probabilities. Scores become decisions at ``score >= threshold``.
    """
    import torch

    from trustlab.models.classifier import Classifier
    from trustlab.models.tabular import model_description, positive_probability

    if isinstance(model_or_predictions, Classifier):
        if model_or_predictions.num_classes != 2:
            raise InputError(ERR_NOT_BINARY_MODEL.format(classes=model_or_predictions.num_classes))
        score = model_or_predictions.proba(data.x)[:, 1].double().cpu().numpy()
        description = f"{model_or_predictions.architecture or 'user'} model"
    elif hasattr(model_or_predictions, "predict_proba"):
        classes = getattr(model_or_predictions, "classes_", None)
        if classes is not None and len(classes) != 2:
            raise InputError(ERR_NOT_BINARY_MODEL.format(classes=len(classes)))
        features = data.x.reshape(len(data), -1).detach().cpu().numpy()
        score = positive_probability(model_or_predictions, features)
        description = model_description(model_or_predictions)
    else:
        values = model_or_predictions
        if isinstance(values, torch.Tensor):
            values = values.detach().cpu().numpy()
        values = np.asarray(values)
        if values.shape != (len(data),) or values.dtype.kind not in "biuf":
            raise InputError(f"{ERR_PREDICTIONS} ({len(data)}), got shape {values.shape} of {values.dtype}")
        if values.dtype.kind in "biu":
            return binary(values, "predictions", len(data)), None, "given predictions"
        score, description = values.astype(np.float64), "given scores"
    if not np.isfinite(score).all() or score.min() < 0 or score.max() > 1:
        raise InputError("scores must be probabilities of the positive class, in [0, 1]")
    return (score >= threshold).astype(np.int64), score, description


def standardised_features(data: Any) -> np.ndarray:
    """``data``'s features flattened and scaled to zero mean and unit variance (constant features
    stay 0), so that no feature's unit dominates the nearest-neighbour distances of consistency."""
    x = data.x.reshape(len(data), -1).detach().cpu().numpy().astype(np.float64)
    std = x.std(0)
    return (x - x.mean(0)) / np.where(std > 0, std, 1.0)


def run_fairness(
    run: Any,
    model_or_predictions: Any,
    data: Any,
    *,
    protected: Sequence[str],
    privileged: Any = None,
    threshold: float = DEFAULT_THRESHOLD,
    consistency: bool = True,
    neighbours: int = DEFAULT_NEIGHBOURS,
    include_self: bool = False,
    bins: int = DEFAULT_BINS,
    min_group_size: int = DEFAULT_MIN_GROUP_SIZE,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
) -> FairnessResult:
    """The fairness table of ``model_or_predictions`` (see :func:`decisions`) on ``data`` over the
    groups of its ``protected`` attributes (several: their intersection), added to ``run``.

    ``privileged``: a group label (``"Male"``, or ``"Male & White"`` for an intersection), or None
    for the group with the largest selection rate. ``consistency`` adds Zemel's consistency over
    the standardised features of a tabular data set (k = ``neighbours``)."""
    protected = [protected] if isinstance(protected, str) else list(protected)
    groups = protected_groups(data, protected)
    y_true = binary(data.y, f"labels of data set {data.name!r}", len(data))
    y_pred, y_score, description = decisions(model_or_predictions, data, threshold=threshold)
    x = standardised_features(data) if consistency and data.x.ndim == 2 else None
    run.describe_data(data)
    key = f"fairness-{data.name}-{'-'.join(protected)}"
    with run.timed(key):
        result = fairness_table(
            y_true,
            y_pred,
            y_score,
            groups,
            privileged=privileged,
            x=x,
            dataset=f"{data.name}/{data.split}",
            attributes=tuple(protected),
            model=description,
            threshold=None if y_score is None else threshold,
            bins=bins,
            neighbours=neighbours,
            include_self=include_self,
            min_group_size=min_group_size,
            resamples=resamples,
            seed=seed,
        )
    return run.add(key, result)


def run_mitigations(
    run: Any,
    train: Any,
    test: Any,
    *,
    protected: Sequence[str],
    methods: Sequence[str] | None = None,
    kind: str = "logistic",
    privileged: Any = None,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
) -> Any:
    """Every mitigation (see :mod:`trustlab.fairness.mitigation`) fitted on ``train`` and measured on
    ``test`` by the groups of ``protected``, added to ``run``."""
    from trustlab.fairness.mitigation import mitigate

    protected = [protected] if isinstance(protected, str) else list(protected)
    run.describe_data(test)
    key = f"mitigation-{test.name}-{'-'.join(protected)}"
    with run.timed(key):
        result = mitigate(
            train, test, protected=protected, methods=methods, kind=kind, privileged=privileged,
            resamples=resamples, seed=seed,
        )  # fmt: skip
    return run.add(key, result)
