"""Input-complexity correction for generative scores (Serrà et al., ICLR 2020).

Generative models give simple inputs (flat backgrounds, simple shapes) high likelihood, even
from another distribution. Serrà et al. subtract an estimate of the input's complexity, its
length in bits under a lossless compressor (PNG here): S(x) = -log2 p(x) - L(x), slope 1.

That slope assumes the score is a likelihood of the 8-bit image in bits. A Bernoulli VAE's
negative ELBO is not (uniform noise costs it about 1 bit per pixel, PNG about 8), and with slope
1 noise scores as *more* in-distribution than digits. So by default the slope is fitted by least
squares on the training data, removing only the part of the score that complexity explains
there; ``slope=1.0`` gives Serrà et al.'s S(x) for models with a proper discrete likelihood.
"""

from __future__ import annotations

import io
from typing import Any

import numpy as np
import torch
from PIL import Image

from trustlab.core.exceptions import InputError
from trustlab.ood.base import Detector, detector_class


def complexity_bits(x: torch.Tensor, bounds: tuple[float, float] = (0.0, 1.0)) -> torch.Tensor:
    """Length in bits of each image (N, C, H, W) as an 8-bit PNG (channels stacked vertically)."""
    low, high = bounds
    pixels = ((x.detach().cpu().float() - low) / (high - low) * 255.0).round().clamp(0, 255).to(torch.uint8)
    pixels = pixels.reshape(x.shape[0], -1, x.shape[-1]).numpy()
    sizes = np.empty(x.shape[0], dtype=np.float64)
    for i, image in enumerate(pixels):  # the compressor works one image at a time
        buffer = io.BytesIO()
        Image.fromarray(image, mode="L").save(buffer, format="PNG", compress_level=9)
        sizes[i] = 8 * buffer.tell()
    return torch.from_numpy(sizes)


class ComplexityCorrected(Detector):
    """``base`` score minus ``slope`` x complexity (PNG bits); ``slope=None`` fits it on the training data."""

    name = "complexity"

    def __init__(self, *, base: Detector | dict[str, Any], slope: float | None = None, batch_size: int = 256) -> None:
        super().__init__(batch_size=batch_size)
        if isinstance(base, dict):
            base = detector_class(base["name"])(**base["config"])
        if not isinstance(base, Detector) or base.needs_classifier:
            raise InputError("the complexity correction applies to a generative detector (vae or wgan)")
        self.base = base
        self.slope = None if slope is None else float(slope)
        self.slope_: float | None = None

    @property
    def score_label(self) -> str:  # type: ignore[override]
        return f"{self.base.score_label} - {self.slope_ or 1:.3g} x PNG bits"

    def config(self) -> dict[str, Any]:
        return {
            **super().config(),
            "base": {"name": self.base.name, "config": self.base.config()},
            "slope": self.slope,
        }

    def _fit(self, x: torch.Tensor, y: torch.Tensor | None) -> None:
        if not self.base.fitted:
            self.base.fit(x, y)
        if self.slope is not None:
            self.slope_ = self.slope
        else:
            scores, bits = self.base.score(x), complexity_bits(x)
            centred = bits - bits.mean()
            self.slope_ = float((centred * (scores - scores.mean())).sum() / centred.square().sum().clamp_min(1e-12))

    def state(self) -> dict[str, torch.Tensor]:
        out = {f"base.{k}": v for k, v in self.base.state().items()}
        out["slope"] = torch.tensor([self.slope_], dtype=torch.float64)
        return out

    def load_state(self, state: dict[str, torch.Tensor]) -> None:
        self.base.load_state({k[5:]: v for k, v in state.items() if k.startswith("base.")})
        self.slope_ = float(state["slope"][0])

    def set_fitted(self, input_shape: tuple[int, ...], bounds: tuple[float, float] | None) -> None:
        super().set_fitted(input_shape, bounds)
        self.base.set_fitted(input_shape, bounds)

    def _score_batch(self, x: torch.Tensor) -> torch.Tensor:
        return self.base._score_batch(x).double() - self.slope_ * complexity_bits(x, self.bounds_ or (0.0, 1.0))
