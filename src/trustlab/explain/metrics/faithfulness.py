"""Faithfulness: does removing what a map highlights change the model's prediction?

Features are perturbed in decreasing order of the map and the softmax probability of the target
class is recorded after each step: :func:`deletion_curve` / :func:`deletion_auc` (features set to a
baseline; lower area = better map) and :func:`insertion_curve` / :func:`insertion_auc` (features
revealed over a blurred start, :func:`insertion_blur`; higher area = better map), both from
Petsiuk et al. 2018 (RISE), and :func:`pixel_flipping` (Bach et al. 2015, value for value as
Quantus's ``PixelFlipping``). Forward passes mix examples and steps, hold at most ``batch_size``
images, and skip steps that change no input value.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from trustlab.core.exceptions import InputError
from trustlab.core.progress import progress
from trustlab.core.validate import describe, positive_int
from trustlab.explain.metrics._inputs import _images_and_maps
from trustlab.models.classifier import Classifier

INSERTION_BLUR_KERNEL = 11  # Petsiuk et al.'s insertion start: Gaussian blur, kernel 11, sigma 5
INSERTION_BLUR_SIGMA = 5.0

ERR_STEPS = "steps must be an integer between 1 and the number of features ({units}), got {got}"
ERR_FEATURES_IN_STEP = "features_in_step must be an integer between 1 and the number of features ({units}), got {got}"
ERR_BASELINE = "baseline must be a number, 'blur' (insertion only) or a tensor broadcastable to {shape}, got {got}"


@dataclass(frozen=True)
class PerturbationCurve:
    """Probability of the target class as features are removed (deletion) or revealed (insertion).

    ``fractions`` (S+1,) are the shares of features perturbed at each point, from 0 to 1;
    ``scores`` (N, S+1) the softmax probability of each example's target class there.
    """

    fractions: torch.Tensor
    scores: torch.Tensor

    @property
    def auc(self) -> torch.Tensor:
        """Area under each curve over the fraction axis [0, 1], trapezoid rule: shape (N,)."""
        return torch.trapezoid(self.scores, self.fractions.to(self.scores), dim=1)

    def to_dict(self) -> dict[str, Any]:
        return {"fractions": self.fractions.tolist(), "scores": self.scores.tolist(), "auc": self.auc.tolist()}


def _ranks(a: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Order (entries from the largest signed value down) and rank (0 = largest) of every entry of
    each flattened map; ties go to the entry that comes first in memory order (a stable sort)."""
    flat = a.flatten(1)
    order = torch.argsort(-flat, dim=1, stable=True)
    ranks = torch.empty_like(order)
    ranks.scatter_(1, order, torch.arange(flat.shape[1], device=flat.device).expand_as(order))
    return order, ranks


def _baseline(baseline: Any, x: torch.Tensor, *, allow_blur: bool) -> torch.Tensor:
    """The replacement image per example, shaped like ``x`` (a broadcast view where possible)."""
    if isinstance(baseline, str):
        if baseline == "blur" and allow_blur:
            return insertion_blur(x)
        raise InputError(ERR_BASELINE.format(shape=tuple(x.shape), got=repr(baseline)))
    if isinstance(baseline, bool) or not isinstance(baseline, int | float | torch.Tensor | np.ndarray):
        raise InputError(ERR_BASELINE.format(shape=tuple(x.shape), got=type(baseline).__name__))
    value = torch.as_tensor(baseline, dtype=x.dtype, device=x.device)
    try:
        return value.expand_as(x) if value.ndim <= x.ndim else value.reshape(()).expand_as(x)
    except RuntimeError:
        raise InputError(ERR_BASELINE.format(shape=tuple(x.shape), got=describe(baseline))) from None


def insertion_blur(
    x: torch.Tensor, *, kernel: int = INSERTION_BLUR_KERNEL, sigma: float = INSERTION_BLUR_SIGMA
) -> torch.Tensor:
    """The insertion curve's default start (Petsiuk et al. 2018): each channel blurred by a
    normalised ``kernel`` x ``kernel`` Gaussian (separable), edges padded by replicating the border
    pixels so the blur keeps an image's overall brightness.

    Not :func:`trustlab.data.corruptions.gaussian_blur`, the MNIST-C corruption (kernel radius
    ceil(3 sigma), zero padding by default): the two give different images for the same sigma.
    """
    offsets = torch.arange(kernel, dtype=x.dtype, device=x.device) - (kernel - 1) / 2
    weights = torch.exp(-(offsets**2) / (2 * sigma**2))
    weights = weights / weights.sum()
    c = x.shape[1]
    pad = kernel // 2
    out = F.pad(x, (pad, pad, pad, pad), mode="replicate")
    out = F.conv2d(out, weights.view(1, 1, 1, kernel).expand(c, 1, 1, kernel), groups=c)
    return F.conv2d(out, weights.view(1, 1, kernel, 1).expand(c, 1, kernel, 1), groups=c)


def _perturbation_scores(
    model: Classifier,
    x: torch.Tensor,
    a: torch.Tensor,
    target: torch.Tensor,
    counts: torch.Tensor,
    replacement: torch.Tensor,
    *,
    reveal: bool,
    batch_size: int,
    desc: str,
) -> torch.Tensor:
    """Target probabilities (N, S) with, at step s, the ``counts[s]`` top-ranked features of each
    map replaced (``reveal=False``) or the only ones kept from ``x`` over ``replacement``.

    (example, step) pairs are flattened into rows and evaluated ``batch_size`` rows per forward
    pass, so several steps share a forward when N is small and memory stays bounded. A step that
    changes no value of its example's input (every feature it perturbs already equals the
    replacement, e.g. black background removed with baseline 0) is not run again: it reuses the
    probability of the example's previous step, which it would reproduce exactly.
    A feature is one entry of ``a``: with a one-channel map, a pixel (all its channels at once).
    """
    n, steps = x.shape[0], counts.shape[0]
    order, ranks = _ranks(a)  # (N, U) each
    counts = counts.to(x.device)
    differs = x != replacement
    if a.shape[1] != x.shape[1]:
        differs = differs.any(1, keepdim=True)
    # changed[n, r]: how many of example n's r top-ranked features differ from the replacement
    changed = F.pad(differs.flatten(1).gather(1, order).cumsum(1), (1, 0))[:, counts]  # (N, S)
    new = torch.ones_like(changed, dtype=torch.bool)
    new[:, 1:] = changed[:, 1:] != changed[:, :-1]
    todo = new.flatten().nonzero()[:, 0]
    computed = torch.empty(todo.shape[0], dtype=torch.float32, device=x.device)
    with torch.no_grad():
        for start in progress(range(0, todo.shape[0], batch_size), desc=desc, unit="batch"):
            rows = todo[start : start + batch_size]
            example, step = rows // steps, rows % steps
            chosen = (ranks[example] < counts[step][:, None]).view(-1, *a.shape[1:])
            xs, base = x[example], replacement[example]
            inputs = torch.where(chosen, xs, base) if reveal else torch.where(chosen, base, xs)
            logits = model.forward(inputs.to(model.device))
            proba = torch.softmax(logits.float(), dim=1)
            picked = proba.gather(1, target[example].to(model.device)[:, None])[:, 0]
            computed[start : start + rows.shape[0]] = picked.to(x.device)
    scores = torch.empty(n * steps, dtype=torch.float32, device=x.device)
    scores[todo] = computed
    scores = scores.view(n, steps)
    # every skipped step takes the probability of the last evaluated step of its example
    last = torch.where(new, torch.arange(steps, device=x.device), 0).cummax(dim=1).values
    return scores.gather(1, last)


def _curve(
    model: Classifier,
    x: Any,
    a: Any,
    target: Any,
    *,
    steps: int,
    baseline: Any,
    batch_size: int | None,
    reveal: bool,
) -> PerturbationCurve:
    x = model.validate(x, name="x")
    x, a = _images_and_maps(x, a)
    target = model.targets(x, target)
    size = model.batch_size if batch_size is None else positive_int(batch_size, "batch_size")
    units = a[0].numel()
    if isinstance(steps, bool) or not isinstance(steps, int) or not 1 <= steps <= units:
        raise InputError(ERR_STEPS.format(units=units, got=steps))
    replacement = _baseline(baseline, x, allow_blur=reveal)
    counts = torch.round(torch.linspace(0, units, steps + 1, dtype=torch.float64)).long()
    desc = "insertion" if reveal else "deletion"
    scores = _perturbation_scores(model, x, a, target, counts, replacement, reveal=reveal, batch_size=size, desc=desc)
    return PerturbationCurve(fractions=counts.double() / units, scores=scores)


def deletion_curve(
    model: Classifier,
    x: Any,
    a: Any,
    target: Any = None,
    *,
    steps: int = 50,
    baseline: Any = 0.0,
    batch_size: int | None = None,
) -> PerturbationCurve:
    """Deletion (Petsiuk et al. 2018, RISE): features in decreasing order of ``a`` (signed; pass
    ``a.abs()`` to rank by magnitude; ties in memory order) are set to ``baseline`` in ``steps``
    equal chunks (sizes differ by at most one when they do not divide), recording the softmax
    probability of ``target`` (default: the predicted class) before the first chunk and after
    each. A feature is a pixel for a one-channel map, one channel value for a full-shape map.
    ``baseline``: a number or a tensor broadcastable to ``x`` (e.g. per-example images).
    Forward passes hold at most ``batch_size`` images (default: the classifier's) and mix steps
    and examples; a step that changes no input value (its features already equal the baseline,
    e.g. black MNIST background) reuses the previous probability instead of running the model.
    """
    return _curve(model, x, a, target, steps=steps, baseline=baseline, batch_size=batch_size, reveal=False)


def deletion_auc(
    model: Classifier,
    x: Any,
    a: Any,
    target: Any = None,
    *,
    steps: int = 50,
    baseline: Any = 0.0,
    batch_size: int | None = None,
) -> torch.Tensor:
    """Area under the deletion curve (:func:`deletion_curve`) over the fraction axis [0, 1]:
    shape (N,). Lower = the map finds what the model needs sooner."""
    return deletion_curve(model, x, a, target, steps=steps, baseline=baseline, batch_size=batch_size).auc


def insertion_curve(
    model: Classifier,
    x: Any,
    a: Any,
    target: Any = None,
    *,
    steps: int = 50,
    baseline: Any = "blur",
    batch_size: int | None = None,
) -> PerturbationCurve:
    """Insertion (Petsiuk et al. 2018): start from ``baseline`` and reveal the features of ``x`` in
    decreasing order of ``a``, in ``steps`` equal chunks, recording the target probability at
    the start and after each chunk (so the last point is the probability on ``x``).

    The default start, as in Petsiuk et al., is ``x`` blurred by a Gaussian (kernel 11, sigma 5;
    see :func:`insertion_blur`: normalised kernel, replicated borders, where their code pads with
    zeros); a number or a tensor broadcastable to ``x`` works too. Ordering and batching as for
    :func:`deletion_curve`.
    """
    return _curve(model, x, a, target, steps=steps, baseline=baseline, batch_size=batch_size, reveal=True)


def insertion_auc(
    model: Classifier,
    x: Any,
    a: Any,
    target: Any = None,
    *,
    steps: int = 50,
    baseline: Any = "blur",
    batch_size: int | None = None,
) -> torch.Tensor:
    """Area under the insertion curve (:func:`insertion_curve`) over [0, 1]: shape (N,). Higher =
    the map finds what the model needs sooner."""
    return insertion_curve(model, x, a, target, steps=steps, baseline=baseline, batch_size=batch_size).auc


def pixel_flipping(
    model: Classifier,
    x: Any,
    a: Any,
    target: Any = None,
    *,
    features_in_step: int = 1,
    baseline: Any = 0.0,
    batch_size: int | None = None,
) -> torch.Tensor:
    """Quantus's ``PixelFlipping`` curve (Bach et al. 2015), value for value: shape (N, ceil(F / k)).

    ``a`` is broadcast to the shape of ``x`` and its F = C*H*W entries ordered by decreasing
    (signed) value; ``features_in_step`` = k entries at a time are set to ``baseline``, and the
    softmax probability of ``target`` is recorded after every step (not before the first; the last
    step may hold fewer than k entries, where Quantus requires H*W to be a multiple of k).
    Quantus's per-sample AUC (``return_auc_per_sample=True``) is ``torch.trapezoid(curve, dim=1)``
    (unit spacing). Matches ``PixelFlipping(features_in_step=k, perturb_baseline=<number>)``: its
    default ``"black"`` is each perturbed image's minimum, 0 for images that reach 0. Ties in
    ``a`` are broken in memory order; Quantus's unstable numpy sort may order them otherwise.
    Compared with :func:`deletion_curve`: no point at 0 removed, channel values instead of pixels
    when ``a`` has one channel, and unit instead of [0, 1] spacing for the AUC.
    """
    x = model.validate(x, name="x")
    x, a = _images_and_maps(x, a)
    a = a.expand_as(x)
    target = model.targets(x, target)
    size = model.batch_size if batch_size is None else positive_int(batch_size, "batch_size")
    units = a[0].numel()
    k = features_in_step
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= units:
        raise InputError(ERR_FEATURES_IN_STEP.format(units=units, got=k))
    counts = torch.arange(1, math.ceil(units / k) + 1).mul(k).clamp_max(units)
    replacement = _baseline(baseline, x, allow_blur=False)
    return _perturbation_scores(
        model, x, a, target, counts, replacement, reveal=False, batch_size=size, desc="pixel flipping"
    )


__all__ = [
    "PerturbationCurve",
    "deletion_auc",
    "deletion_curve",
    "insertion_auc",
    "insertion_blur",
    "insertion_curve",
    "pixel_flipping",
]
