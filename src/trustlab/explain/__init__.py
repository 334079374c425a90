"""Explanations: attribution maps shaped like the input (Captum-backed)."""

from trustlab.explain.attributions import METHODS, explain

__all__ = ["METHODS", "explain"]
