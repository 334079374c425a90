"""Figures of the fairness check (from results only)."""

from __future__ import annotations

import numpy as np

from trustlab.core.plots import plt, to_png
from trustlab.fairness.mitigation import MitigationResult
from trustlab.fairness.table import FOUR_FIFTHS, FairnessResult


def selection_rate_figure(result: FairnessResult) -> bytes:
    """Selection rate per group with its bootstrap interval, the privileged group in a darker colour,
    and the four-fifths line (0.8 x the privileged group's rate); small groups hatched."""
    rows = result.groups
    rates = np.array([r.selection_rate.value for r in rows])
    low = np.array([r.selection_rate.low for r in rows])
    high = np.array([r.selection_rate.high for r in rows])
    positions = np.arange(len(rows))
    privileged = next(r for r in rows if r.group == result.privileged)
    colours = ["#1f3b73" if r.group == result.privileged else "#7a9cc6" for r in rows]
    fig, ax = plt.subplots(figsize=(max(4.5, 0.55 * len(rows) + 2), 3.4))
    bars = ax.bar(positions, 100 * rates, color=colours)
    for bar, row in zip(bars, rows):
        if row.small:
            bar.set_hatch("//")
    yerr = 100 * np.vstack([np.nan_to_num(rates - low), np.nan_to_num(high - rates)])
    ax.errorbar(positions, 100 * rates, yerr=yerr, fmt="none", ecolor="black", capsize=3, linewidth=1)
    ax.axhline(
        100 * FOUR_FIFTHS * privileged.selection_rate.value,
        color="#d62728",
        linestyle="--",
        linewidth=1,
        label=f"four-fifths line: 0.8 x {result.privileged}'s rate",
    )
    ax.set_xticks(positions, [r.group for r in rows], rotation=90 if max(len(r.group) for r in rows) > 8 else 0)
    ax.set_xlabel(f"group ({result.group_label})")
    ax.set_ylabel("selection rate, P(prediction = 1) (%)")
    ax.set_title(f"Selection rate per group, {100 * result.level:.0f}% bootstrap intervals", fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return to_png(fig)


def _no_curves(ax, what: str) -> None:
    ax.text(50, 50, f"no scores were given (decisions only):\nno {what}", ha="center", va="center", fontsize=8)


def roc_figure(result: FairnessResult) -> bytes:
    """Each group's ROC curve (TPR against FPR of the rules ``score >= t``, in %) with its AUC in the
    legend, the chance diagonal, and each group's operating point (its TPR and FPR at the decision
    threshold) as a dot. Without scores: empty axes with a note."""
    fig, ax = plt.subplots(figsize=(4.6, 4.2))
    colours = plt.get_cmap("tab10")
    ax.plot([0, 100], [0, 100], color="#999999", linestyle=":", linewidth=0.8, label="chance (AUC 0.5)")
    if result.curves is None:
        _no_curves(ax, "ROC curves")
    else:
        for k, (curve, row) in enumerate(zip(result.curves, result.groups)):
            colour = colours(k % 10)
            if curve.auc is None:
                ax.plot([], [], color=colour, label=f"{curve.group} (AUC undefined: one class only)")
                continue
            ax.plot(
                100 * np.asarray(curve.fpr),
                100 * np.asarray(curve.tpr),
                color=colour,
                linewidth=1.2,
                label=f"{curve.group} (AUC {curve.auc:.3f})",
            )
            if np.isfinite(row.fpr.value) and np.isfinite(row.tpr.value):
                ax.plot(100 * row.fpr.value, 100 * row.tpr.value, "o", color=colour, markersize=4)
    ax.set_xlim(-1, 101)
    ax.set_ylim(-1, 101)
    ax.set_xlabel("false positive rate, P(score >= t | y = 0) (%)")
    ax.set_ylabel("true positive rate, P(score >= t | y = 1) (%)")
    ax.set_title(f"ROC curve per group ({result.group_label}); dots: the decisions", fontsize=9)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    return to_png(fig)


def reliability_figure(result: FairnessResult) -> bytes:
    """Each group's reliability diagram: the observed positive rate against the mean score in each
    non-empty score bin (both in %), markers sized by the bin's share of the group, the diagonal of
    perfect calibration, and each group's ECE in the legend. Without scores: empty axes with a note."""
    fig, ax = plt.subplots(figsize=(4.6, 4.2))
    colours = plt.get_cmap("tab10")
    ax.plot([0, 100], [0, 100], color="#999999", linestyle=":", linewidth=0.8, label="perfectly calibrated")
    if result.curves is None:
        _no_curves(ax, "reliability diagram")
    else:
        for k, (curve, row) in enumerate(zip(result.curves, result.groups)):
            colour = colours(k % 10)
            count = np.asarray(curve.count, dtype=float)
            ece = "n/a" if row.ece is None else f"{row.ece.value:.3f}"
            x, y = 100 * np.asarray(curve.mean_score), 100 * np.asarray(curve.positive_rate)
            ax.plot(x, y, color=colour, linewidth=1, label=f"{curve.group} (ECE {ece})")
            ax.scatter(x, y, s=8 + 60 * count / max(1.0, count.sum()), color=colour, zorder=3)
    ax.set_xlim(-1, 101)
    ax.set_ylim(-1, 101)
    ax.set_xlabel("mean score in the bin, predicted P(y = 1) (%)")
    ax.set_ylabel("observed positive rate in the bin, P(y = 1) (%)")
    ax.set_title(f"Reliability per group ({result.group_label}), {result.bins} equal-width bins", fontsize=9)
    ax.legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    return to_png(fig)


def tradeoff_figure(result: MitigationResult) -> bytes:
    """Accuracy against disparate impact (lower selection rate / higher) for every mitigation, each
    with its bootstrap intervals on both axes; the four-fifths line drawn, the baseline in black."""
    rows = result.rows
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for i, row in enumerate(rows):
        acc, di = row.accuracy, row.disparate_impact
        colour = "black" if row.method == "baseline" else plt.cm.tab10(i % 10)
        ax.errorbar(
            100 * acc.value,
            di.value,
            xerr=[[100 * max(acc.value - acc.low, 0)], [100 * max(acc.high - acc.value, 0)]],
            yerr=[[np.nan_to_num(max(di.value - di.low, 0))], [np.nan_to_num(max(di.high - di.value, 0))]],
            fmt="o",
            color=colour,
            capsize=3,
            linewidth=1,
            label=f"{row.method} ({row.stage})",
        )
    ax.axhline(FOUR_FIFTHS, color="#d62728", linestyle="--", linewidth=1, label="four-fifths line (0.8)")
    ax.axhline(1.0, color="grey", linestyle=":", linewidth=1)
    ax.set_xlabel(f"accuracy on {result.test_examples:,} test examples (%)")
    ax.set_ylabel(f"disparate impact by {result.group_label}\n(lower selection rate / higher)")
    ax.set_title(f"Accuracy vs fairness, {100 * result.level:.0f}% bootstrap intervals", fontsize=9)
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))
    fig.tight_layout()
    return to_png(fig)
