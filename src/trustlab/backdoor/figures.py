"""Figures of the backdoor scan and repair (from results only)."""

from __future__ import annotations

import numpy as np

from trustlab.backdoor.cleanse import BackdoorScanResult
from trustlab.backdoor.repair import RepairResult
from trustlab.core.plots import class_ticks, plt, show_image, to_png


def norms_figure(result: BackdoorScanResult) -> bytes:
    """Mean minimal-trigger norm per label with the spread over seeds, the median, the flagging
    line, and flagged labels in red."""
    mean = np.asarray(result.mean_norms)
    low, high = np.asarray(result.norm_spread).T
    labels = np.arange(len(mean))
    colours = ["#d62728" if k in result.flagged else "#4c72b0" for k in labels]
    fig, ax = plt.subplots(figsize=(max(4.5, 0.45 * len(mean) + 1.5), 3.2))
    ax.bar(labels, mean, color=colours)
    if len(result.seeds) > 1:
        ax.errorbar(labels, mean, yerr=[mean - low, high - mean], fmt="none", ecolor="black", capsize=3, linewidth=1)
    ax.axhline(result.median_norm, color="grey", linewidth=1, label="median")
    if result.flag_norm > 0:
        ax.axhline(
            result.flag_norm,
            color="#d62728",
            linestyle="--",
            linewidth=1,
            label=f"flagged below (index {result.threshold:g})",
        )
    class_ticks(ax, result.class_names)
    ax.set_xlabel("candidate target label")
    ax.set_ylabel("minimal trigger: mask L1 (pixels)")
    seeds = f", bars: range over {len(result.seeds)} seeds" if len(result.seeds) > 1 else ""
    ax.set_title(f"Smallest trigger sending inputs to each label{seeds}", fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return to_png(fig)


def triggers_figure(result: BackdoorScanResult) -> bytes:
    """Per label: the reversed mask, and the trigger as it is stamped (mask x pattern)."""
    count = len(result.masks)
    fig, axes = plt.subplots(2, count, figsize=(1.0 * count + 0.8, 2.6), squeeze=False)
    for k in range(count):
        mask = np.asarray(result.masks[k])
        pattern = np.asarray(result.patterns[k])
        stamped = (mask[None] * pattern).mean(0)
        name = result.class_names[k] + (" (flagged)" if k in result.flagged else "")
        show_image(axes[0][k], mask, kind="unsigned", title=name)
        show_image(axes[1][k], stamped, kind="image")
    axes[0][0].set_ylabel("mask", fontsize=7)
    axes[1][0].set_ylabel("mask x pattern", fontsize=7)
    fig.suptitle(f"Reversed triggers (seed {result.seeds[0]})", fontsize=9)
    fig.tight_layout()
    return to_png(fig)


def pruning_figure(result: RepairResult) -> bytes:
    """Clean accuracy and attack success as more penultimate features are cut."""
    curve = result.pruning_curve
    fraction = [100 * s.fraction for s in curve]
    fig, ax = plt.subplots(figsize=(5, 3.2))
    ax.plot(fraction, [100 * s.accuracy for s in curve], marker="o", markersize=3, label="clean accuracy")
    ax.plot(fraction, [100 * s.asr_reversed for s in curve], marker="o", markersize=3, label="ASR, reversed trigger")
    if curve and curve[0].asr_true is not None:
        ax.plot(fraction, [100 * s.asr_true for s in curve], marker="o", markersize=3, label="ASR, true trigger")
    ax.set_xlabel("penultimate features cut (%)")
    ax.set_ylabel("%")
    ax.set_ylim(-2, 102)
    ax.set_title("Pruning the most trigger-driven features", fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return to_png(fig)
