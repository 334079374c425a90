"""Feature visualisation: the input each class's logit likes best (activation maximisation).

Starting from a flat image, gradient ascent on the class logit, regularised as in Olah et al.
(2017) and Yosinski et al. (2015) so the image stays natural enough to read: random jitter
(the image is shifted by up to ``jitter`` pixels before each step), an L2 penalty, total
variation, and a Gaussian blur every ``blur_every`` steps; pixels are kept in the model's
bounds. All classes are optimised together in one batch. The result reports the probability
the model gives each image for its class.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import torch

from trustlab.core.exceptions import InputError
from trustlab.core.progress import progress
from trustlab.core.results import Result
from trustlab.data.corruptions import gaussian_blur
from trustlab.explain.gallery import Image, image_rows
from trustlab.models.classifier import Classifier


@dataclass(frozen=True)
class FeatureVisResult(Result):
    """One optimised image per class and the probability the model gives it."""

    kind = "feature_visualisation"
    class_names: tuple[str, ...]
    classes: tuple[int, ...]
    images: tuple[Image, ...]  # per class: H rows of W values (channels summed)
    probabilities: tuple[float, ...]
    settings: dict[str, float]
    seconds: float


def total_variation(x: torch.Tensor) -> torch.Tensor:
    """Sum of absolute differences between neighbouring pixels, per image."""
    dh = (x[..., 1:, :] - x[..., :-1, :]).abs().flatten(1).sum(dim=1)
    dw = (x[..., :, 1:] - x[..., :, :-1]).abs().flatten(1).sum(dim=1)
    return dh + dw


def activation_maximisation(
    model: Classifier,
    classes: Any = None,
    *,
    steps: int = 400,
    learning_rate: float = 0.1,
    jitter: int = 2,
    l2: float = 1e-4,
    tv: float = 5e-4,
    blur_every: int = 20,
    blur_sigma: float = 0.3,
    start: float = 0.1,
    seed: int = 0,
) -> FeatureVisResult:
    """Optimise one image per class in ``classes`` (default: all) to maximise that class's logit."""
    model.require_gradients("activation maximisation")
    if len(model.input_shape) != 3:
        raise InputError("activation maximisation draws images (inputs of shape C x H x W)")
    if steps < 1 or learning_rate <= 0 or jitter < 0 or blur_every < 0:
        raise InputError("steps and learning_rate must be positive; jitter and blur_every non-negative")
    classes = torch.arange(model.num_classes) if classes is None else torch.as_tensor(classes).long().flatten()
    if classes.numel() == 0 or (classes < 0).any() or (classes >= model.num_classes).any():
        raise InputError(f"classes must be indices in 0..{model.num_classes - 1}")
    low, high = model.bounds or (0.0, 1.0)
    began = time.perf_counter()
    generator = torch.Generator().manual_seed(seed)
    shape = (classes.numel(), *model.input_shape)
    x = (low + start * (high - low) + 0.01 * (high - low) * torch.randn(shape, generator=generator)).clamp(low, high)
    x = x.to(model.device).requires_grad_(True)
    target = classes.to(model.device)
    optimiser = torch.optim.Adam([x], lr=learning_rate * (high - low))
    frozen = [p for p in model.module.parameters() if p.requires_grad]
    for p in frozen:
        p.requires_grad_(False)
    try:
        for step in progress(range(steps), desc="feature visualisation", total=steps, unit="step"):
            dy, dx = torch.randint(-jitter, jitter + 1, (2,), generator=generator).tolist() if jitter else (0, 0)
            shifted = torch.roll(x, shifts=(dy, dx), dims=(-2, -1))
            logit = model.forward(shifted).gather(1, target[:, None]).squeeze(1)
            penalty = l2 * x.square().flatten(1).sum(dim=1) + tv * total_variation(x)
            loss = (penalty - logit).sum()
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            with torch.no_grad():
                x.clamp_(low, high)
                if blur_every and (step + 1) % blur_every == 0 and step + 1 < steps:
                    blurred = gaussian_blur((x.detach().cpu() - low) / (high - low), blur_sigma)
                    x.copy_((low + blurred * (high - low)).to(x.device))
    finally:
        for p in frozen:
            p.requires_grad_(True)
    images = x.detach().cpu()
    probabilities = model.proba(images).gather(1, classes[:, None]).squeeze(1)
    return FeatureVisResult(
        class_names=tuple(model.class_names),
        classes=tuple(classes.tolist()),
        images=tuple(image_rows(image) for image in images),
        probabilities=tuple(float(p) for p in probabilities),
        settings={
            "steps": steps,
            "learning_rate": learning_rate,
            "jitter": jitter,
            "l2": l2,
            "tv": tv,
            "blur_every": blur_every,
            "blur_sigma": blur_sigma,
            "seed": seed,
        },
        seconds=time.perf_counter() - began,
    )
