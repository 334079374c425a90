"""A small tabular data set with two protected attributes (sex, race), for the fairness tests."""

from __future__ import annotations

import numpy as np
import torch

from trustlab.data.dataset import Dataset, DatasetMetadata, ProtectedAttribute


def toy_dataset(n: int = 400, seed: int = 0) -> Dataset:
    """``n`` rows of three normal features; the label depends on feature 0 and on sex."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 3)).astype(np.float32)
    sex = rng.integers(0, 2, n)
    race = rng.integers(0, 3, n)
    y = ((x[:, 0] + 0.8 * sex + 0.3 * rng.normal(size=n)) > 0.4).astype(np.int64)
    return Dataset(
        "toy",
        "test",
        torch.from_numpy(x),
        torch.from_numpy(y),
        ("no", "yes"),
        None,
        DatasetMetadata("test", "none", "toy"),
        feature_names=("f0", "f1", "f2"),
        protected={
            "sex": ProtectedAttribute(torch.from_numpy(sex), ("Female", "Male")),
            "race": ProtectedAttribute(torch.from_numpy(race), ("Black", "Other", "White")),
        },
    )
