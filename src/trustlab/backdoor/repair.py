"""Removing a backdoor found by the scan, as Neural Cleanse proposes.

* **Unlearning**: fine-tune a copy of the model on a small share of clean data (default 10%) plus
  copies of a random half of it stamped with the reversed trigger and kept at their true labels,
  so the model learns that the trigger means nothing: SGD with momentum 0.9 at a constant
  learning rate of 1.5e-3 for 5 epochs. The paper replaces 20% of the examples with stamped ones
  and fine-tunes one epoch. Measured on MNIST test subjects (evaluated on the test split):
  adding stamped copies beside their clean originals lost 0.05-0.07 points of clean accuracy
  where replacing them lost 0.30-0.35; Adam at 1e-3 lost 0.65-0.70 where SGD lost 0.05; and the
  defaults were chosen on the three zoo models (benchmarks/backdoor.py) whose true trigger still
  succeeded on 6.5-10% of inputs after a 20%, 3-epoch, 3e-3 unlearning (now 3.5-4.2%, at a cost
  of 0.3-0.9 points).
* **Pruning**: rank the penultimate features (the input of the last linear map) by how much more
  they fire on inputs stamped with the reversed trigger than on clean ones, and cut the most
  trigger-driven ones (zero their weights in the last layer), a few at a time, until the reversed
  trigger's success falls below the goal.

Clean accuracy and attack success (with the reversed trigger and, for test subjects, the true
one) are measured before and after on clean data the repair did not use. The user's model is
never modified: the repaired one is a copy.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import torch

from trustlab.backdoor.poisoning import attack_success_rate
from trustlab.backdoor.triggers import Trigger
from trustlab.core.exceptions import InputError
from trustlab.core.results import Record, Result
from trustlab.models.classifier import Classifier

METHODS = ("unlearning", "pruning")


@dataclass(frozen=True)
class PruningStep(Record):
    """The model after cutting ``neurons`` penultimate features: clean accuracy and attack success."""

    kind = "backdoor.pruning_step"
    neurons: int
    fraction: float
    accuracy: float
    asr_reversed: float
    asr_true: float | None


@dataclass(frozen=True)
class RepairResult(Result):
    """Before and after a repair: clean accuracy and attack success, on data the repair did not use."""

    kind = "backdoor.repair"
    method: str
    dataset: str
    class_names: tuple[str, ...]
    targets: tuple[int, ...]  # labels whose reversed trigger was removed
    repair_examples: int  # clean examples the repair used (fine-tuning, or ranking features)
    evaluation_examples: int
    accuracy_before: float
    accuracy_after: float
    asr_reversed_before: float
    asr_reversed_after: float
    asr_true_before: float | None
    asr_true_after: float | None
    true_trigger: str | None
    seconds: float
    stamped_examples: int = 0  # copies stamped with a reversed trigger (unlearning)
    epochs: int = 0
    learning_rate: float = 0.0
    pruned: int = 0
    features: int = 0
    pruning_curve: tuple[PruningStep, ...] = ()
    artefact: str | None = None

    @property
    def accuracy_drop(self) -> float:
        """Clean accuracy lost, in percentage points (negative: gained)."""
        return 100 * (self.accuracy_before - self.accuracy_after)

    @property
    def asr_after(self) -> float:
        """The attack success that matters after the repair: the true trigger's when known."""
        return self.asr_true_after if self.asr_true_after is not None else self.asr_reversed_after


def _split(data: Any, share: float, seed: int, limit: int, evaluation: Any = None) -> tuple[Any, Any]:
    if not 0 < share < 1:
        raise InputError(f"the share of clean data must be between 0 and 1, got {share}")
    n = len(data)
    count = round(share * n)
    if count < 1 or n - count < 1:
        raise InputError(f"{n} clean examples cannot be split into a repair share of {share:g} and the rest")
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    rest = data if evaluation is not None else data.subset(order[count:].sort().values)
    held_out = evaluation if evaluation is not None else rest
    return data.subset(order[:count].sort().values), held_out.subset(slice(0, limit))


def _check(classifier: Classifier, triggers: list[tuple[Trigger, int]], data: Any) -> None:
    classifier.require_gradients("backdoor repair")
    if not triggers:
        raise InputError("no trigger to remove: the scan flagged no label (give --target to repair one anyway)")
    if len(set(data.y.tolist())) < 2:
        raise InputError("backdoor repair needs clean data of at least two classes")


class _Measure:
    """Clean accuracy and attack success on the evaluation data, with the reversed triggers and
    (when known) the true one; and the result of a repair from two such measurements."""

    def __init__(
        self, data: Any, evaluation: Any, triggers: list[tuple[Trigger, int]], true: tuple[Trigger, Any] | None
    ) -> None:
        self.data, self.x, self.y = data, evaluation.x, evaluation.y
        self.triggers, self.true = triggers, true
        self.start = time.perf_counter()

    def __call__(self, model: Classifier) -> tuple[float, float, float | None]:
        accuracy = float((model.predict(self.x).cpu() == self.y).float().mean())
        reversed_ = sum(attack_success_rate(model, self.x, self.y, t, k) for t, k in self.triggers) / len(self.triggers)
        true = None if self.true is None else attack_success_rate(model, self.x, self.y, *self.true)
        return accuracy, reversed_, true

    def result(self, method: str, classifier: Classifier, examples: int, before, after, **details: Any) -> RepairResult:
        """The :class:`RepairResult` of ``method`` from the (accuracy, ASR reversed, ASR true)
        measured ``before`` and ``after``; ``details`` are the method's own fields."""
        return RepairResult(
            method=method,
            dataset=f"{self.data.name}/{self.data.split}",
            class_names=tuple(classifier.class_names),
            targets=tuple(int(k) for _, k in self.triggers),
            repair_examples=examples,
            evaluation_examples=len(self.x),
            accuracy_before=before[0],
            accuracy_after=after[0],
            asr_reversed_before=before[1],
            asr_reversed_after=after[1],
            asr_true_before=before[2],
            asr_true_after=after[2],
            true_trigger=None if self.true is None else self.true[0].description,
            seconds=time.perf_counter() - self.start,
            **details,
        )


def unlearn(
    classifier: Classifier,
    data: Any,
    triggers: list[tuple[Trigger, int]],
    *,
    share: float = 0.1,
    stamped: float = 0.5,
    epochs: int = 5,
    learning_rate: float = 1.5e-3,
    batch_size: int = 32,
    true_trigger: tuple[Trigger, Any] | None = None,
    evaluation: Any = None,
    seed: int = 0,
    evaluation_limit: int = 5000,
    show_progress: bool = True,
) -> tuple[Classifier, RepairResult]:
    """Unlearning (see the module doc) on ``share`` of ``data`` (clean, pixel space); the rest
    (at most ``evaluation_limit`` examples), or ``evaluation`` when given (a held-out split: the
    rest of a training split flatters a model that memorised it), measures the repair. ``triggers`` are (reversed
    trigger, its label) pairs; ``true_trigger``
    (trigger, target) is the real one when known. Returns the repaired copy and the result."""
    from trustlab.models.training import train

    _check(classifier, triggers, data)
    if not 0 < stamped <= 1:
        raise InputError(f"the stamped share must be in (0, 1], got {stamped}")
    repair_set, evaluation = _split(data, share, seed, evaluation_limit, evaluation)
    measure = _Measure(data, evaluation, triggers, true_trigger)
    before = measure(classifier)
    count = max(1, round(stamped * len(repair_set)))
    # a random part (data sets are often sorted by class), each trigger on its share of it
    picked = torch.randperm(len(repair_set), generator=torch.Generator().manual_seed(seed))[:count]
    shares = [picked[i :: len(triggers)] for i in range(len(triggers))]
    copies = [trigger.stamp(repair_set.x[s]) for (trigger, _), s in zip(triggers, shares)]
    labels = [repair_set.y[s] for s in shares]
    x, y = torch.cat([repair_set.x, *copies]), torch.cat([repair_set.y, *labels])
    repaired = classifier.copy()
    train(
        repaired,
        x,
        y,
        epochs=epochs,
        batch_size=batch_size,
        learning_rate=learning_rate,
        optimiser="sgd",
        cosine=False,
        seed=seed,
        dataset_name=f"{data.name} ({share:.0%}, {count} stamped)",
        show_progress=show_progress,
    )
    after = measure(repaired)
    details = {"stamped_examples": count, "epochs": epochs, "learning_rate": learning_rate}
    return repaired, measure.result("unlearning", classifier, len(repair_set), before, after, **details)


def _last_layer_weight(classifier: Classifier, name: str) -> torch.nn.Parameter:
    from trustlab.models.probe import find_module

    module = find_module(classifier, name)
    weight = getattr(module, "weight", None)
    if not isinstance(weight, torch.Tensor) or weight.ndim != 2 or weight.shape[0] != classifier.num_classes:
        raise InputError(
            f"pruning cuts features by zeroing their weights in the last linear layer, and {name!r} has no "
            f"{classifier.num_classes} x F weight; use unlearning"
        )
    return weight


def _features(classifier: Classifier, module: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    captured: list[torch.Tensor] = []
    handle = module.register_forward_pre_hook(lambda _m, args: captured.append(args[0].detach().flatten(1)))
    try:
        classifier.logits(x)
    finally:
        handle.remove()
    return torch.cat(captured).cpu()


def prune(
    classifier: Classifier,
    data: Any,
    triggers: list[tuple[Trigger, int]],
    *,
    share: float = 0.1,
    step: float = 0.02,
    max_fraction: float = 0.8,
    goal: float = 0.05,
    true_trigger: tuple[Trigger, Any] | None = None,
    evaluation: Any = None,
    seed: int = 0,
    evaluation_limit: int = 2000,
) -> tuple[Classifier, RepairResult]:
    """Pruning (see the module doc): features ranked on ``share`` of ``data``, cut ``step`` of
    them at a time until the reversed triggers succeed on at most ``goal`` of the evaluation
    inputs or ``max_fraction`` is cut. Returns the pruned copy and the result with the curve."""
    from trustlab.models.probe import feature_layer, find_module, hookable

    _check(classifier, triggers, data)
    if not 0 < step <= max_fraction <= 1:
        raise InputError(f"need 0 < step <= max_fraction <= 1, got step {step} and max_fraction {max_fraction}")
    repair_set, evaluation = _split(data, share, seed, evaluation_limit, evaluation)
    measure = _Measure(data, evaluation, triggers, true_trigger)
    repaired = hookable(classifier.copy())
    name = feature_layer(repaired)
    weight = _last_layer_weight(repaired, name)
    module = find_module(repaired, name)
    clean = _features(repaired, module, repair_set.x).mean(0)
    stamped = torch.stack([_features(repaired, module, t.stamp(repair_set.x)).mean(0) for t, _ in triggers])
    order = (stamped.max(0).values - clean).argsort(descending=True)  # most trigger-driven first
    features = weight.shape[1]
    curve = [PruningStep(0, 0.0, *measure(repaired))]
    original = weight.detach().clone()
    cut = 0
    while curve[-1].asr_reversed > goal and cut < round(max_fraction * features):
        cut = min(round(max_fraction * features), cut + max(1, round(step * features)))
        with torch.no_grad():
            weight.copy_(original)
            weight[:, order[:cut].to(weight.device)] = 0
        curve.append(PruningStep(cut, cut / features, *measure(repaired)))
    before, after = ((s.accuracy, s.asr_reversed, s.asr_true) for s in (curve[0], curve[-1]))
    details = {"pruned": cut, "features": features, "pruning_curve": tuple(curve)}
    return repaired, measure.result("pruning", classifier, len(repair_set), before, after, **details)
