"""Backdoor checks written into a run directory: the Neural Cleanse scan, and the repair of what
it found (a new model artefact; the user's model is left as it is)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from trustlab.backdoor.cleanse import BackdoorScanResult, CleanseSettings, neural_cleanse
from trustlab.backdoor.repair import METHODS, RepairResult, prune, unlearn
from trustlab.backdoor.triggers import Trigger
from trustlab.core.exceptions import InputError, UnknownNameError
from trustlab.models.classifier import Classifier

DEFAULT_EXAMPLES = 200  # clean inputs the triggers are optimised on


def clean_sample(data: Any, count: int, *, seed: int = 0) -> Any:
    """``count`` examples of ``data`` drawn at random (seeded), or all of them; a one-line error for
    data that cannot show a backdoor (fewer than two classes)."""
    if len(set(data.y.tolist())) < 2:
        raise InputError(f"data set {data.name!r} holds a single class; a backdoor scan needs clean inputs of several")
    return data.sample(count, seed=seed)


def run_backdoor_scan(
    run: Any,
    classifier: Classifier,
    data: Any,
    *,
    examples: int = DEFAULT_EXAMPLES,
    seeds: Any = (0,),
    settings: CleanseSettings | None = None,
    seed: int = 0,
) -> BackdoorScanResult:
    """Neural Cleanse on ``examples`` clean inputs of ``data`` (a seeded sample), into ``run``."""
    sample = clean_sample(data, examples, seed=seed)
    run.describe_data(data)
    key = f"backdoor-scan-{data.name}"
    with run.timed(key):
        result = neural_cleanse(
            classifier, sample.x, seeds=seeds, settings=settings, dataset=f"{data.name}/{data.split}"
        )
    return run.add(key, result)


def reversed_triggers(scan: BackdoorScanResult, targets: Any = None) -> list[tuple[Trigger, int]]:
    """(reversed trigger, label) for ``targets`` (default: the labels the scan flagged)."""
    labels = list(scan.flagged if targets is None else targets)
    for label in labels:
        if not 0 <= int(label) < len(scan.class_names):
            raise InputError(f"target {label} is not a label of this model (0..{len(scan.class_names) - 1})")
    return [(scan.trigger(int(k)), int(k)) for k in labels]


def run_backdoor_repair(
    run: Any,
    classifier: Classifier,
    data: Any,
    scan: BackdoorScanResult,
    *,
    out: str | Path,
    method: str = "unlearning",
    targets: Any = None,
    share: float = 0.1,
    true_trigger: tuple[Trigger, Any] | None = None,
    evaluation: Any = None,
    seed: int = 0,
) -> RepairResult:
    """Remove the triggers ``scan`` reversed for ``targets`` (default: its flagged labels) by
    ``method``, write the repaired model to ``out`` and its before/after result into ``run``,
    measured on ``evaluation`` (default: the part of ``data`` the repair does not use)."""
    from dataclasses import replace

    from trustlab.models.portable import save_any_model

    if method not in METHODS:
        raise UnknownNameError(f"unknown repair method {method!r}; expected one of {', '.join(METHODS)}")
    if tuple(scan.class_names) != tuple(classifier.class_names):
        raise InputError("the scan result is of a model with other classes; scan this model first")
    triggers = reversed_triggers(scan, targets)
    repair = unlearn if method == "unlearning" else prune
    key = f"backdoor-repair-{method}"
    with run.timed(key):
        repaired, result = repair(
            classifier, data, triggers, share=share, true_trigger=true_trigger, evaluation=evaluation, seed=seed
        )
    path = save_any_model(repaired, out)
    return run.add(key, replace(result, artefact=str(path)))
