"""Robust accuracy at fixed budgets: the share of examples correct before *and* after the attack."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from trustlab.core.results import Result
from trustlab.models.classifier import Classifier
from trustlab.robustness.attacks import Attack


@dataclass(frozen=True)
class RobustAccuracyResult(Result):
    kind = "robust_accuracy"
    dataset: str
    split: str
    attack: str
    attack_name: str
    norm: str
    examples: int
    clean_accuracy: float
    eps: tuple[float, ...]
    accuracy: tuple[float, ...]
    forward_calls: int
    gradient_calls: int
    seconds: float


def robust_accuracy(
    model: Classifier,
    x: Any,
    y: Any,
    attack: Attack,
    eps: Sequence[float],
    *,
    dataset: str = "",
    split: str = "",
    attack_name: str = "",
) -> RobustAccuracyResult:
    """Attack at each budget in ``eps``; an example counts as robust if it is correct clean and the attack fails."""
    x = model.validate(x)
    y = model.validate_labels(y, x.shape[0])
    start = time.perf_counter()
    correct = model.predict(x) == y
    accuracies, forwards, gradients = [], x.shape[0], 0
    for budget in eps:
        result = attack.attack(model, x, y, eps=float(budget))
        accuracies.append(float((correct & ~result.success).float().mean()))
        forwards += result.forward_calls
        gradients += result.gradient_calls
    return RobustAccuracyResult(
        dataset=dataset,
        split=split,
        attack=repr(attack),
        attack_name=attack_name or attack.name,
        norm=attack.norm,
        examples=int(x.shape[0]),
        clean_accuracy=float(correct.float().mean()),
        eps=tuple(float(e) for e in eps),
        accuracy=tuple(accuracies),
        forward_calls=forwards,
        gradient_calls=gradients,
        seconds=time.perf_counter() - start,
    )
