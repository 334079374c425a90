"""Robust accuracy at fixed budgets: the share of examples correct before *and* after the attack."""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from trustlab.core.exceptions import InputError
from trustlab.core.results import Result
from trustlab.models.classifier import Classifier
from trustlab.robustness.attacks import Attack

ERR_EPS_VALUE = "{option} must be a finite number >= 0, got {got!r}"
ERR_EPS_RANGE = (
    "{option} {eps:g} is larger than the {norm} input range {limit:g}{how} (bounds [{low:g}, {high:g}]): "
    "no perturbation that large stays inside the bounds"
)


def eps_limit(model: Classifier, norm: str) -> float | None:
    """The largest budget that means anything for ``model``'s inputs: the input range
    high - low for L-inf; for L2, range * sqrt(number of input values), the distance between
    the two corners of the input box. None when the model has no bounds (tabular)."""
    if model.bounds is None:
        return None
    span = model.bounds[1] - model.bounds[0]
    return span if norm == "linf" else span * math.sqrt(math.prod(model.input_shape))


ERR_UNBOUNDED = (
    "robustness is measured as a perturbation in input units, which needs bounded inputs such as "
    "pixels; this model's inputs ({shape}) are unbounded tabular features, where eps in standardised "
    "units is not built yet"
)


def require_bounded(model: Classifier) -> None:
    """A one-line error for models without input bounds (tabular), where eps has no fixed scale."""
    if model.bounds is None:
        raise InputError(ERR_UNBOUNDED.format(shape=" x ".join(map(str, model.input_shape))))


def check_eps(model: Classifier, norm: str, eps: Any, *, option: str = "eps") -> float:
    """``eps`` as a float if it is a usable budget for ``model`` under ``norm``: finite, >= 0 and
    no larger than :func:`eps_limit`; else a one-line InputError naming ``option`` and the range."""
    try:
        value = float(eps)
    except (TypeError, ValueError):
        value = math.nan
    if isinstance(eps, bool | str) or not (math.isfinite(value) and value >= 0):
        raise InputError(ERR_EPS_VALUE.format(option=option, got=eps))
    limit = eps_limit(model, norm)
    if limit is not None and value > limit * (1 + 1e-9):
        low, high = model.bounds
        how = "" if norm == "linf" else f" = {high - low:g} x sqrt({math.prod(model.input_shape)} input values)"
        raise InputError(
            ERR_EPS_RANGE.format(
                option=option,
                eps=value,
                norm="L-inf" if norm == "linf" else "L2",
                limit=limit,
                how=how,
                low=low,
                high=high,
            )
        )
    return value


@dataclass(frozen=True)
class RobustAccuracyResult(Result):
    """Clean accuracy and robust accuracy at each eps of the grid (input units) under one attack."""

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
    """Attack at each budget in ``eps``; an example counts as robust if it is correct clean and the attack fails.
    Every budget is checked against the input range (:func:`check_eps`) before any attack runs."""
    eps = [check_eps(model, attack.norm, budget, option="eps") for budget in eps]
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
