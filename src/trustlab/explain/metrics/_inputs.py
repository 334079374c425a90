"""Input checks and small helpers shared by the metric families (alignment, compactness,
faithfulness, randomisation): every public metric validates at its boundary through these, so the
error texts are the same whichever metric the user called."""

from __future__ import annotations

from typing import Any

import torch

from trustlab.core.exceptions import InputError
from trustlab.core.validate import ERR_NDIM, finite_tensor

ERR_MAP_SHAPE = "{name} must have the shape of x {x} or one channel {one}, got shape {got}"


def _maps(a: Any, *, name: str = "a", images: bool = False) -> torch.Tensor:
    """A batch of maps: (N, ...) with at least one value per example, or (N, C, H, W) for images."""
    a = finite_tensor(a, name)
    if images and a.ndim != 4:
        raise InputError(ERR_NDIM.format(name=name, expected="(N, C, H, W)", got=tuple(a.shape)))
    if a.ndim < 2:
        raise InputError(ERR_NDIM.format(name=name, expected="(N, ...)", got=tuple(a.shape)))
    return a


def _images_and_maps(x: Any, a: Any, *, a_name: str = "a") -> tuple[torch.Tensor, torch.Tensor]:
    """Images (N, C, H, W) and maps of their shape or with one channel (broadcast over channels)."""
    x = _maps(x, name="x", images=True)
    a = _maps(a, name=a_name, images=True).to(x.device)
    n, c, h, w = x.shape
    if a.shape not in ((n, c, h, w), (n, 1, h, w)):
        raise InputError(ERR_MAP_SHAPE.format(name=a_name, x=tuple(x.shape), one=(n, 1, h, w), got=tuple(a.shape)))
    return x, a
