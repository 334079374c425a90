"""Studies written into a run directory."""

from __future__ import annotations

from typing import Any

from trustlab.models.classifier import Classifier
from trustlab.studies.attack_explanations import AttackExplanationResult, explain_attack
from trustlab.studies.robust_vs_natural import RobustVsNaturalResult, robust_vs_natural


def run_robust_vs_natural(
    run: Any,
    natural: Classifier,
    robust: Classifier,
    data: Any,
    *,
    eps: float = 0.1,
    method: str = "saliency",
    seed: int = 0,
) -> RobustVsNaturalResult:
    """Saliency of a natural and a robust model on clean and PGD inputs: alignment, compactness, deletion."""
    run.describe_data(data)
    result = robust_vs_natural(natural, robust, data.x, data.y, eps=eps, method=method, seed=seed, dataset=data.name)
    return run.add(f"robust-vs-natural-{data.name}", result)


def run_attack_explanations(
    run: Any,
    classifier: Classifier,
    data: Any,
    *,
    attack: Any = None,
    eps: float = 0.1,
    method: str = "saliency",
    gallery: int = 8,
    name: str | None = None,
) -> AttackExplanationResult:
    """Maps before and after ``attack`` (default FGSM) at ``eps``, and per-class recall before and after."""
    result = explain_attack(
        classifier, data.x, data.y, attack=attack, eps=eps, method=method, gallery=gallery, dataset=name or data.name
    )
    return run.add(f"attack-explanations-{data.name}", result)


def run_generalisation(run: Any, train: Any, test: Any, domain_test: Any, **options: Any) -> Any:
    """The recipe study (:func:`trustlab.studies.generalisation.generalisation_study` with ``options``)
    into ``run``."""
    from trustlab.studies.generalisation import generalisation_study

    for data in (train, test, domain_test):
        run.describe_data(data)
    key = "generalisation"
    with run.timed(key):
        result = generalisation_study(train, test, domain_test, **options)
    return run.add(key, result)
