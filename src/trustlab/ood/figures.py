"""Figures of the reliability alarm: score histograms, ROC curves, an AUROC map (from results only)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from trustlab.core.plots import finish_panels, panel_grid, plt, to_png
from trustlab.ood.evaluate import ScoreHistogram


def score_histograms_figure(
    histograms: dict[str, ScoreHistogram], score_labels: dict[str, str], thresholds: dict[str, float], alpha: float
) -> bytes:
    """One panel per detector: in-distribution scores filled, each OOD set as a line, the
    calibrated threshold dashed. Values beyond the shown range are counted in the edge bins."""
    names = list(histograms)
    fig, axes = panel_grid(len(names))
    colours = plt.get_cmap("tab10")
    for ax, name in zip(axes, names):
        hist = histograms[name]
        edges = np.asarray(hist.edges)
        widths = np.diff(edges)
        inside = np.asarray(hist.in_distribution, dtype=float)
        ax.bar(edges[:-1], inside / inside.sum(), widths, align="edge", color="#bbbbbb", label="in-distribution")
        for k, (set_name, counts) in enumerate(hist.sets.items()):
            c = np.asarray(counts, dtype=float)
            ax.step(edges, np.r_[c / c.sum(), 0.0], where="post", color=colours(k % 10), linewidth=1, label=set_name)
        ax.axvline(thresholds[name], color="black", linestyle="--", linewidth=1, label=f"threshold (alpha={alpha:g})")
        if hist.log:
            ax.set_xscale("log")
        ax.set_title(name, fontsize=9)
        ax.set_xlabel(score_labels.get(name, "score") + (" (log scale)" if hist.log else ""), fontsize=7)
        ax.set_ylabel("share of inputs", fontsize=7)
        ax.tick_params(labelsize=7)
    return finish_panels(
        fig, axes[0], "OOD score distributions (higher = more out-of-distribution; edge bins hold the tails)"
    )


def roc_figure(grid: Sequence[float], roc: dict[str, dict[str, Sequence[float]]]) -> bytes:
    """One panel per detector: detection rate on each OOD set against false-alarm rate."""
    names = list(roc)
    fig, axes = panel_grid(len(names))
    colours = plt.get_cmap("tab10")
    for ax, name in zip(axes, names):
        for k, (set_name, tpr) in enumerate(roc[name].items()):
            ax.plot(100 * np.asarray(grid), 100 * np.asarray(tpr), color=colours(k % 10), linewidth=1, label=set_name)
        ax.plot([0, 100], [0, 100], color="#999999", linestyle=":", linewidth=0.8)
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("false alarms on in-distribution (%)", fontsize=7)
        ax.set_ylabel("OOD inputs detected (%)", fontsize=7)
        ax.tick_params(labelsize=7)
    return finish_panels(fig, axes[0], "ROC curves per detector")


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
