"""Studies: experiments that combine capabilities into one question (robust vs natural models,
what an attack does to the explanations)."""

from trustlab.core.lazy import lazy_exports

_EXPORTS = {
    "robust_vs_natural": "trustlab.studies.robust_vs_natural",
    "RobustVsNaturalResult": "trustlab.studies.robust_vs_natural",
    "explain_attack": "trustlab.studies.attack_explanations",
    "AttackExplanationResult": "trustlab.studies.attack_explanations",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
