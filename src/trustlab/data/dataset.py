"""The in-memory data set every trustlab check consumes."""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import torch

from trustlab.core.exceptions import InputError

ERR_NO_EXAMPLES = "data set {name!r} has no examples"
ERR_BOUNDS_ARG = "bounds must be two finite numbers (low, high) with low < high, got {got!r}"
ERR_UNKNOWN_ATTRIBUTE = "protected attribute {name!r} is not in data set {dataset!r}; it has: {known}"
MAX_CLASSES = 100_000  # class (or category) counts inferred from integer codes stop here


def input_bounds(bounds: Any) -> tuple[float, float] | None:
    """``bounds`` as (low, high) floats, or None (unbounded); anything else is an InputError."""
    if bounds is None:
        return None
    try:
        low, high = (float(b) for b in bounds)
        ok = math.isfinite(low) and math.isfinite(high) and low < high and not isinstance(bounds, str | bytes)
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise InputError(ERR_BOUNDS_ARG.format(got=bounds))
    return low, high


def require_examples(dataset: Dataset) -> Dataset:
    """``dataset`` if it has at least one example, else a one-line :class:`InputError` (an empty
    set would give accuracies of nan and empty reports)."""
    if len(dataset) == 0:
        raise InputError(ERR_NO_EXAMPLES.format(name=dataset.name))
    return dataset


@dataclass(frozen=True)
class FileRecord:
    """A file a data set was read from, with its sha256 and whether that digest is a known one."""

    name: str
    sha256: str
    verified: bool

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "sha256": self.sha256, "verified": self.verified}


@dataclass(frozen=True)
class DatasetMetadata:
    """Where a data set comes from: source, licence, description and the files it was read from."""

    source: str
    licence: str
    description: str
    files: tuple[FileRecord, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "licence": self.licence,
            "description": self.description,
            "files": [f.to_dict() for f in self.files],
        }


@dataclass(frozen=True)
class ProtectedAttribute:
    """A protected attribute kept beside the features (never inside them): integer codes per
    example and the category each code stands for."""

    codes: torch.Tensor
    categories: tuple[str, ...]


@dataclass(frozen=True, eq=False)
class Dataset:
    """Inputs ``x`` in pixel space (images: float32 in ``bounds``, shape N x C x H x W) or raw
    feature space (tabular: float32, N x F), integer labels ``y``, and what is known about them."""

    name: str
    split: str
    x: torch.Tensor
    y: torch.Tensor
    class_names: tuple[str, ...]
    bounds: tuple[float, float] | None
    metadata: DatasetMetadata
    feature_names: tuple[str, ...] | None = None
    protected: dict[str, ProtectedAttribute] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.x.shape[0] != self.y.shape[0]:
            raise ValueError(f"x has {self.x.shape[0]} rows but y has {self.y.shape[0]}")

    def __len__(self) -> int:
        return int(self.x.shape[0])

    def __repr__(self) -> str:
        return (
            f"Dataset(name={self.name!r}, split={self.split!r}, n={len(self)}, "
            f"input_shape={self.input_shape}, classes={self.num_classes})"
        )

    @property
    def kind(self) -> str:
        return "image" if self.x.ndim == 4 else "tabular"

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.x.shape[1:])

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def sha256(self) -> str:
        """One digest standing for every file read (order-independent), for run manifests."""
        digest = hashlib.sha256()
        for record in sorted(self.metadata.files, key=lambda r: r.name):
            digest.update(f"{record.name}:{record.sha256}\n".encode())
        return digest.hexdigest()

    def subset(self, indices: torch.Tensor | np.ndarray | list[int] | slice) -> Dataset:
        """The same data set restricted to ``indices`` (protected attributes follow)."""
        if not isinstance(indices, slice):
            indices = torch.as_tensor(np.asarray(indices), dtype=torch.long)
        protected = {
            name: ProtectedAttribute(attr.codes[indices], attr.categories) for name, attr in self.protected.items()
        }
        return replace(self, x=self.x[indices], y=self.y[indices], protected=protected)

    def keep_protected(self, names: Sequence[str]) -> Dataset:
        """The same data set with only the protected attributes ``names`` (a one-line InputError
        names those it does not carry): how ``--protected`` picks attributes of a registered set."""
        for name in names:
            if name not in self.protected:
                known = ", ".join(sorted(self.protected)) or "none"
                raise InputError(ERR_UNKNOWN_ATTRIBUTE.format(name=name, dataset=self.name, known=known))
        return replace(self, protected={n: self.protected[n] for n in dict.fromkeys(names)})

    def sample(self, count: int | None, *, seed: int = 0) -> Dataset:
        """``count`` examples drawn at random (seeded, kept in data order), or all of them: data
        sets are often ordered by class, and the first examples would be a biased sample."""
        if count is None or count >= len(self):
            return self
        order = torch.randperm(len(self), generator=torch.Generator().manual_seed(seed))
        return self.subset(order[:count].sort().values)

    def feature_stats(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-feature mean and std (std floored at 1e-6): a Classifier's normalisation for tabular data."""
        dims = [0] if self.x.ndim == 2 else [0, 2, 3]
        mean = self.x.mean(dim=dims)
        std = self.x.std(dim=dims).clamp_min(1e-6)
        return mean, std
