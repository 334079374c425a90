"""Do adversarially trained models have better explanations? (robust vs natural, clean vs adversarial)

Two models (natural and adversarially trained) x two kinds of input (clean, and PGD-adversarial
against that same model): saliency maps towards the true class for each of the four cells, and
per cell the mean of alignment with the input (signed cosine, and Etmann et al.'s
|<x, g>| / ||g||), compactness (Gini, entropy, share of mass in the top 10% of pixels) and
faithfulness (deletion AUC), with bootstrap 95% intervals. Etmann et al. (2019) and Tsipras et
al. (2019) found robust models' gradients better aligned with the input; this reports what the
shipped models show, whichever way it comes out.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from trustlab.core.progress import progress
from trustlab.core.results import Result
from trustlab.core.stats import bootstrap_interval
from trustlab.explain import metrics
from trustlab.explain.attributions import explain
from trustlab.explain.gallery import Image, image_rows
from trustlab.models.classifier import Classifier
from trustlab.robustness.attacks import PGD
from trustlab.robustness.attacks.base import Attack

METRICS = {
    "cosine_alignment": "signed cosine <x, g> / (||x|| ||g||) (higher = map looks like the input)",
    "etmann_alignment": "Etmann et al.: |<x, g>| / ||g||, pixel units (higher = better aligned)",
    "gini": "Gini index of |g| (higher = sparser)",
    "entropy": "entropy of |g| / sum |g| (lower = more compact)",
    "top10_mass": "share of |g| in the top 10% of pixels (higher = more compact)",
    "deletion_auc": "deletion AUC, probability of the true class (lower = more faithful)",
}


@dataclass(frozen=True)
class RobustVsNaturalResult(Result):
    """Per model and input kind (clean, adversarial): accuracy, the mean of each map metric with its
    95% interval, and a small gallery of maps."""

    kind = "robust_vs_natural"
    dataset: str
    models: tuple[str, ...]  # (natural, robust)
    inputs: tuple[str, ...]  # ("clean", "adversarial")
    method: str
    attack: str
    eps: float
    examples: int
    accuracy: dict[str, dict[str, float]]  # model -> input kind -> accuracy
    means: dict[str, dict[str, dict[str, float]]]  # metric -> model -> input kind -> mean
    intervals: dict[str, dict[str, dict[str, tuple[float, float]]]]
    metric_descriptions: dict[str, str]
    gallery_inputs: dict[str, dict[str, tuple[Image, ...]]]  # model -> input kind -> images
    gallery_maps: dict[str, dict[str, tuple[Image, ...]]]
    seconds: float


def _cell_metrics(model: Classifier, x: torch.Tensor, g: torch.Tensor, y: torch.Tensor, steps: int) -> dict:
    return {
        "cosine_alignment": metrics.cosine_alignment(x, g),
        "etmann_alignment": metrics.etmann_alignment(x, g),
        "gini": metrics.gini(g),
        "entropy": metrics.entropy_complexity(g),
        "top10_mass": metrics.top_k_mass(g, 0.1),
        "deletion_auc": metrics.deletion_auc(model, x, g, y, steps=steps),
    }


def robust_vs_natural(
    natural: Classifier,
    robust: Classifier,
    x: Any,
    y: Any,
    *,
    attack: Attack | None = None,
    eps: float = 0.1,
    method: str = "saliency",
    deletion_steps: int = 28,
    gallery: int = 4,
    bootstrap: int = 1000,
    seed: int = 0,
    names: tuple[str, str] = ("natural", "robust"),
    dataset: str = "",
) -> RobustVsNaturalResult:
    """Run the 2 x 2 study on images ``x`` with labels ``y``; see the module doc."""
    began = time.perf_counter()
    attack = attack or PGD(steps=20)
    x = natural.validate(x)
    y = natural.validate_labels(y, x.shape[0])
    rng = np.random.default_rng(seed)
    means: dict[str, dict[str, dict[str, float]]] = {m: {} for m in METRICS}
    intervals: dict[str, dict[str, dict[str, tuple[float, float]]]] = {m: {} for m in METRICS}
    accuracy: dict[str, dict[str, float]] = {}
    gallery_inputs: dict[str, dict[str, tuple[Image, ...]]] = {}
    gallery_maps: dict[str, dict[str, tuple[Image, ...]]] = {}
    cells = [(name, model, kind) for name, model in zip(names, (natural, robust)) for kind in ("clean", "adversarial")]
    for name, model, kind in progress(cells, desc="robust vs natural", total=4, unit="cell"):
        inputs = x if kind == "clean" else attack.attack(model, x, y, eps=eps).adversarials
        accuracy.setdefault(name, {})[kind] = float((model.predict(inputs) == y).double().mean())
        maps = explain(model, inputs, y, method=method)
        values = _cell_metrics(model, inputs, maps, y, deletion_steps)
        for metric, v in values.items():
            v = v.double().cpu().numpy()
            means[metric].setdefault(name, {})[kind] = float(v.mean())
            intervals[metric].setdefault(name, {})[kind] = bootstrap_interval(v, "mean", bootstrap, rng)
        gallery_inputs.setdefault(name, {})[kind] = tuple(image_rows(t) for t in inputs[:gallery])
        gallery_maps.setdefault(name, {})[kind] = tuple(image_rows(t) for t in maps[:gallery])
    return RobustVsNaturalResult(
        dataset=dataset,
        models=tuple(names),
        inputs=("clean", "adversarial"),
        method=method,
        attack=repr(attack),
        eps=float(eps),
        examples=int(x.shape[0]),
        accuracy=accuracy,
        means=means,
        intervals=intervals,
        metric_descriptions=dict(METRICS),
        gallery_inputs=gallery_inputs,
        gallery_maps=gallery_maps,
        seconds=time.perf_counter() - began,
    )
