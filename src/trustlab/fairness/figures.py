"""Figures of the fairness check (from results only)."""

from __future__ import annotations

import numpy as np

from trustlab.core.plots import plt, to_png
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
