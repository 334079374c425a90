"""A poisoning kit for making backdoored test subjects: stamp a trigger on a share of the training
data, relabel those examples, train. Documented as what it is: a way to obtain models whose
backdoor is known, so that the scan and the repair can be tested and benchmarked.

Targets: one class for every poisoned example (all-to-one), or ``"all-to-all"``: class ``c`` is
sent to ``c + 1`` modulo the number of classes.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import torch

from trustlab.backdoor.triggers import Trigger
from trustlab.core.exceptions import InputError
from trustlab.models.classifier import Classifier

ALL_TO_ALL = "all-to-all"


def target_labels(y: torch.Tensor, target: int | str, num_classes: int) -> torch.Tensor:
    """The label each example is sent to by a trigger with ``target`` (a class or ``"all-to-all"``)."""
    if target == ALL_TO_ALL:
        return (y + 1) % num_classes
    if isinstance(target, bool) or not isinstance(target, int) or not 0 <= target < num_classes:
        raise InputError(f"target must be a class index in 0..{num_classes - 1} or {ALL_TO_ALL!r}, got {target!r}")
    return torch.full_like(y, target)


def poison(
    dataset: Any, trigger: Trigger, target: int | str, rate: float, *, seed: int = 0
) -> tuple[Any, torch.Tensor]:
    """A copy of ``dataset`` in which a seeded ``rate`` share of the examples (drawn among those
    whose label changes) carry ``trigger`` and the target label; also returns their indices.
    The original data set is not modified."""
    if not 0 < rate < 1:
        raise InputError(f"the poison rate must be between 0 and 1, got {rate}")
    sent = target_labels(dataset.y, target, dataset.num_classes)
    candidates = torch.nonzero(sent != dataset.y).flatten()
    count = round(rate * len(dataset))
    if count < 1 or count > len(candidates):
        raise InputError(
            f"a poison rate of {rate:g} asks for {count} of {len(dataset)} examples, "
            f"but {len(candidates)} can carry the trigger (those not already of the target class)"
        )
    generator = torch.Generator().manual_seed(seed)
    chosen = candidates[torch.randperm(len(candidates), generator=generator)[:count]].sort().values
    x, y = dataset.x.clone(), dataset.y.clone()
    x[chosen] = trigger.stamp(x[chosen])
    y[chosen] = sent[chosen]
    return replace(dataset, name=f"{dataset.name} (poisoned)", x=x, y=y), chosen


def attack_success_rate(
    classifier: Classifier, x: torch.Tensor, y: torch.Tensor, trigger: Trigger, target: int | str
) -> float:
    """Share of stamped inputs classified as their target, over inputs whose true class is not the
    target (for all-to-all every input counts)."""
    sent = target_labels(y, target, classifier.num_classes)
    keep = sent != y
    if not bool(keep.any()):
        raise InputError("no input of a class other than the target: the attack success rate is undefined")
    predicted = classifier.predict(trigger.stamp(x[keep]))
    return float((predicted.cpu() == sent[keep].cpu()).float().mean())


def train_infected(
    dataset: Any,
    trigger: Trigger,
    target: int | str,
    *,
    rate: float = 0.1,
    seed: int = 0,
    arch: str | None = None,
    epochs: int = 5,
    batch_size: int = 64,
    learning_rate: float = 1e-3,
    show_progress: bool = True,
) -> tuple[Classifier, Any]:
    """A new classifier trained (by the shared training loop) on ``dataset`` poisoned with
    ``trigger`` at ``rate``; returns it and its training result."""
    from trustlab.models.training import classifier_for, train

    poisoned, _ = poison(dataset, trigger, target, rate, seed=seed)
    classifier = classifier_for(dataset, arch=arch, seed=seed)
    history = train(
        classifier,
        poisoned.x,
        poisoned.y,
        epochs=epochs,
        batch_size=batch_size,
        learning_rate=learning_rate,
        seed=seed,
        dataset_name=poisoned.name,
        show_progress=show_progress,
    )
    return classifier, history
