"""Figures rendered from results (never from live models), as PNG bytes.

Every figure has labelled axes with units; PNGs carry no timestamp so identical results give
identical files.
"""

from __future__ import annotations

import io
from collections.abc import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def to_png(fig: plt.Figure) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight", metadata={"Software": None})
    plt.close(fig)
    return buffer.getvalue()


def confusion_matrix_figure(confusion: Sequence[Sequence[int]], class_names: Sequence[str]) -> bytes:
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
                    ax.text(
                        j,
                        i,
                        f"{int(matrix[i, j])}",
                        ha="center",
                        va="center",
                        fontsize=7,
                        color="white" if share[i, j] > 60 else "black",
                    )
        ax.set_xticks(range(k), class_names, rotation=90 if max(map(len, class_names)) > 3 else 0)
        ax.set_yticks(range(k), class_names)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    ax.set_title("Confusion matrix (counts; colour: % of true class)")
    return to_png(fig)


def per_class_accuracy_figure(per_class: Sequence[float | None], class_names: Sequence[str]) -> bytes:
    values = np.array([np.nan if v is None else 100 * v for v in per_class])
    fig, ax = plt.subplots(figsize=(max(4.0, 0.4 * len(class_names) + 2), 3))
    ax.bar(range(len(values)), np.nan_to_num(values), color="#4c72b0")
    ax.set_xticks(range(len(values)), class_names, rotation=90 if max(map(len, class_names)) > 3 else 0)
    low = np.nanmin(values) if np.isfinite(values).any() else 0
    ax.set_ylim(max(0, low - 5), 100)
    ax.set_xlabel("class")
    ax.set_ylabel("accuracy (%)")
    ax.set_title("Accuracy per class")
    return to_png(fig)


def training_curve_figure(loss: Sequence[float], accuracy: Sequence[float]) -> bytes:
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


def _finite_or(values: np.ndarray, fill: float) -> np.ndarray:
    return np.where(np.isfinite(values), values, fill)


def per_class_eps_figure(
    class_names: Sequence[str],
    medians: Sequence[float],
    intervals: Sequence[Sequence[float]],
    eps_max: float,
    norm: str,
) -> bytes:
    """Classes sorted by median eps*, with bootstrap intervals; censored medians drawn at eps_max, hatched."""
    med = np.asarray(medians, dtype=float)
    order = np.argsort(_finite_or(med, np.inf), kind="stable")
    low = np.asarray([i[0] for i in intervals], dtype=float)
    high = np.asarray([i[1] for i in intervals], dtype=float)
    shown = _finite_or(med, eps_max)[order]
    err = np.vstack([shown - _finite_or(low, eps_max)[order], _finite_or(high, eps_max)[order] - shown]).clip(min=0)
    fig, ax = plt.subplots(figsize=(max(4.5, 0.45 * len(class_names) + 2), 3.2))
    bars = ax.bar(range(len(order)), shown, yerr=err, capsize=3, color="#4c72b0")
    for bar, value in zip(bars, med[order]):
        if not np.isfinite(value):
            bar.set_hatch("//")
            bar.set_facecolor("#c8d3e6")
    names = [class_names[i] for i in order]
    ax.set_xticks(range(len(order)), names, rotation=90 if max(map(len, names)) > 3 else 0)
    ax.set_xlabel("class (most sensitive first)")
    ax.set_ylabel(f"median minimal eps ({norm}, pixel units)")
    ax.set_title("Per-class robustness (95% bootstrap intervals)")
    return to_png(fig)


def eps_distribution_figure(
    eps_star: Sequence[float], labels: Sequence[int], class_names: Sequence[str], eps_max: float, norm: str
) -> bytes:
    """Box plot of eps* per class; censored examples are drawn at eps_max."""
    values = _finite_or(np.asarray(eps_star, dtype=float), eps_max)
    labels = np.asarray(labels)
    groups = [values[labels == i] for i in range(len(class_names))]
    fig, ax = plt.subplots(figsize=(max(4.5, 0.45 * len(class_names) + 2), 3.2))
    ax.boxplot([g if g.size else [np.nan] for g in groups], showfliers=True, flierprops={"markersize": 2})
    ax.set_xticks(range(1, len(class_names) + 1), class_names, rotation=90 if max(map(len, class_names)) > 3 else 0)
    ax.axhline(eps_max, color="#c44e52", linestyle="--", linewidth=1, label=f"eps_max = {eps_max:g} (censored)")
    ax.set_xlabel("true class")
    ax.set_ylabel(f"minimal eps ({norm}, pixel units)")
    ax.set_title("Distribution of minimal eps per class")
    ax.legend(loc="upper right", fontsize=8)
    return to_png(fig)


def robust_accuracy_figure(curves: Sequence[tuple[str, Sequence[float], Sequence[float]]], norm: str) -> bytes:
    """Robust accuracy against eps, one line per (label, eps grid, accuracy)."""
    fig, ax = plt.subplots(figsize=(5, 3.2))
    for label, eps, accuracy in curves:
        ax.plot(eps, 100 * np.asarray(accuracy), label=label)
    ax.set_xlabel(f"perturbation budget eps ({norm}, pixel units)")
    ax.set_ylabel("robust accuracy (%)")
    ax.set_ylim(0, 100)
    ax.set_title("Robust accuracy against eps")
    ax.legend(fontsize=8)
    return to_png(fig)


def region_figure(class_names: Sequence[str], medians: dict[str, Sequence[float]], eps_max: float) -> bytes:
    """Grouped bars: median eps* per class for each region (censored drawn at eps_max)."""
    regions = list(medians)
    width = 0.8 / len(regions)
    fig, ax = plt.subplots(figsize=(max(5.0, 0.6 * len(class_names) + 2), 3.2))
    for k, region in enumerate(regions):
        values = _finite_or(np.asarray(medians[region], dtype=float), eps_max)
        ax.bar(np.arange(len(class_names)) + (k - (len(regions) - 1) / 2) * width, values, width, label=region)
    ax.set_xticks(range(len(class_names)), class_names)
    ax.set_xlabel("true class")
    ax.set_ylabel("median minimal eps (linf, pixel units)")
    ax.set_title("Where is the model fragile? Perturbing one region only")
    ax.legend(fontsize=8)
    return to_png(fig)


def _panel_grid(count: int, columns: int = 3, size: tuple[float, float] = (3.6, 2.6)):
    rows = max(1, -(-count // columns))
    columns = min(columns, count)
    fig, axes = plt.subplots(rows, columns, figsize=(size[0] * columns, size[1] * rows), squeeze=False)
    for ax in axes.flat[count:]:
        ax.set_visible(False)
    return fig, list(axes.flat)


def _finish_panels(fig: plt.Figure, first: plt.Axes, title: str) -> bytes:
    """One legend (the first panel's) under the grid, a title above it."""
    handles, labels = first.get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=min(6, len(labels)), fontsize=7, bbox_to_anchor=(0.5, -0.02))
    fig.suptitle(title)
    fig.tight_layout(rect=(0, 0.05, 1, 0.97))
    return to_png(fig)


def score_histograms_figure(
    histograms: dict[str, dict], score_labels: dict[str, str], thresholds: dict[str, float], alpha: float
) -> bytes:
    """One panel per detector: in-distribution scores filled, each OOD set as a line, the
    calibrated threshold dashed. Values beyond the shown range are counted in the edge bins."""
    names = list(histograms)
    fig, axes = _panel_grid(len(names))
    colours = plt.get_cmap("tab10")
    for ax, name in zip(axes, names):
        hist = histograms[name]
        edges = np.asarray(hist["edges"])
        widths = np.diff(edges)
        inside = np.asarray(hist["in_distribution"], dtype=float)
        ax.bar(edges[:-1], inside / inside.sum(), widths, align="edge", color="#bbbbbb", label="in-distribution")
        for k, (set_name, counts) in enumerate(hist["sets"].items()):
            c = np.asarray(counts, dtype=float)
            ax.step(edges, np.r_[c / c.sum(), 0.0], where="post", color=colours(k % 10), linewidth=1, label=set_name)
        ax.axvline(thresholds[name], color="black", linestyle="--", linewidth=1, label=f"threshold (alpha={alpha:g})")
        if hist.get("log"):
            ax.set_xscale("log")
        ax.set_title(name, fontsize=9)
        ax.set_xlabel(score_labels.get(name, "score") + (" (log scale)" if hist.get("log") else ""), fontsize=7)
        ax.set_ylabel("share of inputs", fontsize=7)
        ax.tick_params(labelsize=7)
    return _finish_panels(
        fig, axes[0], "OOD score distributions (higher = more out-of-distribution; edge bins hold the tails)"
    )


def roc_figure(grid: Sequence[float], roc: dict[str, dict[str, Sequence[float]]]) -> bytes:
    """One panel per detector: detection rate on each OOD set against false-alarm rate."""
    names = list(roc)
    fig, axes = _panel_grid(len(names))
    colours = plt.get_cmap("tab10")
    for ax, name in zip(axes, names):
        for k, (set_name, tpr) in enumerate(roc[name].items()):
            ax.plot(100 * np.asarray(grid), 100 * np.asarray(tpr), color=colours(k % 10), linewidth=1, label=set_name)
        ax.plot([0, 100], [0, 100], color="#999999", linestyle=":", linewidth=0.8)
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("false alarms on in-distribution (%)", fontsize=7)
        ax.set_ylabel("OOD inputs detected (%)", fontsize=7)
        ax.tick_params(labelsize=7)
    return _finish_panels(fig, axes[0], "ROC curves per detector")


def auroc_heatmap_figure(detectors: Sequence[str], sets: Sequence[str], values: Sequence[Sequence[float]]) -> bytes:
    """AUROC of every detector (rows) on every OOD set (columns), 0.5 = chance."""
    matrix = np.asarray(values, dtype=float)
    fig, ax = plt.subplots(figsize=(1.0 * len(sets) + 3, 0.4 * len(detectors) + 1.8))
    image = ax.imshow(matrix, cmap="RdYlGn", vmin=0.0, vmax=1.0, aspect="auto")
    fig.colorbar(image, ax=ax, label="AUROC (0.5 = chance)")
    for i in range(matrix.shape[0]):
        for j in range(matrix.shape[1]):
            ax.text(j, i, f"{matrix[i, j]:.3f}", ha="center", va="center", fontsize=7)
    ax.set_xticks(range(len(sets)), sets, rotation=35, ha="right", fontsize=8)
    ax.set_yticks(range(len(detectors)), detectors, fontsize=8)
    ax.set_xlabel("out-of-distribution set")
    ax.set_ylabel("detector")
    ax.set_title("Detection AUROC")
    return to_png(fig)
