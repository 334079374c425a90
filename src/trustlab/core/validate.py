"""Validation at the boundary, one path for each kind of input, with the error texts as
constants (tests match them). Every check raises :class:`InputError` naming the parameter, what
was expected and what was received."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from trustlab.core.exceptions import InputError

BOUNDS_TOLERANCE = 1e-6
ERR_TENSOR = "{name} must be a torch tensor or numpy array, got {got}"
ERR_SHAPE = "{name} have shape {got}, but (N, {expected}) is expected"
ERR_NAN = "{name} contain {count} NaN or infinite values"
ERR_BOUNDS = "{name} must lie in the input bounds [{low:g}, {high:g}], found values in [{min:.4g}, {max:.4g}]"
ERR_POSITIVE_INT = "{name} must be a positive integer, got {got!r}"
ERR_NDIM = "{name} must have shape {expected}, got shape {got}"
ERR_CLASSES = "{name} must be {count} class indices in 0..{high} (integers), got {got}"


def describe(value: Any) -> str:
    """A short description of a received value for an error message."""
    if isinstance(value, torch.Tensor | np.ndarray):
        return f"{type(value).__name__} of shape {tuple(value.shape)} ({value.dtype})"
    return repr(value)


def as_tensor(x: Any, name: str) -> torch.Tensor:
    """``x`` as a torch tensor (numpy arrays are converted without copying); anything else is an InputError."""
    if isinstance(x, np.ndarray):
        x = torch.from_numpy(x)
    if not isinstance(x, torch.Tensor):
        raise InputError(ERR_TENSOR.format(name=name, got=type(x).__name__))
    return x


def finite_tensor(x: Any, name: str) -> torch.Tensor:
    """``x`` (tensor or array) as a floating-point tensor with no NaN or infinite value."""
    x = as_tensor(x, name)
    if not torch.is_floating_point(x):
        x = x.to(torch.float32)
    bad = int((~torch.isfinite(x)).sum())
    if bad:
        raise InputError(ERR_NAN.format(name=name, count=bad))
    return x


def batch_of(x: Any, name: str) -> torch.Tensor:
    """A finite batch: at least two dimensions, (N, ...)."""
    x = finite_tensor(x, name)
    if x.ndim < 2:
        raise InputError(ERR_NDIM.format(name=name, expected="(N, ...)", got=tuple(x.shape)))
    return x


def validate_inputs(
    x: Any, input_shape: tuple[int, ...], bounds: tuple[float, float] | None, *, name: str = "inputs"
) -> torch.Tensor:
    """Check that ``x`` is a batch of ``input_shape`` inputs, finite and within ``bounds``; return
    it as a float tensor. Shared by classifiers and detectors so both refuse bad input alike."""
    x = as_tensor(x, name)
    if tuple(x.shape[1:]) != tuple(input_shape) or x.ndim != len(input_shape) + 1:
        raise InputError(ERR_SHAPE.format(name=name, expected=", ".join(map(str, input_shape)), got=tuple(x.shape)))
    x = finite_tensor(x, name)
    if bounds is not None and x.numel():
        low, high = bounds
        lo, hi = x.min().item(), x.max().item()
        if lo < low - BOUNDS_TOLERANCE or hi > high + BOUNDS_TOLERANCE:
            raise InputError(ERR_BOUNDS.format(name=name, low=low, high=high, min=lo, max=hi))
    return x


def positive_int(value: Any, name: str) -> int:
    """``value`` as an int, if it is a positive integer (booleans and fractions are refused)."""
    integral = isinstance(value, int | np.integer) or (isinstance(value, float) and value.is_integer())
    if isinstance(value, bool) or not integral or value < 1:
        raise InputError(ERR_POSITIVE_INT.format(name=name, got=value))
    return int(value)


def class_indices(y: Any, n: int, num_classes: int, *, name: str = "labels", scalar: bool = False) -> torch.Tensor:
    """``n`` class indices in ``0..num_classes-1`` as int64; with ``scalar``, one index stands for
    every example. Floating-point values are refused rather than truncated."""
    t = torch.as_tensor(y) if not isinstance(y, torch.Tensor) else y
    if scalar and t.ndim == 0:
        t = t.expand(n)
    wrong = t.shape != (n,) or torch.is_floating_point(t) or t.dtype == torch.bool or t.is_complex()
    if not wrong and n:
        wrong = int(t.min()) < 0 or int(t.max()) >= num_classes
    if wrong:
        count = f"one index or {n}" if scalar else str(n)
        raise InputError(ERR_CLASSES.format(name=name, count=count, high=num_classes - 1, got=_received(y)))
    return t.long()


def _received(y: Any) -> str:
    t = torch.as_tensor(y) if not isinstance(y, torch.Tensor) else y
    if t.numel() and not torch.is_floating_point(t) and t.dtype != torch.bool and t.ndim <= 1:
        return f"{describe(y)} with values {int(t.min())}..{int(t.max())}"
    return describe(y)
