"""Figures of the shift audit (from its result only): accuracy per corruption with intervals, and
one digit as each corruption shows it."""

from __future__ import annotations

import numpy as np

from trustlab.core.plots import plt, show_image, to_png
from trustlab.shift.results import ShiftResult

CLEAN_COLOUR, CORRUPTED_COLOUR, WORST_COLOUR = "#55a868", "#4c72b0", "#d62728"


def accuracy_figure(result: ShiftResult) -> bytes:
    """Accuracy of each set with its 95% Wilson interval, the clean accuracy as a line and the
    baseline's accuracy as markers."""
    rows = result.rows
    positions = np.arange(len(rows))
    accuracy = np.array([100 * r.accuracy for r in rows])
    low = np.array([100 * r.accuracy_low for r in rows])
    high = np.array([100 * r.accuracy_high for r in rows])
    worst = result.worst
    colours = [
        CLEAN_COLOUR if i == 0 else WORST_COLOUR if worst is not None and r is worst else CORRUPTED_COLOUR
        for i, r in enumerate(rows)
    ]
    fig, ax = plt.subplots(figsize=(max(5.0, 0.42 * len(rows) + 1.8), 3.6))
    ax.bar(positions, accuracy, color=colours)
    # Wilson bounds of an accuracy of exactly 0 or 1 can miss it by a rounding error: clip at 0
    spread = np.maximum(0.0, [accuracy - low, high - accuracy])
    ax.errorbar(positions, accuracy, yerr=spread, fmt="none", ecolor="black", capsize=2, linewidth=1)
    ax.axhline(100 * result.clean.accuracy, color=CLEAN_COLOUR, linestyle="--", linewidth=1, label="clean accuracy")
    if result.has_baseline and not result.baseline_is_model:
        ax.scatter(
            positions, [100 * (1 - r.baseline_error) for r in rows], marker="_", s=140, color="black", zorder=3,
            label=f"baseline ({result.baseline})",
        )  # fmt: skip
    ax.set_xticks(positions, [r.corruption.replace("_", " ") for r in rows], rotation=60, ha="right", fontsize=7)
    ax.set_xlabel("set (MNIST-C corruption at its severity)")
    ax.set_ylabel("accuracy (%)")
    ax.set_ylim(0, 118)
    ax.set_yticks(range(0, 101, 20))
    ax.set_title(f"Accuracy on {result.examples:,} digits per set (whiskers: 95% Wilson interval)", fontsize=9)
    ax.legend(fontsize=7, loc="upper center", ncol=2, frameon=False)
    fig.tight_layout()
    return to_png(fig)


def gallery_figure(result: ShiftResult, columns: int = 8) -> bytes:
    """The same digit clean and under every corruption, with the model's prediction on each."""
    count = len(result.rows)
    columns = min(columns, count)
    lines = -(-count // columns)
    fig, axes = plt.subplots(lines, columns, figsize=(1.05 * columns + 0.4, 1.3 * lines + 0.5), squeeze=False)
    for ax in axes.flat[count:]:
        ax.set_visible(False)
    names = result.class_names
    for ax, row in zip(axes.flat, result.rows):
        image = np.asarray(row.example, dtype=float).reshape(28, 28) / 255.0 if len(row.example) == 784 else None
        predicted = names[row.example_prediction] if 0 <= row.example_prediction < len(names) else "?"
        title = f"{row.corruption.replace('_', ' ')}\npredicted {predicted}"
        if image is not None:
            show_image(ax, image, kind="image", title=title)
        if row.example_prediction != result.example_label:
            for spine in ax.spines.values():
                spine.set_edgecolor(WORST_COLOUR)
                spine.set_linewidth(2)
    label = names[result.example_label] if 0 <= result.example_label < len(names) else str(result.example_label)
    fig.suptitle(f"One digit (true class {label}) under each corruption; red frame: misread", fontsize=9)
    fig.tight_layout()
    return to_png(fig)


MODE_COLOURS = {"last_layer": "#4c72b0", "full": "#dd8452"}


def transfer_figure(result) -> bytes:
    """Accuracy on the second domain against labelled examples per class, one line per fine-tuning
    mode with its 95% interval, the zero-shot accuracy as a dashed line (from a TransferResult)."""
    fig, ax = plt.subplots(figsize=(5.2, 3.6))
    zero = result.zero_shot
    ax.axhline(100 * zero.accuracy, color="black", linestyle="--", linewidth=1, label="zero-shot")
    ax.axhspan(100 * zero.accuracy_low, 100 * zero.accuracy_high, color="grey", alpha=0.15, linewidth=0)
    for mode in result.modes:
        rows = sorted((r for r in result.fine_tuned if r.mode == mode), key=lambda r: r.per_class)
        x = np.array([r.per_class for r in rows])
        accuracy = np.array([100 * r.accuracy for r in rows])
        spread = np.maximum(
            0.0, [accuracy - [100 * r.accuracy_low for r in rows], [100 * r.accuracy_high for r in rows] - accuracy]
        )
        ax.errorbar(
            x, accuracy, yerr=spread, marker="o", capsize=3, color=MODE_COLOURS.get(mode),
            label=mode.replace("_", " "),
        )  # fmt: skip
    ax.set_xscale("log")
    ax.set_xlabel("labelled examples per class (log scale; largest: the whole training split)")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(f"{result.model} on {result.target}", fontsize=8)
    ax.legend(fontsize=7, frameon=False, loc="lower right")
    fig.tight_layout()
    return to_png(fig)
