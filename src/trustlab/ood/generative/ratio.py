"""Likelihood ratio against a background model (Ren et al. 2019), for the VAE.

A generative model's likelihood mixes two things: how typical an input's low-level statistics are
(lots of black, smooth strokes) and how typical its shape is. Simple stroke-like inputs score well on
the first and fool a likelihood-based alarm (Nalisnick et al. 2019). A *background* model trained on
perturbed inputs (each pixel replaced by uniform noise with some probability, see
:class:`~trustlab.ood.generative.vae.VAEDetector`'s ``perturb_rate``) learns mostly the first part;
the ratio of the two likelihoods keeps the second. In bits: score = foreground negative ELBO minus
background negative ELBO (higher = more out-of-distribution).
"""

from __future__ import annotations

from typing import Any

import torch

from trustlab.core.exceptions import InputError
from trustlab.ood.base import Detector, detector_class
from trustlab.ood.generative.vae import VAEDetector

DEFAULT_PERTURB_RATE = 0.2


def _vae(spec: Any, **new: Any) -> VAEDetector:
    """A VAE detector: as given, rebuilt from a stored spec (its own settings), or new with ``new``."""
    if isinstance(spec, VAEDetector):
        return spec
    if isinstance(spec, dict) and spec.get("name") == "vae":
        return detector_class("vae")(**spec.get("config", {}))
    if spec is None:
        return VAEDetector(**new)
    raise InputError(f"the likelihood ratio's models must be VAE detectors, got {type(spec).__name__}")


class LikelihoodRatio(Detector):
    """Foreground VAE's negative ELBO minus the background VAE's (both in bits)."""

    name = "ratio"
    score_label = "VAE likelihood ratio to a background model (bits)"

    def __init__(
        self,
        *,
        foreground: Any = None,
        background: Any = None,
        perturb_rate: float = DEFAULT_PERTURB_RATE,
        batch_size: int = 256,
    ) -> None:
        super().__init__(batch_size=batch_size)
        # both scored by their negative ELBO, whatever score they were stored or built with
        self.foreground = _vae(foreground).rescored("nelbo")
        self.background = _vae(background, perturb_rate=perturb_rate).rescored("nelbo")

    def config(self) -> dict[str, Any]:
        return {
            **super().config(),
            "foreground": {"name": "vae", "config": self.foreground.config()},
            "background": {"name": "vae", "config": self.background.config()},
        }

    def _fit(self, x: torch.Tensor, y: torch.Tensor | None) -> None:
        for model in (self.foreground, self.background):
            if not model.fitted:
                model.fit(x)

    def set_fitted(self, input_shape: tuple[int, ...], bounds: tuple[float, float] | None) -> None:
        super().set_fitted(input_shape, bounds)
        for model in (self.foreground, self.background):
            model.set_fitted(input_shape, bounds)

    def state(self) -> dict[str, torch.Tensor]:
        return {
            **{f"foreground.{k}": v for k, v in self.foreground.state().items()},
            **{f"background.{k}": v for k, v in self.background.state().items()},
        }

    def load_state(self, state: dict[str, torch.Tensor]) -> None:
        for prefix, model in (("foreground.", self.foreground), ("background.", self.background)):
            model.load_state({k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)})

    def _score_batch(self, x: torch.Tensor) -> torch.Tensor:
        return self.foreground._score_batch(x).double() - self.background._score_batch(x).double()
