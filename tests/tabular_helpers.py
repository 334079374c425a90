"""A small synthetic binary tabular data set whose label one feature decides, for tests of
tabular models and their explanations."""

from __future__ import annotations

import numpy as np
import torch

from trustlab.data.dataset import Dataset, DatasetMetadata

# audit steps a tabular model without protected attributes skips: the image checks (shift: MNIST-shaped
# models only), and fairness
SKIPPED_FOR_TABULAR = {
    "robustness",
    "robust-accuracy",
    "regions",
    "explanations",
    "explanation-sanity",
    "backdoor",
    "fairness",
    "shift",
}


def synthetic_tabular(
    n: int, features: int, *, decisive: int, noise: float = 0.0, seed: int = 0, labels: np.ndarray | None = None
) -> Dataset:
    """``n`` rows of standard normal features; label = feature ``decisive`` (plus ``noise`` times
    a normal draw) > 0, unless ``labels`` are given."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, features)).astype(np.float32)
    if labels is None:
        score = x[:, decisive] + (noise * rng.normal(size=n) if noise else 0.0)
        labels = (score > 0).astype(np.int64)
    return Dataset(
        "synthetic",
        "train",
        torch.from_numpy(x),
        torch.from_numpy(labels),
        ("no", "yes"),
        None,
        DatasetMetadata("test", "none", f"feature {decisive} decides"),
        feature_names=tuple(f"f{i}" for i in range(features)),
    )
