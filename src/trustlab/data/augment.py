"""Training-time augmentations for image batches: random translations, rotations, elastic
deformations and Gaussian noise, each drawn per image from a ``torch.Generator`` (same generator
state, same batch out) and vectorised over the batch (no per-image loop).

:class:`Augmentation` chains them in a fixed order (elastic, rotate, shift, noise: geometric first,
noise last so it is not blurred by resampling); :func:`trustlab.models.training.train` calls it on
every training batch. It is a plain frozen dataclass, so it travels to Ray workers and is recorded
by its settings.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from trustlab.core.exceptions import InputError
from trustlab.data.corruptions import _affine_warp, about_centre, gaussian_kernel, shift_each


def random_translate(x: torch.Tensor, max_shift: int, generator: torch.Generator, fill: float = 0.0) -> torch.Tensor:
    """Shift each image by its own random offset in [-max_shift, max_shift] pixels, filling with ``fill``."""
    n = x.shape[0]
    dy = torch.randint(0, 2 * max_shift + 1, (n,), generator=generator)
    dx = torch.randint(0, 2 * max_shift + 1, (n,), generator=generator)
    return shift_each(x, max_shift - dx, max_shift - dy, fill)


def rotation_matrices(degrees: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """(N, 2, 3) maps from output to input pixel coordinates (column, row) that rotate each image by
    ``degrees`` (counter-clockwise as displayed, rows pointing down) about its centre."""
    theta = torch.deg2rad(degrees.to(torch.float64))
    cos, sin = torch.cos(theta), torch.sin(theta)
    # output (c, r) samples input R^-1 ((c, r) - centre) + centre; with rows down, a displayed
    # counter-clockwise turn by theta is the matrix [[cos, sin], [-sin, cos]] on (c, r), whose inverse follows
    linear = torch.stack([torch.stack([cos, -sin], -1), torch.stack([sin, cos], -1)], -2)
    return about_centre(linear, h, w)


def random_rotate(x: torch.Tensor, max_degrees: float, generator: torch.Generator) -> torch.Tensor:
    """Rotate each image about its centre by its own angle drawn uniformly from [-max_degrees,
    max_degrees] (bilinear, black beyond the frame)."""
    n, _, h, w = x.shape
    degrees = (torch.rand(n, generator=generator, dtype=torch.float64) * 2.0 - 1.0) * max_degrees
    return _affine_warp(x, rotation_matrices(degrees, h, w))


def _smooth(field: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of (N, 2, H, W) displacement fields, zeros beyond the border."""
    kernel = gaussian_kernel(sigma, dtype=field.dtype)
    radius = (kernel.numel() - 1) // 2
    n, c, h, w = field.shape
    flat = F.pad(field.reshape(n * c, 1, h, w), (radius,) * 4)
    flat = F.conv2d(flat, kernel.reshape(1, 1, 1, -1))
    flat = F.conv2d(flat, kernel.reshape(1, 1, -1, 1))
    return flat.reshape(n, c, h, w)


def elastic_deform(x: torch.Tensor, alpha: float, sigma: float, generator: torch.Generator) -> torch.Tensor:
    """Simard et al. (2003)'s elastic distortion: each pixel moves by a random field (uniform in
    [-1, 1] per pixel and axis, smoothed by a Gaussian of ``sigma`` pixels, scaled by ``alpha``
    pixels), sampled bilinearly with black beyond the frame."""
    n, _, h, w = x.shape
    field = torch.rand(n, 2, h, w, generator=generator, dtype=torch.float32) * 2.0 - 1.0
    displacement = _smooth(field, sigma) * alpha  # pixels; channel 0 moves columns, 1 moves rows
    # grid_sample (align_corners=False): pixel k of a side of length L sits at (2k + 1) / L - 1
    gx = (2.0 * torch.arange(w, dtype=torch.float32) + 1.0) / w - 1.0
    gy = (2.0 * torch.arange(h, dtype=torch.float32) + 1.0) / h - 1.0
    grid = torch.stack(
        [gx.view(1, 1, w) + displacement[:, 0] * (2.0 / w), gy.view(1, h, 1) + displacement[:, 1] * (2.0 / h)], dim=-1
    )
    out = F.grid_sample(x.float(), grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return out.to(x.dtype)


def gaussian_noise(
    x: torch.Tensor, max_sigma: float, generator: torch.Generator, bounds: tuple[float, float] = (0.0, 1.0)
) -> torch.Tensor:
    """Add Gaussian noise whose standard deviation is drawn per image uniformly from [0, max_sigma],
    clamped to ``bounds``."""
    n = x.shape[0]
    sigma = torch.rand(n, generator=generator, dtype=x.dtype).view(n, *([1] * (x.ndim - 1))) * max_sigma
    noise = torch.randn(x.shape, generator=generator, dtype=x.dtype)
    return (x + sigma * noise).clamp(*bounds)


@dataclass(frozen=True)
class Augmentation:
    """Which augmentations a training run draws for each batch (0 turns one off): elastic
    deformation (``elastic_alpha``, ``elastic_sigma`` pixels), rotation up to ``rotate_degrees``,
    translation up to ``shift`` pixels, additive Gaussian noise up to ``noise_sigma``.

    ``noise_fixed``: every image gets noise of exactly ``noise_sigma``, not clipped to the bounds: the
    distribution randomised smoothing samples, which its base classifier is trained under (Cohen,
    Rosenfeld & Kolter 2019); by default each image's sigma is drawn from [0, noise_sigma] and the
    result clipped (a robustness augmentation)."""

    shift: int = 0
    rotate_degrees: float = 0.0
    elastic_alpha: float = 0.0
    elastic_sigma: float = 4.0
    noise_sigma: float = 0.0
    noise_fixed: bool = False

    def __post_init__(self) -> None:
        if isinstance(self.shift, bool) or not isinstance(self.shift, int) or self.shift < 0:
            raise InputError(f"shift must be a non-negative integer number of pixels, got {self.shift!r}")
        for name in ("rotate_degrees", "elastic_alpha", "noise_sigma"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
                raise InputError(f"{name} must be a finite number >= 0, got {value!r}")
        if not isinstance(self.elastic_sigma, (int, float)) or not self.elastic_sigma > 0:
            raise InputError(f"elastic_sigma must be positive, got {self.elastic_sigma!r}")

    @property
    def active(self) -> bool:
        """Whether any augmentation is on."""
        return bool(self.shift or self.rotate_degrees or self.elastic_alpha or self.noise_sigma)

    def describe(self) -> str:
        """The augmentations on, in words (``none`` when off)."""
        parts = []
        if self.elastic_alpha:
            parts.append(f"elastic (alpha {self.elastic_alpha:g}, sigma {self.elastic_sigma:g} px)")
        if self.rotate_degrees:
            parts.append(f"rotation up to {self.rotate_degrees:g} degrees")
        if self.shift:
            parts.append(f"shifts up to {self.shift} px")
        if self.noise_sigma and self.noise_fixed:
            parts.append(f"Gaussian noise sigma {self.noise_sigma:g} (fixed, unclipped)")
        elif self.noise_sigma:
            parts.append(f"Gaussian noise sigma up to {self.noise_sigma:g}")
        return ", ".join(parts) or "none"

    def __call__(
        self, x: torch.Tensor, generator: torch.Generator, bounds: tuple[float, float] = (0.0, 1.0)
    ) -> torch.Tensor:
        """The batch ``x`` (N, C, H, W, within ``bounds``) augmented with draws from ``generator``."""
        if x.ndim != 4:
            raise InputError(f"augmentations apply to image batches (N, C, H, W), got shape {tuple(x.shape)}")
        low, high = bounds
        if self.elastic_alpha or self.rotate_degrees:
            # the warps work on [0, 1] images with black (0) beyond the frame: rescale the bounds to it
            x = ((x - low) / (high - low)).clamp(0.0, 1.0)
            if self.elastic_alpha:
                x = elastic_deform(x, self.elastic_alpha, self.elastic_sigma, generator)
            if self.rotate_degrees:
                x = random_rotate(x, self.rotate_degrees, generator)
            x = x * (high - low) + low
        if self.shift:
            x = random_translate(x, self.shift, generator, fill=low)
        if self.noise_sigma and self.noise_fixed:
            x = x + self.noise_sigma * (high - low) * torch.randn(x.shape, generator=generator, dtype=x.dtype)
        elif self.noise_sigma:
            x = gaussian_noise(x, self.noise_sigma * (high - low), generator, bounds=(low, high))
        return x
