"""Explaining attacks: what changes in the model's explanation when an input is attacked.

For a few examples: the clean image, the adversarial image, the perturbation, and the maps
before (clean image, towards its prediction) and after (adversarial image, towards its new
prediction). For the whole set: recall per class before and after the attack at one budget,
the measure a published study of FGSM on MNIST reported.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import torch

from trustlab.core.exceptions import InputError
from trustlab.core.results import Result
from trustlab.explain.attributions import explain
from trustlab.explain.gallery import Image, image_rows
from trustlab.models.classifier import Classifier
from trustlab.robustness.attacks import FGSM
from trustlab.robustness.attacks.base import Attack


@dataclass(frozen=True)
class AttackExplanationResult(Result):
    """Gallery of clean vs adversarial explanations and per-class recall before and after."""

    kind = "attack_explanations"
    dataset: str
    attack: str
    attack_name: str
    eps: float
    method: str
    class_names: tuple[str, ...]
    examples: int  # inputs behind the recall figures
    recall_before: tuple[float | None, ...]
    recall_after: tuple[float | None, ...]
    accuracy_before: float
    accuracy_after: float
    gallery_labels: tuple[int, ...]
    gallery_clean_pred: tuple[int, ...]
    gallery_adv_pred: tuple[int, ...]
    gallery_clean: tuple[Image, ...]
    gallery_adversarial: tuple[Image, ...]
    gallery_map_before: tuple[Image, ...]
    gallery_map_after: tuple[Image, ...]
    seconds: float


def _recall(y: torch.Tensor, predicted: torch.Tensor, classes: int) -> tuple[float | None, ...]:
    hits = torch.bincount(y[predicted == y], minlength=classes).double()
    counts = torch.bincount(y, minlength=classes).double()
    return tuple(None if c == 0 else float(h / c) for h, c in zip(hits, counts))


def explain_attack(
    model: Classifier,
    x: Any,
    y: Any,
    *,
    attack: Attack | None = None,
    eps: float = 0.1,
    method: str = "saliency",
    gallery: int = 8,
    dataset: str = "",
) -> AttackExplanationResult:
    """Attack ``x`` at ``eps`` (default FGSM), then explain the first ``gallery`` examples whose
    prediction the attack flipped, before and after, with ``method``."""
    if len(model.input_shape) != 3:
        raise InputError("explain_attack shows images (inputs of shape C x H x W)")
    if gallery < 0:
        raise InputError(f"gallery must be >= 0, got {gallery}")
    began = time.perf_counter()
    attack = attack or FGSM()
    x = model.validate(x)
    y = model.validate_labels(y, x.shape[0])
    clean_pred = model.predict(x)
    adversarial = attack.attack(model, x, y, eps=eps).adversarials
    adv_pred = model.predict(adversarial)
    flipped = torch.nonzero((clean_pred == y) & (adv_pred != y)).flatten()[:gallery]
    xs, advs = x[flipped], adversarial[flipped]
    before = explain(model, xs, clean_pred[flipped], method=method) if len(flipped) else xs
    after = explain(model, advs, adv_pred[flipped], method=method) if len(flipped) else advs
    return AttackExplanationResult(
        dataset=dataset,
        attack=repr(attack),
        attack_name=attack.name,
        eps=float(eps),
        method=method,
        class_names=tuple(model.class_names),
        examples=int(x.shape[0]),
        recall_before=_recall(y, clean_pred, model.num_classes),
        recall_after=_recall(y, adv_pred, model.num_classes),
        accuracy_before=float((clean_pred == y).double().mean()),
        accuracy_after=float((adv_pred == y).double().mean()),
        gallery_labels=tuple(y[flipped].tolist()),
        gallery_clean_pred=tuple(clean_pred[flipped].tolist()),
        gallery_adv_pred=tuple(adv_pred[flipped].tolist()),
        gallery_clean=tuple(image_rows(t) for t in xs),
        gallery_adversarial=tuple(image_rows(t) for t in advs),
        gallery_map_before=tuple(image_rows(t) for t in before),
        gallery_map_after=tuple(image_rows(t) for t in after),
        seconds=time.perf_counter() - began,
    )
