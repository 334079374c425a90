"""Explanation-quality metrics: pure functions over tensors of images and attribution maps.

Shapes: images ``x`` are (N, C, H, W) in pixel space; maps ``a`` are (N, C, H, W) or (N, 1, H, W).
Every metric returns one value per example, a tensor of shape (N,), unless it says otherwise.
None of them produces NaN: a map without mass (all zeros) gets a defined value, stated per metric.

One module per family, all re-exported here (``from trustlab.explain import metrics``):

:mod:`~trustlab.explain.metrics.alignment` (map against input)
    :func:`cosine_alignment`, :func:`etmann_alignment`.
:mod:`~trustlab.explain.metrics.compactness` (how concentrated the map is)
    :func:`gini` (Quantus ``Sparseness``), :func:`entropy_complexity` (Quantus ``Complexity``),
    :func:`top_k_mass`, :func:`spatial_spread`.
:mod:`~trustlab.explain.metrics.faithfulness` (does removing what the map highlights change the prediction?)
    :func:`deletion_curve` / :func:`deletion_auc` and :func:`insertion_curve` /
    :func:`insertion_auc` (Petsiuk et al. 2018) with its blurred start :func:`insertion_blur`,
    :func:`pixel_flipping` (Quantus ``PixelFlipping``).
:mod:`~trustlab.explain.metrics.randomisation` (do the maps depend on the learned weights?)
    :func:`model_parameter_randomisation` (Adebayo et al. 2018; Quantus ``MPRT``), with the
    vectorised :func:`spearman` and :func:`pearson` it uses (from :mod:`trustlab.core.stats`,
    re-exported here).

Not included: a saliency "cleanness" measure. No published definition could be found to cite, and
trustlab does not invent one.
"""

from trustlab.core.stats import pearson, spearman
from trustlab.explain.metrics.alignment import cosine_alignment, etmann_alignment
from trustlab.explain.metrics.compactness import entropy_complexity, gini, spatial_spread, top_k_mass
from trustlab.explain.metrics.faithfulness import (
    PerturbationCurve,
    deletion_auc,
    deletion_curve,
    insertion_auc,
    insertion_blur,
    insertion_curve,
    pixel_flipping,
)
from trustlab.explain.metrics.randomisation import RandomisationResult, model_parameter_randomisation

__all__ = [
    "PerturbationCurve",
    "RandomisationResult",
    "cosine_alignment",
    "deletion_auc",
    "deletion_curve",
    "entropy_complexity",
    "etmann_alignment",
    "gini",
    "insertion_auc",
    "insertion_blur",
    "insertion_curve",
    "model_parameter_randomisation",
    "pearson",
    "pixel_flipping",
    "spatial_spread",
    "spearman",
    "top_k_mass",
]
