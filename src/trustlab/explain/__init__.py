"""Explanations: attribution maps shaped like the input (Captum-backed), their metrics, tabular
LIME and SHAP, feature visualisation, and the sanity checks of an explanation method."""

from trustlab.core.lazy import lazy_exports

_EXPORTS = {
    "METHODS": "trustlab.explain.attributions",
    "explain": "trustlab.explain.attributions",
    "attribution_gallery": "trustlab.explain.gallery",
    "AttributionGalleryResult": "trustlab.explain.gallery",
    "activation_maximisation": "trustlab.explain.featurevis",
    "FeatureVisResult": "trustlab.explain.featurevis",
    "explanation_sanity": "trustlab.explain.sanity",
    "ExplanationSanityResult": "trustlab.explain.sanity",
    "tabular_explanations": "trustlab.explain.tabular",
    "TabularExplanationResult": "trustlab.explain.tabular",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
