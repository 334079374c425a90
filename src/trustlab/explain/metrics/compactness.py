"""Compactness: how concentrated each attribution map's mass |a| is.

A map that spreads its mass thinly over the whole input explains little; these metrics score the
concentration per example: :func:`gini` (Quantus ``Sparseness``) and :func:`entropy_complexity`
(Quantus ``Complexity``) over all entries, :func:`top_k_mass` (share held by the largest entries)
and :func:`spatial_spread` (distance of the mass from its centroid in the image plane).
A map without mass (all zeros) is treated as uniform, so no metric returns NaN.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from trustlab.core.exceptions import InputError
from trustlab.core.stats import safe_divide
from trustlab.explain.metrics._inputs import _maps

ERR_FRACTION = "fraction must lie in (0, 1], got {got}"


def _mass(a: torch.Tensor) -> torch.Tensor:
    """|a| flattened per example, in float64 (sums over hundreds of thousands of values)."""
    return a.flatten(1).abs().double()


def _out_dtype(a: Any) -> torch.dtype:
    dtype = a.dtype if isinstance(a, torch.Tensor) else torch.float32
    return dtype if dtype in (torch.float32, torch.float64) else torch.float32


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
    return safe_divide((v * weights).sum(1), n * v.sum(1)).to(_out_dtype(a))


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
    return torch.where(total > 0, safe_divide(top, total), torch.full_like(total, k / n)).to(_out_dtype(a))


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


__all__ = ["entropy_complexity", "gini", "spatial_spread", "top_k_mass"]
