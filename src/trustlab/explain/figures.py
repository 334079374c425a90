"""Figures of tabular explanations (correlations, SHAP summary and importance, LIME beside SHAP),
drawn from results only. LIME weights are in probability units and SHAP values in log-odds, so
the two are drawn on separate axes."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from trustlab.core.plots import plt, to_png

_POSITIVE = "#c44e52"
_NEGATIVE = "#4c72b0"


def correlation_heatmap_figure(names: Sequence[str], matrix: Sequence[Sequence[float]]) -> bytes:
    """Pearson correlations between features and the outcome, with the value in each cell."""
    values = np.asarray(matrix, dtype=float)
    k = len(names)
    fig, ax = plt.subplots(figsize=(0.6 * k + 2.5, 0.55 * k + 1.5))
    image = ax.imshow(values, cmap="RdBu_r", vmin=-1.0, vmax=1.0)
    fig.colorbar(image, ax=ax, label="Pearson correlation r (unitless, -1 to 1)")
    for i in range(k):
        for j in range(k):
            text = "n/a" if not np.isfinite(values[i, j]) else f"{values[i, j]:.2f}"
            ax.text(j, i, text, ha="center", va="center", fontsize=7, color="white" if abs(values[i, j]) > 0.6 else "k")
    ax.set_xticks(range(k), names, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(k), names, fontsize=8)
    ax.set_xlabel("feature (last: outcome label)")
    ax.set_ylabel("feature (last: outcome label)")
    ax.set_title("Correlation between features and with the outcome")
    return to_png(fig)


def _quantiles(column: np.ndarray) -> np.ndarray:
    """Each value's quantile within its column, in [0, 1] (ties share their mean rank)."""
    if len(column) < 2:
        return np.full(len(column), 0.5)
    order = column.argsort(kind="stable")
    ranks = np.empty(len(column))
    ranks[order] = np.arange(len(column), dtype=float)
    for value in np.unique(column):  # average the ranks of ties
        same = column == value
        ranks[same] = ranks[same].mean()
    return ranks / (len(column) - 1)


def shap_summary_figure(
    feature_names: Sequence[str],
    shap_values: Sequence[Sequence[float]],
    feature_values: Sequence[Sequence[float]],
    output: str,
) -> bytes:
    """Beeswarm-like summary: one row per feature (most important on top), one dot per example at
    its SHAP value, jittered vertically, coloured by the feature value's quantile."""
    shap = np.asarray(shap_values, dtype=float).reshape(-1, len(feature_names))
    values = np.asarray(feature_values, dtype=float).reshape(shap.shape)
    order = np.argsort(-np.abs(shap).mean(axis=0), kind="stable")
    rng = np.random.default_rng(0)
    fig, ax = plt.subplots(figsize=(6.5, 0.45 * len(feature_names) + 1.5))
    scatter = None
    for row, feature in enumerate(order[::-1]):  # least important at the bottom
        jitter = rng.uniform(-0.3, 0.3, size=len(shap))
        scatter = ax.scatter(
            shap[:, feature],
            row + jitter,
            c=_quantiles(values[:, feature]),
            cmap="coolwarm",
            vmin=0.0,
            vmax=1.0,
            s=9,
            alpha=0.8,
            linewidths=0,
        )
    if scatter is not None:
        fig.colorbar(scatter, ax=ax, label="feature value (quantile in the shown data, 0 = low, 1 = high)")
    ax.axvline(0.0, color="#777777", linewidth=0.8)
    ax.set_yticks(range(len(order)), [feature_names[i] for i in order[::-1]], fontsize=8)
    ax.set_xlabel(f"SHAP value ({output})")
    ax.set_ylabel("feature (most important on top)")
    ax.set_title(f"SHAP summary ({len(shap)} examples)")
    return to_png(fig)


def lime_shap_rows_figure(
    feature_names: Sequence[str],
    lime_weights: Sequence[Sequence[float]],
    shap_values: Sequence[Sequence[float]],
    labels: Sequence[str],
    lime_output: str,
    shap_output: str,
) -> bytes:
    """For each explained row, LIME weights (left) and SHAP values (right) as horizontal bars in
    the same feature order; red pushes towards the positive class, blue away from it."""
    lime = np.asarray(lime_weights, dtype=float).reshape(-1, len(feature_names))
    shap = np.asarray(shap_values, dtype=float).reshape(lime.shape)
    count = len(lime)
    fig, axes = plt.subplots(count, 2, figsize=(9.0, 0.28 * len(feature_names) * count + 1.2), squeeze=False)
    positions = np.arange(len(feature_names))[::-1]
    for i in range(count):
        for ax, weights, method, unit in (
            (axes[i, 0], lime[i], "LIME", lime_output),
            (axes[i, 1], shap[i], "SHAP", shap_output),
        ):
            ax.barh(positions, weights, color=np.where(weights >= 0, _POSITIVE, _NEGATIVE), height=0.7)
            ax.axvline(0.0, color="#777777", linewidth=0.8)
            ax.set_yticks(positions, feature_names, fontsize=7)
            ax.tick_params(axis="x", labelsize=7)
            ax.set_title(f"{labels[i]}: {method}", fontsize=8)
            ax.set_xlabel(f"{method} weight ({unit})", fontsize=7)
            ax.set_ylabel("feature", fontsize=7)
    fig.suptitle("Single-row explanations: LIME and SHAP side by side")
    fig.tight_layout(rect=(0, 0, 1, 0.98))
    return to_png(fig)


def global_importance_figure(feature_names: Sequence[str], importance: Sequence[float], output: str) -> bytes:
    """Mean |SHAP| per feature, largest on top."""
    values = np.asarray(importance, dtype=float)
    order = np.argsort(values, kind="stable")
    fig, ax = plt.subplots(figsize=(5.5, 0.35 * len(values) + 1.3))
    ax.barh(range(len(values)), values[order], color=_NEGATIVE)
    ax.set_yticks(range(len(values)), [feature_names[i] for i in order], fontsize=8)
    ax.set_xlabel(f"mean |SHAP value| ({output})")
    ax.set_ylabel("feature")
    ax.set_title("Global importance (mean |SHAP| over the test split)")
    return to_png(fig)
