"""Post-hoc detectors: scores read from a trained classifier's logits or penultimate features."""

from trustlab.ood.posthoc.features import KNN, Mahalanobis
from trustlab.ood.posthoc.logits import Energy, MaxLogit, MaxSoftmax

__all__ = ["KNN", "Energy", "Mahalanobis", "MaxLogit", "MaxSoftmax"]
