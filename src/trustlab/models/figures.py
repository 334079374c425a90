"""Figures of a model's accuracy and training, drawn from results only."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from trustlab.core.plots import class_ticks, plt, to_png


def confusion_matrix_figure(confusion: Sequence[Sequence[int]], class_names: Sequence[str]) -> bytes:
    """Confusion matrix as a PNG: colour is the share of each true class (%), cells show counts
    (up to 20 classes)."""
    matrix = np.asarray(confusion, dtype=float)
    k = len(class_names)
    side = max(4.0, 0.45 * k + 2)
    fig, ax = plt.subplots(figsize=(side, side * 0.85))
    rows = matrix.sum(axis=1, keepdims=True)
    share = np.divide(matrix, rows, out=np.zeros_like(matrix), where=rows > 0) * 100
    image = ax.imshow(share, cmap="Blues", vmin=0, vmax=100)
    fig.colorbar(image, ax=ax, label="share of the true class (%)")
    if k <= 20:
        for i in range(k):
            for j in range(k):
                if matrix[i, j]:
                    colour = "white" if share[i, j] > 60 else "black"
                    ax.text(j, i, f"{int(matrix[i, j])}", ha="center", va="center", fontsize=7, color=colour)
        class_ticks(ax, class_names)
        ax.set_yticks(range(k), class_names)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    ax.set_title("Confusion matrix (counts; colour: % of true class)")
    return to_png(fig)


def per_class_accuracy_figure(per_class: Sequence[float | None], class_names: Sequence[str]) -> bytes:
    """Accuracy per class (%) as a bar chart PNG; a class without examples shows no bar."""
    values = np.array([np.nan if v is None else 100 * v for v in per_class])
    fig, ax = plt.subplots(figsize=(max(4.0, 0.4 * len(class_names) + 2), 3))
    ax.bar(range(len(values)), np.nan_to_num(values), color="#4c72b0")
    class_ticks(ax, class_names)
    low = np.nanmin(values) if np.isfinite(values).any() else 0
    ax.set_ylim(max(0, low - 5), 100)
    ax.set_xlabel("class")
    ax.set_ylabel("accuracy (%)")
    ax.set_title("Accuracy per class")
    return to_png(fig)


def training_curve_figure(loss: Sequence[float], accuracy: Sequence[float]) -> bytes:
    """Training loss (nats) and accuracy (%) per epoch as a PNG."""
    epochs = np.arange(1, len(loss) + 1)
    fig, ax = plt.subplots(figsize=(5, 3))
    ax.plot(epochs, loss, marker="o", color="#c44e52", label="loss")
    ax.set_xlabel("epoch")
    ax.set_ylabel("training loss (cross-entropy, nats)")
    twin = ax.twinx()
    twin.plot(epochs, 100 * np.asarray(accuracy), marker="s", color="#4c72b0", label="accuracy")
    twin.set_ylabel("training accuracy (%)")
    handles = ax.get_lines() + twin.get_lines()
    ax.legend(handles, [h.get_label() for h in handles], loc="center right")
    ax.set_title("Training")
    return to_png(fig)
