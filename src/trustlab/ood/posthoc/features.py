"""Scores from a classifier's penultimate features.

- Mahalanobis (Lee et al. 2018): class means and one shared covariance of the training
  features; score = squared Mahalanobis distance to the closest class mean. The covariance is
  shrunk towards a scaled identity, ``(1 - s) S + s (tr S / d) I``, so it stays invertible
  when features are rank-deficient (dead ReLUs, fewer examples than dimensions).
- KNN (Sun et al. 2022): features scaled to unit length; score = distance to the k-th nearest
  training feature. Feature dimensions that are zero for every training example (dead ReLUs,
  40% of the reference CNN's) add nothing to a dot product with the bank, so they are dropped
  from it after normalisation: the same distances for less work.
"""

from __future__ import annotations

from typing import Any

import torch

from trustlab.core.exceptions import InputError
from trustlab.core.progress import progress
from trustlab.core.validate import positive_int
from trustlab.models.classifier import Classifier
from trustlab.ood.base import PosthocDetector


class _FeatureDetector(PosthocDetector):
    uses_features = True

    def _training_features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Features and predicted labels of the training inputs, batch by batch."""
        feats, preds = [], []
        starts = range(0, x.shape[0], self.batch_size)
        with torch.no_grad():
            for start in progress(starts, desc=f"{self.name}: features", total=len(starts), unit="batch"):
                logits, f = self.outputs(x[start : start + self.batch_size])
                feats.append(f.cpu())
                preds.append(logits.argmax(dim=1).cpu())
        return torch.cat(feats), torch.cat(preds)


class Mahalanobis(_FeatureDetector):
    """Minimum squared Mahalanobis distance to a class mean, shared shrunk covariance.

    ``fit`` uses the true labels when given (a Dataset carries them), else the model's predictions.
    """

    name = "mahalanobis"
    score_label = "squared Mahalanobis distance"

    def __init__(self, classifier: Classifier, *, shrinkage: float = 0.01, **kwargs: Any) -> None:
        super().__init__(classifier, **kwargs)
        if not 0.0 < float(shrinkage) <= 1.0:
            raise InputError(f"shrinkage must lie in (0, 1], got {shrinkage}")
        self.shrinkage = float(shrinkage)

    def config(self) -> dict[str, Any]:
        return {**super().config(), "shrinkage": self.shrinkage}

    def _fit(self, x: torch.Tensor, y: torch.Tensor | None) -> None:
        feats, preds = self._training_features(x)
        labels = preds if y is None else y
        if labels.numel() and (labels.min() < 0 or labels.max() >= self.classifier.num_classes):
            raise InputError(f"labels must lie in 0..{self.classifier.num_classes - 1}")
        f = feats.double()
        classes = torch.unique(labels)
        onehot = (labels.unsqueeze(1) == classes.unsqueeze(0)).double()
        means = (onehot.T @ f) / onehot.sum(dim=0, keepdim=True).T
        centred = f - means[torch.searchsorted(classes, labels)]
        cov = centred.T @ centred / f.shape[0]
        d = cov.shape[0]
        scale = torch.trace(cov) / d
        if not scale > 0:  # every feature constant: fall back to Euclidean distance
            scale = torch.tensor(1.0, dtype=torch.float64)
        cov = (1 - self.shrinkage) * cov + self.shrinkage * scale * torch.eye(d, dtype=torch.float64)
        eigval, eigvec = torch.linalg.eigh(cov)
        eigval = eigval.clamp_min(self.shrinkage * scale * 1e-3)  # rounding can dip just below the floor
        whitener = eigvec / eigval.sqrt()
        self.whitener_ = whitener.float()
        self.means_ = (means @ whitener).float()
        self.classes_ = classes

    def state(self) -> dict[str, torch.Tensor]:
        return {"whitener": self.whitener_, "means": self.means_, "classes": self.classes_}

    def load_state(self, state: dict[str, torch.Tensor]) -> None:
        self.whitener_, self.means_, self.classes_ = state["whitener"], state["means"], state["classes"]

    def _score_outputs(self, logits: torch.Tensor, features: torch.Tensor | None) -> torch.Tensor:
        z = features @ self.whitener_.to(features.device)
        return torch.cdist(z, self.means_.to(z.device)).amin(dim=1).double().square()


class KNN(_FeatureDetector):
    """Distance from the unit-normalised feature to its ``k``-th nearest training feature."""

    name = "knn"
    score_label = "k-th nearest-neighbour distance"

    def __init__(
        self, classifier: Classifier, *, k: int = 10, bank_size: int | None = None, seed: int = 0, **kwargs: Any
    ) -> None:
        super().__init__(classifier, **kwargs)
        positive_int(k, "k")
        if bank_size is not None and int(bank_size) < int(k):
            raise InputError(f"bank_size must be at least k={k}, got {bank_size}")
        self.k = int(k)
        self.bank_size = None if bank_size is None else int(bank_size)
        self.seed = int(seed)

    def config(self) -> dict[str, Any]:
        return {**super().config(), "k": self.k, "bank_size": self.bank_size, "seed": self.seed}

    def _fit(self, x: torch.Tensor, y: torch.Tensor | None) -> None:
        """Keep every training feature, or a seeded random ``bank_size`` of them: scoring costs one
        matmul against the bank, and Sun et al. (2022) show KNN works on a sample of the data."""
        if x.shape[0] < self.k:
            raise InputError(f"knn with k={self.k} needs at least {self.k} training examples, got {x.shape[0]}")
        if self.bank_size is not None and self.bank_size < x.shape[0]:
            keep = torch.randperm(x.shape[0], generator=torch.Generator().manual_seed(self.seed))[: self.bank_size]
            x = x[keep.sort().values]
        feats, _ = self._training_features(x)
        bank = torch.nn.functional.normalize(feats.float(), dim=1)
        self.active_ = torch.nonzero(bank.abs().sum(dim=0) > 0).flatten()
        self.bank_ = bank[:, self.active_].contiguous()

    def state(self) -> dict[str, torch.Tensor]:
        return {"bank": self.bank_, "active": self.active_}

    def load_state(self, state: dict[str, torch.Tensor]) -> None:
        self.bank_, self.active_ = state["bank"], state["active"]

    def _score_outputs(self, logits: torch.Tensor, features: torch.Tensor | None) -> torch.Tensor:
        z = torch.nn.functional.normalize(features.float(), dim=1)[:, self.active_.to(features.device)]
        cosine = (z @ self.bank_.to(z.device).T).topk(self.k, dim=1).values[:, -1]
        return (2.0 - 2.0 * cosine.double()).clamp_min(0.0).sqrt()
