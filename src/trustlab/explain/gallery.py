"""An attribution gallery: several methods on the same few images, timed, with compactness and
faithfulness per method, for the report."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from trustlab.core.exceptions import InputError
from trustlab.core.progress import progress
from trustlab.core.results import Result
from trustlab.explain import metrics
from trustlab.explain.attributions import METHODS, explain
from trustlab.models.classifier import Classifier

Image = tuple[tuple[float, ...], ...]  # H rows of W values: how results hold an image or a map
ERR_NOT_IMAGES = (
    "the attribution gallery shows images (inputs of shape C x H x W) and this model takes inputs of shape "
    "{shape}; for tabular data use `trustlab explain tabular`"
)
DEFAULT_METHODS = ("saliency", "guided_backprop", "gradcam", "smoothgrad", "integrated_gradients", "occlusion")


def image_rows(t: Any) -> Image:
    """One image or map (C, H, W), channels summed, as JSON-native rows rounded to 4 decimals."""
    return tuple(tuple(round(v, 4) for v in row) for row in t.sum(0).tolist())


@dataclass(frozen=True)
class AttributionGalleryResult(Result):
    """Every method's map of the same few images, with its time, compactness (mean Gini, higher = sparser)
    and faithfulness (mean deletion AUC, lower = more faithful)."""

    kind = "attributions"
    dataset: str
    class_names: tuple[str, ...]
    methods: tuple[str, ...]
    labels: tuple[int, ...]
    predictions: tuple[int, ...]
    images: tuple[Image, ...]
    maps: dict[str, tuple[Image, ...]]  # method -> one map per image (channels summed)
    seconds: dict[str, float]  # method -> time for all images
    gini: dict[str, float]  # method -> mean over images
    deletion_auc: dict[str, float]


def attribution_gallery(
    model: Classifier, x: Any, y: Any, *, methods: Sequence[str] = DEFAULT_METHODS, dataset: str = ""
) -> AttributionGalleryResult:
    """Maps of every method in ``methods`` towards each image's prediction."""
    if len(model.input_shape) != 3:
        raise InputError(ERR_NOT_IMAGES.format(shape=" x ".join(map(str, model.input_shape))))
    x = model.validate(x)
    y = model.validate_labels(y, x.shape[0])
    predictions = model.predict(x)
    maps, seconds, gini, deletion = {}, {}, {}, {}
    for method in progress(list(methods), desc="explanations", total=len(methods), unit="method"):
        if method not in METHODS:
            explain(model, x[:0], method=method)  # raises the usual one-line error
        start = time.perf_counter()
        a = explain(model, x, predictions, method=method)
        seconds[method] = time.perf_counter() - start
        maps[method] = tuple(image_rows(t) for t in a)
        gini[method] = float(metrics.gini(a).mean())
        deletion[method] = float(metrics.deletion_auc(model, x, a, predictions, steps=28).mean())
    return AttributionGalleryResult(
        dataset=dataset,
        class_names=tuple(model.class_names),
        methods=tuple(methods),
        labels=tuple(y.tolist()),
        predictions=tuple(predictions.tolist()),
        images=tuple(image_rows(t) for t in x),
        maps=maps,
        seconds=seconds,
        gini=gini,
        deletion_auc=deletion,
    )
