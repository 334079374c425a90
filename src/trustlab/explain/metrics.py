"""Explanation-quality metrics: pure functions over tensors of images and attribution maps.

Shapes: images ``x`` are (N, C, H, W) in pixel space; maps ``a`` are (N, C, H, W) or (N, 1, H, W).
Every metric returns one value per example, a tensor of shape (N,), unless it says otherwise.
None of them produces NaN: a map without mass (all zeros) gets a defined value, stated per metric.

Alignment (map against input)
    :func:`cosine_alignment`, :func:`etmann_alignment`.
Compactness (how concentrated the map is)
    :func:`gini` (Quantus ``Sparseness``), :func:`entropy_complexity` (Quantus ``Complexity``),
    :func:`top_k_mass`, :func:`spatial_spread`.
Faithfulness (does removing what the map highlights change the prediction?)
    :func:`deletion_curve` / :func:`deletion_auc` and :func:`insertion_curve` /
    :func:`insertion_auc` (Petsiuk et al. 2018), :func:`pixel_flipping` (Quantus ``PixelFlipping``).
Sanity (do the maps depend on the learned weights?)
    :func:`model_parameter_randomisation` (Adebayo et al. 2018; Quantus ``MPRT``), with the
    vectorised :func:`spearman` and :func:`pearson` it uses.

Not included: a saliency "cleanness" measure. No published definition could be found to cite, and
trustlab does not invent one.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from trustlab.core.exceptions import InputError
from trustlab.core.progress import progress
from trustlab.models.classifier import Classifier

ORDERS = ("top_down", "bottom_up", "independent")
SIMILARITIES = ("spearman", "pearson")
BLUR_KERNEL = 11  # Petsiuk et al.'s insertion start: Gaussian blur, kernel 11, sigma 5
BLUR_SIGMA = 5.0

ERR_TENSOR = "{name} must be a torch tensor or numpy array, got {got}"
ERR_NDIM = "{name} must have shape {expected}, got shape {got}"
ERR_FINITE = "{name} contain {count} NaN or infinite values"
ERR_MAP_SHAPE = "{name} must have the shape of x {x} or one channel {one}, got shape {got}"
ERR_FRACTION = "fraction must lie in (0, 1], got {got}"
ERR_STEPS = "steps must be an integer between 1 and the number of features ({units}), got {got}"
ERR_FEATURES_IN_STEP = "features_in_step must be an integer between 1 and the number of features ({units}), got {got}"
ERR_TARGET = "target must be one class index or {n} class indices in 0..{high}, got {got}"
ERR_BASELINE = "baseline must be a number, 'blur' (insertion only) or a tensor broadcastable to {shape}, got {got}"
ERR_BATCH = "batch_size must be a positive integer, got {got}"
ERR_ORDER = "order must be one of {expected}, got {got!r}"
ERR_SIMILARITY = "similarity must be one of {expected} or a callable, got {got!r}"
ERR_NO_LAYERS = "model_parameter_randomisation needs a model with parameters; {model} has none"
ERR_LAYER = "layer {name!r} ({kind}) has parameters but no reset_parameters(); it cannot be re-initialised"
ERR_MAPS_OUT = "explain_fn must return {n} maps (a tensor of shape (N, ...)), got {got}"


# ============================================================================ validation =====
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


def _batch_size(model: Classifier, batch_size: int | None) -> int:
    size = model.batch_size if batch_size is None else batch_size
    if not isinstance(size, int) or isinstance(size, bool) or size < 1:
        raise InputError(ERR_BATCH.format(got=batch_size))
    return size


def _safe_divide(num: torch.Tensor, den: torch.Tensor) -> torch.Tensor:
    """``num / den`` with 0 where ``den`` is 0 (a map or image without mass)."""
    return torch.where(den > 0, num / torch.where(den > 0, den, torch.ones_like(den)), torch.zeros_like(num))


# ============================================================================ alignment ======
def cosine_alignment(x: Any, a: Any) -> torch.Tensor:
    """Signed cosine between each image and its map, <x, a> / (||x|| ||a||), in [-1, 1].

    A one-channel map is broadcast over the image's channels first (so it is compared with every
    channel). 0 where the image or the map is all zeros.
    """
    x, a = _images_and_maps(x, a)
    a = a.expand_as(x).flatten(1).double()
    xf = x.flatten(1).double()
    value = _safe_divide((xf * a).sum(1), xf.norm(dim=1) * a.norm(dim=1))
    return value.to(x.dtype)


def etmann_alignment(x: Any, grad: Any, *, normalise: bool = False) -> torch.Tensor:
    """Alignment of Etmann et al. (2019), |<x, g>| / ||g||: the length of the image's projection on
    the direction of its saliency map ``g``.

    The paper ("On the connection between adversarial robustness and saliency map
    interpretability", ICML 2019) defines it with the saliency map g = the gradient of the
    predicted class's logit with respect to the input, and the absolute value of the inner
    product; pass that gradient as ``grad`` (its sign then does not matter). It grows with the
    image's norm; ``normalise=True`` divides by ||x|| too, giving |cos(x, g)| in [0, 1], which
    compares images of different brightness. A one-channel ``grad`` is broadcast over channels.
    0 where ``grad`` (or, when normalising, the image) is all zeros.
    """
    x, grad = _images_and_maps(x, grad, a_name="grad")
    g = grad.expand_as(x).flatten(1).double()
    xf = x.flatten(1).double()
    den = g.norm(dim=1) * (xf.norm(dim=1) if normalise else 1.0)
    return _safe_divide((xf * g).sum(1).abs(), den).to(x.dtype)


# ============================================================================ compactness ====
def _mass(a: torch.Tensor) -> torch.Tensor:
    """|a| flattened per example, in float64 (sums over hundreds of thousands of values)."""
    return a.flatten(1).abs().double()


def gini(a: Any) -> torch.Tensor:
    """Gini index of |a| over all entries of each map, in [0, 1 - 1/n]: 0 for a uniform map,
    (n - 1)/n for a map whose mass sits on one entry (n entries).

    Chalasani et al. (2020), as Quantus's ``Sparseness``: with |a| sorted ascending,
    sum_i (2i - n - 1) |a|_(i) / (n sum_i |a|_i). Quantus computes it on |a| divided by the batch's
    largest value plus 1e-7, which scales the index by S / (S + 1e-7 n) (S the sum of the scaled
    map): a relative difference below 1e-4 unless a map holds less mass than 1e-3 n times the
    batch's largest value. Entries include channels: reduce them first (e.g. ``a.abs().sum(1,
    keepdim=True)``) for a per-pixel index. A map without mass is treated as uniform: 0.
    """
    v = _mass(_maps(a)).sort(dim=1).values
    n = v.shape[1]
    weights = 2 * torch.arange(1, n + 1, dtype=v.dtype, device=v.device) - n - 1
    return _safe_divide((v * weights).sum(1), n * v.sum(1)).to(_out_dtype(a))


def entropy_complexity(a: Any) -> torch.Tensor:
    """Shannon entropy (nats) of |a| normalised to sum 1 over all entries, in [0, log n].

    Bhatt et al. (2020), as Quantus's ``Complexity`` (which adds 1e-12 inside the logarithm: a
    difference below n * 1e-12). Low = compact. 0 for a one-entry map; log n for a uniform map and
    for a map without mass (treated as uniform, where Quantus gives NaN).
    """
    v = _mass(_maps(a))
    total = v.sum(1, keepdim=True)
    p = torch.where(total > 0, v / torch.where(total > 0, total, torch.ones_like(total)), 1.0 / v.shape[1])
    return -(torch.special.xlogy(p, p)).sum(1).to(_out_dtype(a))


def top_k_mass(a: Any, fraction: float = 0.1) -> torch.Tensor:
    """Share of each map's total |a| held by its k largest entries, k = max(1, round(fraction * n)).

    In [k/n, 1]: 1 when the mass fits in k entries, k/n for a uniform map and for a map without
    mass (treated as uniform). Entries include channels, as for :func:`gini`.
    """
    if isinstance(fraction, bool) or not isinstance(fraction, int | float) or not 0 < fraction <= 1:
        raise InputError(ERR_FRACTION.format(got=fraction))
    v = _mass(_maps(a))
    n = v.shape[1]
    k = max(1, int(round(fraction * n)))
    top = v.topk(k, dim=1).values.sum(1)
    total = v.sum(1)
    return torch.where(total > 0, _safe_divide(top, total), torch.full_like(total, k / n)).to(_out_dtype(a))


def spatial_spread(a: Any) -> torch.Tensor:
    """How far each map's mass spreads in the image plane, in [0, 1].

    The mass of a pixel is |a| summed over channels. The spread is the mass-weighted root mean
    squared distance of pixel centres from the mass centroid, divided by half the diagonal between
    the centres of opposite corner pixels, sqrt((H-1)^2 + (W-1)^2) / 2, the largest value it can
    take. 0 when the mass sits on one pixel; 1 when it is split equally between two opposite
    corners; a uniform map on a large square image gives about 0.58 (1/sqrt(3)). A map without
    mass is treated as uniform. A 1 x 1 image gives 0.
    """
    a = _maps(a, images=True)
    m = a.abs().double().sum(1)  # (N, H, W)
    n, h, w = m.shape
    total = m.flatten(1).sum(1)
    m = torch.where((total > 0)[:, None, None], m, torch.ones_like(m))
    p = m / m.flatten(1).sum(1)[:, None, None]
    rows = torch.arange(h, dtype=p.dtype, device=p.device)[:, None]
    cols = torch.arange(w, dtype=p.dtype, device=p.device)[None, :]
    mu_r = (p * rows).flatten(1).sum(1)[:, None, None]
    mu_c = (p * cols).flatten(1).sum(1)[:, None, None]
    variance = (p * ((rows - mu_r) ** 2 + (cols - mu_c) ** 2)).flatten(1).sum(1)
    half_diagonal = math.sqrt((h - 1) ** 2 + (w - 1) ** 2) / 2
    if half_diagonal == 0:
        return torch.zeros(n, dtype=_out_dtype(a), device=a.device)
    return (variance.clamp_min(0).sqrt() / half_diagonal).to(_out_dtype(a))


def _out_dtype(a: Any) -> torch.dtype:
    dtype = a.dtype if isinstance(a, torch.Tensor) else torch.float32
    return dtype if dtype in (torch.float32, torch.float64) else torch.float32


# ============================================================================ faithfulness ===
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
            return gaussian_blur(x)
        raise InputError(ERR_BASELINE.format(shape=tuple(x.shape), got=repr(baseline)))
    if isinstance(baseline, bool) or not isinstance(baseline, int | float | torch.Tensor | np.ndarray):
        raise InputError(ERR_BASELINE.format(shape=tuple(x.shape), got=type(baseline).__name__))
    value = torch.as_tensor(baseline, dtype=x.dtype, device=x.device)
    try:
        return value.expand_as(x) if value.ndim <= x.ndim else value.reshape(()).expand_as(x)
    except RuntimeError:
        raise InputError(ERR_BASELINE.format(shape=tuple(x.shape), got=_describe(baseline))) from None


def gaussian_blur(x: torch.Tensor, *, kernel: int = BLUR_KERNEL, sigma: float = BLUR_SIGMA) -> torch.Tensor:
    """Each channel blurred by a normalised ``kernel`` x ``kernel`` Gaussian (separable), edges
    padded by replicating the border pixels so the blur keeps an image's overall brightness."""
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
    target = _targets(model, x, target)
    size = _batch_size(model, batch_size)
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
    see :func:`gaussian_blur`: normalised kernel, replicated borders, where their code pads with
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
    target = _targets(model, x, target)
    size = _batch_size(model, batch_size)
    units = a[0].numel()
    k = features_in_step
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= units:
        raise InputError(ERR_FEATURES_IN_STEP.format(units=units, got=k))
    counts = torch.arange(1, math.ceil(units / k) + 1).mul(k).clamp_max(units)
    replacement = _baseline(baseline, x, allow_blur=False)
    return _perturbation_scores(
        model, x, a, target, counts, replacement, reveal=False, batch_size=size, desc="pixel flipping"
    )


# ============================================================================ similarity =====
def _average_ranks(v: torch.Tensor) -> torch.Tensor:
    """Ranks 1..F of each row, tied values sharing the mean of their ranks (scipy's 'average')."""
    sorted_v, order = v.sort(dim=1, stable=True)
    f = v.shape[1]
    pos = torch.arange(f, device=v.device).expand_as(order)
    starts = torch.ones_like(sorted_v, dtype=torch.bool)
    starts[:, 1:] = sorted_v[:, 1:] != sorted_v[:, :-1]
    ends = torch.ones_like(starts)
    ends[:, :-1] = starts[:, 1:]
    first = torch.where(starts, pos, torch.zeros_like(pos)).cummax(dim=1).values
    last = torch.where(ends, pos, torch.full_like(pos, f - 1)).flip(1).cummin(dim=1).values.flip(1)
    ranks = torch.empty_like(v, dtype=torch.float64)
    ranks.scatter_(1, order, (first + last).double() / 2 + 1)
    return ranks


def pearson(a: Any, b: Any) -> torch.Tensor:
    """Pearson correlation of each pair of flattened maps, shape (N,); 0 where one is constant."""
    a, b = _pair(a, b)
    a = a - a.mean(1, keepdim=True)
    b = b - b.mean(1, keepdim=True)
    return _safe_divide((a * b).sum(1), (a.square().sum(1) * b.square().sum(1)).sqrt()).float()


def spearman(a: Any, b: Any) -> torch.Tensor:
    """Spearman rank correlation of each pair of flattened maps, shape (N,), vectorised.

    Ties get the average of their ranks (as ``scipy.stats.spearmanr``), then the ranks' Pearson
    correlation is taken. 0 where a map is constant (scipy gives NaN).
    """
    a, b = _pair(a, b)
    return pearson(_average_ranks(a), _average_ranks(b))


def _pair(a: Any, b: Any) -> tuple[torch.Tensor, torch.Tensor]:
    a, b = _maps(a, name="a"), _maps(b, name="b")
    if a.shape[0] != b.shape[0] or a[0].numel() != b[0].numel():
        raise InputError(f"maps to compare must have the same shape, got {tuple(a.shape)} and {tuple(b.shape)}")
    return a.flatten(1).double(), b.flatten(1).double().to(a.device)


# ============================================================================ randomisation ==
@dataclass(frozen=True)
class RandomisationResult:
    """Similarity of each example's map before and after randomising the weights, per layer.

    ``layers`` names the randomised layers in the order they were randomised (names within the
    classifier's module); ``scores`` (len(layers), N): row i compares the original maps with those
    of the model after step i. A method that passes the sanity check sees its scores fall.
    """

    layers: tuple[str, ...]
    scores: torch.Tensor
    order: str
    similarity: str
    absolute: bool

    def to_dict(self) -> dict[str, Any]:
        return {
            "layers": list(self.layers),
            "scores": self.scores.tolist(),
            "order": self.order,
            "similarity": self.similarity,
            "absolute": self.absolute,
        }


def copy_classifier(model: Classifier) -> Classifier:
    """A Classifier around a deep copy of ``model``'s module, with the same bounds, normalisation,
    classes and batch size: changing its weights leaves ``model`` untouched."""
    return model.with_module(copy.deepcopy(model.module))


def _layers(module: nn.Module) -> list[tuple[str, nn.Module]]:
    """Modules owning parameters directly, in definition order (input towards output)."""
    return [(name, m) for name, m in module.named_modules() if next(m.parameters(recurse=False), None) is not None]


def _reinitialise(name: str, layer: nn.Module, seed: int) -> None:
    """Re-draw ``layer``'s parameters as PyTorch's ``reset_parameters`` would, from a generator
    seeded with ``seed``: the same numbers Quantus gets after ``torch.manual_seed(seed)``.

    Linear and convolution layers (the common case) draw from a ``torch.Generator`` on the CPU,
    so the weights do not depend on the device. Other layers run their own ``reset_parameters``
    inside ``torch.random.fork_rng`` seeded with ``seed``, which restores the global random state
    afterwards: the caller's random stream is left as it was.
    """
    with torch.no_grad():
        if isinstance(layer, nn.Linear | nn.modules.conv._ConvNd):
            generator = torch.Generator().manual_seed(seed)
            weight = torch.empty(layer.weight.shape, dtype=layer.weight.dtype)
            nn.init.kaiming_uniform_(weight, a=math.sqrt(5), generator=generator)
            layer.weight.copy_(weight)
            if layer.bias is not None:
                fan_in, _ = nn.init._calculate_fan_in_and_fan_out(weight)
                bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0.0
                bias = torch.empty(layer.bias.shape, dtype=layer.bias.dtype)
                nn.init.uniform_(bias, -bound, bound, generator=generator)
                layer.bias.copy_(bias)
            return
        reset = getattr(layer, "reset_parameters", None)
        if not callable(reset):
            raise InputError(ERR_LAYER.format(name=name, kind=type(layer).__name__))
        devices = sorted({p.device.index or 0 for p in layer.parameters() if p.device.type == "cuda"})
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(seed)
            reset()


def _similarity_fn(similarity: str | Callable[..., Any]) -> tuple[str, Callable[..., torch.Tensor]]:
    if callable(similarity):
        return getattr(similarity, "__name__", "custom"), similarity
    if similarity == "spearman":
        return "spearman", spearman
    if similarity == "pearson":
        return "pearson", pearson
    raise InputError(ERR_SIMILARITY.format(expected=", ".join(SIMILARITIES), got=similarity))


def _explained(
    explain_fn: Callable[..., Any], model: Classifier, x: torch.Tensor, target: torch.Tensor
) -> torch.Tensor:
    maps = explain_fn(model, x, target)
    if isinstance(maps, np.ndarray):
        maps = torch.from_numpy(maps)
    if not isinstance(maps, torch.Tensor) or maps.ndim < 2 or maps.shape[0] != x.shape[0]:
        raise InputError(ERR_MAPS_OUT.format(n=x.shape[0], got=_describe(maps)))
    return maps.detach().to(x.device)


def model_parameter_randomisation(
    model: Classifier,
    x: Any,
    target: Any,
    explain_fn: Callable[[Classifier, torch.Tensor, torch.Tensor], Any],
    *,
    order: str = "top_down",
    similarity: str | Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = "spearman",
    absolute: bool = True,
    seed: int = 0,
    original: Any = None,
) -> RandomisationResult:
    """Model parameter randomisation test (Adebayo et al. 2018), as Quantus's ``MPRT``.

    Layers are the modules that own parameters. With ``order="top_down"`` (cascading, the paper's
    main test) they are re-initialised one after another from the output towards the input,
    cumulatively; ``"bottom_up"`` goes the other way; ``"independent"`` randomises each layer
    alone. After each step, maps are recomputed with ``explain_fn(classifier, x, target)`` on the
    randomised copy and compared with the original maps, per example, by ``similarity``
    (``"spearman"``, the default as in Quantus, ``"pearson"``, or a callable taking two (N, F)
    tensors). ``absolute=True`` (Quantus's default ``abs=True``) compares |maps|.

    ``target``: class per example (``None``: the predicted class). ``original``: the maps of the
    unmodified model if already computed (otherwise ``explain_fn`` computes them).
    The randomisation happens on a deep copy (:func:`copy_classifier`); ``model`` is never
    changed. Each layer is re-initialised from a generator freshly seeded with ``seed``, as in
    PyTorch's ``reset_parameters``: Quantus seeds the global generator with its ``seed + 1``
    before each layer, so ``seed=s`` here reproduces Quantus's ``MPRT(seed=s - 1)``. Quantus's
    layers are the modules with a ``reset_parameters`` method; for ordinary networks (Linear,
    convolution, normalisation layers) both choices give the same list.
    Memory: one copy of the module, plus what ``explain_fn`` needs.
    """
    if order not in ORDERS:
        raise InputError(ERR_ORDER.format(expected=", ".join(ORDERS), got=order))
    name, compare = _similarity_fn(similarity)
    x = model.validate(x, name="x")
    target = _targets(model, x, target)
    randomised = copy_classifier(model)
    layers = _layers(randomised.module)
    if not layers:
        raise InputError(ERR_NO_LAYERS.format(model=type(model.module).__name__))
    if order == "top_down":
        layers = layers[::-1]
    if original is None:
        reference = _explained(explain_fn, randomised, x, target)
    else:
        reference = _maps(original, name="original").to(x.device)
    if reference.shape[0] != x.shape[0]:
        raise InputError(ERR_MAPS_OUT.format(n=x.shape[0], got=_describe(reference)))
    if absolute:
        reference = reference.abs()
    rows = []
    for layer_name, layer in progress(layers, desc="randomising layers", unit="layer"):
        saved = {k: v.clone() for k, v in layer.state_dict().items()} if order == "independent" else None
        _reinitialise(layer_name, layer, seed)
        maps = _explained(explain_fn, randomised, x, target)
        rows.append(torch.as_tensor(compare(reference, maps.abs() if absolute else maps)).float().to(x.device))
        if saved is not None:
            layer.load_state_dict(saved)
    return RandomisationResult(
        layers=tuple(n for n, _ in layers), scores=torch.stack(rows), order=order, similarity=name, absolute=absolute
    )


__all__ = [
    "PerturbationCurve",
    "RandomisationResult",
    "copy_classifier",
    "cosine_alignment",
    "deletion_auc",
    "deletion_curve",
    "entropy_complexity",
    "etmann_alignment",
    "gaussian_blur",
    "gini",
    "insertion_auc",
    "insertion_curve",
    "model_parameter_randomisation",
    "pearson",
    "pixel_flipping",
    "spatial_spread",
    "spearman",
    "top_k_mass",
]
