"""A classifier trained with outlier exposure (Hendrycks, Mazeika & Dietterich 2019) on synthetic
near-OOD digits, so its own softmax (``msp``) and ``energy`` scores tell stroke-like non-digits from
digits. The recipe is the reference CNN's (15 epochs, Adam 1e-3 cosine, batches of 64, 2 px
shifts, seed 0) plus, at every step, a batch drawn from ``outliers`` synthetic outliers
(:func:`~trustlab.data.near_ood.synthetic_outliers` of the training digits) whose cross-entropy to
the uniform distribution is added with weight 0.5. ``families`` chooses which near-OOD families the
outliers come from: leave one out to measure the model on it honestly.
"""

from __future__ import annotations

from typing import Any

from trustlab.data.near_ood import synthetic_outliers
from trustlab.models.classifier import Classifier
from trustlab.models.reference import untrained_mnist_cnn
from trustlab.models.training import TrainingResult, train

EPOCHS, BATCH, SHIFT, WEIGHT, OUTLIERS = 15, 64, 2, 0.5, 5000


def outlier_exposure_model(
    train_data: Any,
    *,
    families: tuple[str, ...] | None = None,
    outliers: int = OUTLIERS,
    epochs: int = EPOCHS,
    seed: int = 0,
    show_progress: bool = True,
) -> tuple[Classifier, TrainingResult]:
    """The reference CNN trained on ``train_data`` (MNIST-like digits with labels) with outlier
    exposure to ``outliers`` synthetic near-OOD digits of ``families`` (default all six)."""
    classifier = untrained_mnist_cnn(seed=seed)
    pool = synthetic_outliers(train_data.x, train_data.y, outliers, families=families, seed=seed + 1)
    history = train(
        classifier, train_data.x, train_data.y, epochs=epochs, batch_size=BATCH, learning_rate=1e-3,
        augment_shift=SHIFT, seed=seed, outliers=pool, outlier_weight=WEIGHT, show_progress=show_progress,
        dataset_name=f"{train_data.name}/{train_data.split} + {outliers:,} synthetic outliers",
    )  # fmt: skip
    return classifier, history
