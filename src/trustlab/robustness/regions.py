"""Object vs background: is the model's fragility on the object or on the background?

For each example a Grad-CAM map (towards the true class) ranks the pixels; the top
``1 - quantile`` share of pixels is the object mask and the rest the background mask (ranking,
not thresholding, so ties in a map full of zeros still split at exactly the quantile; the
default 0.5 gives both regions the same area, which keeps their eps* comparable). Minimal eps is
then searched with the perturbation restricted to each region and to the whole image.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from trustlab.core.exceptions import InputError
from trustlab.core.results import Record, Result
from trustlab.explain import explain
from trustlab.models.classifier import Classifier
from trustlab.robustness.attacks import Attack
from trustlab.robustness.search import MinimalEps, minimal_eps

REGIONS = ("whole", "object", "background")


def split_by_quantile(maps: torch.Tensor, quantile: float = 0.5) -> tuple[torch.Tensor, torch.Tensor]:
    """Boolean object and background masks, (N, 1, H, W): the top ``1 - quantile`` pixels of each map."""
    if not 0 < quantile < 1:
        raise InputError(f"quantile must lie strictly between 0 and 1, got {quantile}")
    flat = maps.sum(1).flatten(1) if maps.shape[1] > 1 else maps.flatten(1)
    pixels = flat.shape[1]
    object_count = pixels - int(round(quantile * pixels))
    order = flat.argsort(dim=1, descending=True, stable=True)
    obj = torch.zeros_like(flat, dtype=torch.bool)
    obj.scatter_(1, order[:, :object_count], True)
    obj = obj.view(maps.shape[0], 1, *maps.shape[2:])
    return obj, ~obj


@dataclass(frozen=True)
class RegionClass(Record):
    """One class's median eps* per region over its attackable examples (+inf: half or more censored)."""

    kind = "robustness_regions.class"
    name: str
    examples: int  # attackable examples of the class
    median_whole: float | None
    median_object: float | None
    median_background: float | None
    censored_whole: int
    censored_object: int
    censored_background: int
    object_more_fragile: float | None  # share with eps*(object) < eps*(background)

    def median(self, region: str) -> float | None:
        return getattr(self, f"median_{region}")


@dataclass(frozen=True)
class RegionResult(Result):
    """Minimal eps per example restricted to the whole image, the object and the background."""

    kind = "robustness_regions"
    dataset: str
    split: str
    attack: str
    quantile: float
    eps_max: float
    tol: float
    class_names: tuple[str, ...]
    labels: tuple[int, ...]
    eps_star: dict[str, tuple[float, ...]]  # region -> per-example eps* (inf = censored)
    per_class: tuple[RegionClass, ...]
    object_more_fragile: float | None  # share of attackable examples with eps*(object) < eps*(background)
    seconds: float


def region_search(
    model: Classifier,
    x: Any,
    y: Any,
    attack: Attack | str = "fgsm",
    *,
    quantile: float = 0.5,
    eps_max: float = 1.0,
    tol: float = 1 / 256,
    show_progress: bool = True,
) -> tuple[dict[str, MinimalEps], torch.Tensor]:
    """Minimal-eps searches per region; also returns the object masks used."""
    x = model.validate(x)
    maps = explain(model, x, torch.as_tensor(y), method="gradcam")
    obj, background = split_by_quantile(maps, quantile)
    masks = {"whole": None, "object": obj, "background": background}
    searches = {
        region: minimal_eps(
            model, x, y, attack, eps_max=eps_max, tol=tol, mask=masks[region], show_progress=show_progress
        )
        for region in REGIONS
    }
    return searches, obj


def region_result(
    searches: dict[str, MinimalEps],
    class_names: tuple[str, ...],
    *,
    quantile: float,
    dataset: str = "",
    split: str = "",
) -> RegionResult:
    """Per-class and overall object-vs-background comparison of the three searches of
    :func:`region_search`."""
    labels = searches["whole"].labels.numpy()
    values = {region: searches[region].eps_star.double().numpy() for region in REGIONS}
    attackable = ~searches["whole"].clean_wrong.numpy()
    rows = []
    for index, name in enumerate(class_names):
        members = (labels == index) & attackable
        region_values = {region: values[region][members] for region in REGIONS}
        rows.append(
            RegionClass(
                name=name,
                examples=int(members.sum()),
                **{f"median_{r}": float(np.median(v)) if v.size else None for r, v in region_values.items()},
                **{f"censored_{r}": int(np.isinf(v).sum()) for r, v in region_values.items()},
                object_more_fragile=(
                    float((region_values["object"] < region_values["background"]).mean()) if members.any() else None
                ),
            )
        )
    share = (
        float((values["object"][attackable] < values["background"][attackable]).mean())
        if attackable.any()
        else float("nan")
    )
    whole = searches["whole"]
    return RegionResult(
        dataset=dataset,
        split=split,
        attack=whole.attack,
        quantile=float(quantile),
        eps_max=whole.eps_max,
        tol=whole.tol,
        class_names=tuple(class_names),
        labels=tuple(int(v) for v in labels),
        eps_star={r: tuple(float(v) for v in values[r]) for r in REGIONS},
        per_class=tuple(rows),
        object_more_fragile=share,
        seconds=sum(s.seconds for s in searches.values()),
    )
