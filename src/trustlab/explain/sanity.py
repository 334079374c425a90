"""Are a model's explanations worth reading? Two checks on one attribution method:

* randomisation (Adebayo et al. 2018): re-initialise the layers from the output down (cascading)
  and measure how much the maps still resemble the originals (mean Spearman of |maps|); maps
  that survive random weights do not explain what the model learned;
* faithfulness (Petsiuk et al. 2018): the deletion AUC of the method's maps against that of
  random maps on the same images; a faithful map finds what the model needs sooner (lower).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from trustlab.core.results import Result
from trustlab.core.stats import bootstrap_interval
from trustlab.explain.attributions import explain
from trustlab.explain.metrics import deletion_auc, model_parameter_randomisation
from trustlab.models.classifier import Classifier


@dataclass(frozen=True)
class ExplanationSanityResult(Result):
    """One method's randomisation check (similarity to the original maps as layers are re-initialised)
    and faithfulness check (deletion AUC against random maps)."""

    kind = "explanation_sanity"
    dataset: str
    method: str
    examples: int
    layers: tuple[str, ...]  # in the order they were re-initialised (output first)
    similarity: tuple[float, ...]  # mean rank correlation with the original maps after each step
    randomised_similarity: float  # after every layer is random: ~0 passes, ~1 fails
    randomised_interval: tuple[float, float]
    deletion_auc: float  # mean, the method's maps (lower = more faithful)
    random_deletion_auc: float  # mean, uniformly random maps on the same images
    seconds: float

    @property
    def deletion_ratio(self) -> float:
        """Deletion AUC of the method relative to random maps (below 1: better than random)."""
        return self.deletion_auc / self.random_deletion_auc if self.random_deletion_auc > 0 else float("nan")


def explanation_sanity(
    model: Classifier, x: Any, y: Any, *, method: str = "saliency", steps: int = 28, seed: int = 0, dataset: str = ""
) -> ExplanationSanityResult:
    """Randomisation and faithfulness of ``method``'s maps towards the true classes ``y``."""
    start = time.perf_counter()
    x = model.validate(x)
    y = model.validate_labels(y, x.shape[0])

    def maps(classifier: Classifier, inputs: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return explain(classifier, inputs, target, method=method)

    original = maps(model, x, y)
    randomisation = model_parameter_randomisation(model, x, y, maps, seed=seed, original=original)
    per_layer = randomisation.scores.double().mean(1)
    final = randomisation.scores[-1].double().numpy()
    generator = torch.Generator().manual_seed(seed)
    random_maps = torch.rand(original.shape, generator=generator)
    return ExplanationSanityResult(
        dataset=dataset,
        method=method,
        examples=int(x.shape[0]),
        layers=tuple(randomisation.layers),
        similarity=tuple(float(v) for v in per_layer),
        randomised_similarity=float(final.mean()),
        randomised_interval=bootstrap_interval(final, "mean", 1000, np.random.default_rng(seed)),
        deletion_auc=float(deletion_auc(model, x, original, y, steps=steps).mean()),
        random_deletion_auc=float(deletion_auc(model, x, random_maps, y, steps=steps).mean()),
        seconds=time.perf_counter() - start,
    )
