"""Small statistics shared by the checks: bootstrap intervals, and rank and linear correlations
computed row by row over batches (vectorised, no per-example loop).

The correlations compare pairs of flattened maps, e.g. explanations before and after a model's
weights were randomised. They never return NaN: a constant row correlates 0 with anything, where
``scipy.stats`` gives NaN.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from trustlab.core.exceptions import InputError
from trustlab.core.validate import batch_of

ERR_PAIR = "maps to compare must have the same shape, got {a} and {b}"
ERR_RANKS = "v must be a torch tensor of shape (N, F), got {got}"


def bootstrap_interval(
    values: np.ndarray,
    stat: str = "mean",
    samples: int = 1000,
    rng: np.random.Generator | None = None,
    level: float = 0.95,
) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean or median of ``values`` (NaN, NaN when empty)."""
    values = np.asarray(values, dtype=float)
    if values.size == 0:
        return (math.nan, math.nan)
    rng = rng if rng is not None else np.random.default_rng(0)
    draws = values[rng.integers(0, values.size, size=(samples, values.size))]
    stats = np.median(draws, axis=1) if stat == "median" else draws.mean(axis=1)
    low, high = percentile_interval(stats, level)
    return (float(low), float(high))


def percentile_interval(draws: np.ndarray, level: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    """Percentile interval over axis 0 of ``draws`` (resamples first), NaN resamples left out;
    (NaN, NaN) where every resample is NaN. No interpolation (``inverted_cdf``), so intervals
    reaching infinite values (censored) stay infinite instead of NaN."""
    q = [100 * (1 - level) / 2, 100 * (1 + level) / 2]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        low, high = np.nanpercentile(draws, q, axis=0, method="inverted_cdf")
    return low, high


def seeds_by_examples_draws(
    matrices: Sequence[np.ndarray], *, resamples: int, seed: int, chunk_cells: int = 4_000_000
) -> list[np.ndarray]:
    """Bootstrap of mean scores over training seeds and test examples, paired on the examples.

    ``matrices``: one array per model, shape (seeds, sets, examples) of per-example scores (e.g. 1 for
    a correct answer), every model scored on the same examples in the same order (its own number of
    seeds). Each resample draws the examples with replacement once, shared by every model and set (so
    differences between models are paired on the examples), and each model's seeds with replacement,
    independently; it takes, per model and set, the mean over the drawn (seed, example) cells. Returns
    one (resamples, sets) array of resampled means per model. Vectorised: a chunk of resamples is one
    matrix product of example counts with the scores.
    """
    if not matrices:
        return []
    n = matrices[0].shape[-1]
    if any(m.ndim != 3 or m.shape[-1] != n or m.shape[0] < 1 for m in matrices):
        raise ValueError("every matrix must be (seeds >= 1, sets, examples) with the same number of examples")
    rng = np.random.default_rng(seed)
    flat = [m.transpose(2, 0, 1).reshape(n, -1).astype(np.float64) for m in matrices]  # (examples, seeds * sets)
    out: list[list[np.ndarray]] = [[] for _ in matrices]
    chunk = max(1, chunk_cells // max(1, n))
    for start in range(0, resamples, chunk):
        size = min(chunk, resamples - start)
        drawn = rng.integers(0, n, size=(size, n)) + n * np.arange(size)[:, None]
        counts = np.bincount(drawn.ravel(), minlength=size * n).reshape(size, n).astype(np.float64)
        for k, (matrix, scores) in enumerate(zip(matrices, flat)):
            seeds, sets = matrix.shape[:2]
            per_seed = (counts @ scores / n).reshape(size, seeds, sets)
            picked = rng.integers(0, seeds, size=(size, seeds))
            out[k].append(np.take_along_axis(per_seed, picked[:, :, None], axis=1).mean(axis=1))
    return [np.concatenate(parts) for parts in out]


def average_ranks(v: torch.Tensor) -> torch.Tensor:
    """Ranks 1..F of each row of ``v`` (N, F), tied values sharing the mean of their ranks
    (scipy's ``rankdata(method="average")``), as float64: [[3, 1, 3, 2]] gives [[3.5, 1, 3.5, 2]].

    Vectorised over rows: one stable sort, then the first and last position of each run of equal
    values found with cumulative max/min.
    """
    if not isinstance(v, torch.Tensor) or v.ndim != 2:
        got = f"shape {tuple(v.shape)}" if isinstance(v, torch.Tensor) else type(v).__name__
        raise InputError(ERR_RANKS.format(got=got))
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
    return safe_divide((a * b).sum(1), (a.square().sum(1) * b.square().sum(1)).sqrt()).float()


def spearman(a: Any, b: Any) -> torch.Tensor:
    """Spearman rank correlation of each pair of flattened maps, shape (N,), vectorised.

    Ties get the average of their ranks (:func:`average_ranks`, as ``scipy.stats.spearmanr``),
    then the ranks' Pearson correlation is taken. 0 where a map is constant (scipy gives NaN).
    """
    a, b = _pair(a, b)
    return pearson(average_ranks(a), average_ranks(b))


def _pair(a: Any, b: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """Two batches of maps flattened to (N, F) in float64, on ``a``'s device."""
    a, b = batch_of(a, "a"), batch_of(b, "b")
    if a.shape[0] != b.shape[0] or a[0].numel() != b[0].numel():
        raise InputError(ERR_PAIR.format(a=tuple(a.shape), b=tuple(b.shape)))
    return a.flatten(1).double(), b.flatten(1).double().to(a.device)


def safe_divide(num: torch.Tensor, den: torch.Tensor) -> torch.Tensor:
    """``num / den`` with 0 where ``den`` is 0 (a constant row)."""
    return torch.where(den > 0, num / torch.where(den > 0, den, torch.ones_like(den)), torch.zeros_like(num))


def wilson_interval(successes: int, n: int, z: float = 1.959964) -> tuple[float, float]:
    """95% Wilson score interval for a proportion (well-behaved near 0 and 1)."""
    if n == 0:
        return (0.0, 1.0)
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    # at p = 0 or 1 the bound is exactly p, which rounding can miss by 1e-16: keep p inside
    return (min(p, max(0.0, centre - half)), max(p, min(1.0, centre + half)))
