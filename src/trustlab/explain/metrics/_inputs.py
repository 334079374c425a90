"""Input checks and small helpers shared by the metric families (alignment, compactness,
faithfulness, randomisation): every public metric validates at its boundary through these, so the
error texts are the same whichever metric the user called."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from trustlab.core.exceptions import InputError
from trustlab.models.classifier import Classifier

ERR_TENSOR = "{name} must be a torch tensor or numpy array, got {got}"
ERR_NDIM = "{name} must have shape {expected}, got shape {got}"
ERR_FINITE = "{name} contain {count} NaN or infinite values"
ERR_MAP_SHAPE = "{name} must have the shape of x {x} or one channel {one}, got shape {got}"
ERR_TARGET = "target must be one class index or {n} class indices in 0..{high}, got {got}"


def _tensor(value: Any, name: str) -> torch.Tensor:
    if isinstance(value, np.ndarray):
        value = torch.from_numpy(value)
    if not isinstance(value, torch.Tensor):
        raise InputError(ERR_TENSOR.format(name=name, got=type(value).__name__))
    if not torch.is_floating_point(value):
        value = value.to(torch.float32)
    bad = int((~torch.isfinite(value)).sum())
    if bad:
        raise InputError(ERR_FINITE.format(name=name, count=bad))
    return value


def _maps(a: Any, *, name: str = "a", images: bool = False) -> torch.Tensor:
    """A batch of maps: (N, ...) with at least one value per example, or (N, C, H, W) for images."""
    a = _tensor(a, name)
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


def _targets(model: Classifier, x: torch.Tensor, target: Any) -> torch.Tensor:
    """Class per example: ``None`` means the predicted class; one index is used for every example."""
    if target is None:
        return model.predict(x).to(x.device)
    t = torch.as_tensor(target)
    if t.ndim == 0:
        t = t.expand(x.shape[0])
    bad_values = t.numel() and (torch.is_floating_point(t) or int(t.min()) < 0 or int(t.max()) >= model.num_classes)
    if t.shape != (x.shape[0],) or bad_values:
        raise InputError(ERR_TARGET.format(n=x.shape[0], high=model.num_classes - 1, got=_describe(target)))
    return t.long().to(x.device)


def _describe(value: Any) -> str:
    if isinstance(value, torch.Tensor | np.ndarray):
        return f"{type(value).__name__} of shape {tuple(value.shape)}"
    return repr(value)


def _safe_divide(num: torch.Tensor, den: torch.Tensor) -> torch.Tensor:
    """``num / den`` with 0 where ``den`` is 0 (a map or image without mass)."""
    return torch.where(den > 0, num / torch.where(den > 0, den, torch.ones_like(den)), torch.zeros_like(num))
