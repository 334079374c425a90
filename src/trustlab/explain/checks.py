"""Explanation checks written into a run directory: an attribution gallery, feature
visualisation and tabular LIME/SHAP."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from trustlab.explain.featurevis import FeatureVisResult, activation_maximisation
from trustlab.explain.gallery import DEFAULT_METHODS, AttributionGalleryResult, attribution_gallery
from trustlab.explain.sanity import ExplanationSanityResult, explanation_sanity
from trustlab.models.classifier import Classifier


def run_attributions(
    run: Any, classifier: Classifier, data: Any, *, methods: Sequence[str] = DEFAULT_METHODS
) -> AttributionGalleryResult:
    """Maps of every method in ``methods`` on ``data`` (a few images), timed, with compactness and deletion AUC."""
    gallery = attribution_gallery(classifier, data.x, data.y, methods=methods, dataset=data.name)
    return run.add(f"attributions-{data.name}", gallery)


def run_feature_visualisation(run: Any, classifier: Classifier, *, steps: int = 400, seed: int = 0) -> FeatureVisResult:
    """One optimised input per class and the probability the model gives it."""
    return run.add("feature-visualisation", activation_maximisation(classifier, steps=steps, seed=seed))


def run_tabular_explanations(
    run: Any,
    train: Any,
    test: Any,
    *,
    kind: str = "gradient_boosting",
    model: Classifier | None = None,
    rows: Any = None,
    seed: int = 0,
) -> Any:
    """Correlations, the user's ``model`` (else one of ``kind`` fitted on ``train``), LIME and SHAP
    for chosen ``test`` rows, global SHAP importance and the two methods' rank agreement."""
    from trustlab.explain.tabular import tabular_explanations

    run.describe_data(train)
    result = tabular_explanations(train, test, kind=kind, model=model, rows=rows, seed=seed)
    return run.add(f"tabular-{train.name}", result)


def run_explanation_sanity(
    run: Any, classifier: Classifier, data: Any, *, method: str = "saliency", seed: int = 0
) -> ExplanationSanityResult:
    """Randomisation sanity check and deletion faithfulness of ``method`` on ``data`` (a few images)."""
    result = explanation_sanity(classifier, data.x, data.y, method=method, seed=seed, dataset=data.name)
    return run.add(f"explanation-sanity-{data.name}", result)
