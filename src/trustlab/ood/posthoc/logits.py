"""Scores from logits alone: nothing to fit, nothing to store.

- maximum softmax probability (Hendrycks & Gimpel 2017): score = -max softmax;
- energy (Liu et al. 2020): score = -T logsumexp(logits / T), i.e. the free energy;
- maximum logit (Hendrycks et al. 2022): score = -max logit.

The last two grow with the logits' scale, which is why they often call far-away inputs such
as noise *more* in-distribution: the evaluation shows this rather than hiding it.
"""

from __future__ import annotations

from typing import Any

import torch

from trustlab.core.exceptions import InputError
from trustlab.models.classifier import Classifier
from trustlab.ood.base import PosthocDetector


class _Stateless(PosthocDetector):
    def state(self) -> dict[str, torch.Tensor]:
        return {}

    def load_state(self, state: dict[str, torch.Tensor]) -> None:
        if state:
            raise InputError(f"the {self.name} detector has no learned state, got {', '.join(state)}")


class MaxSoftmax(_Stateless):
    """Negative maximum softmax probability."""

    name = "msp"
    score_label = "-max softmax probability"

    def _score_outputs(self, logits: torch.Tensor, features: torch.Tensor | None) -> torch.Tensor:
        return -torch.softmax(logits.double(), dim=1).amax(dim=1)


class MaxLogit(_Stateless):
    """Negative maximum logit."""

    name = "maxlogit"
    score_label = "-max logit"

    def _score_outputs(self, logits: torch.Tensor, features: torch.Tensor | None) -> torch.Tensor:
        return -logits.double().amax(dim=1)


class Energy(_Stateless):
    """Free energy -T logsumexp(logits / T) at temperature ``temperature``."""

    name = "energy"
    score_label = "energy"

    def __init__(self, classifier: Classifier, *, temperature: float = 1.0, **kwargs: Any) -> None:
        super().__init__(classifier, **kwargs)
        if not float(temperature) > 0:
            raise InputError(f"temperature must be positive, got {temperature}")
        self.temperature = float(temperature)

    def config(self) -> dict[str, Any]:
        return {**super().config(), "temperature": self.temperature}

    def _score_outputs(self, logits: torch.Tensor, features: torch.Tensor | None) -> torch.Tensor:
        t = self.temperature
        return -t * torch.logsumexp(logits.double() / t, dim=1)
