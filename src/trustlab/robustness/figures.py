"""Figures of minimal eps per class, robust-accuracy curves and regions, drawn from results only."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from trustlab.core.plots import class_ticks, finite_or, plt, to_png


def per_class_eps_figure(
    class_names: Sequence[str],
    medians: Sequence[float | None],
    intervals: Sequence[Sequence[float] | None],
    eps_max: float,
    norm: str,
) -> bytes:
    """Classes sorted by median eps*, with bootstrap intervals; censored medians drawn at eps_max, hatched."""
    med = np.asarray([np.nan if m is None else m for m in medians], dtype=float)
    order = np.argsort(finite_or(med, np.inf), kind="stable")
    low = np.asarray([np.nan if i is None else i[0] for i in intervals], dtype=float)
    high = np.asarray([np.nan if i is None else i[1] for i in intervals], dtype=float)
    shown = finite_or(med, eps_max)[order]
    err = np.vstack([shown - finite_or(low, eps_max)[order], finite_or(high, eps_max)[order] - shown]).clip(min=0)
    fig, ax = plt.subplots(figsize=(max(4.5, 0.45 * len(class_names) + 2), 3.2))
    bars = ax.bar(range(len(order)), shown, yerr=err, capsize=3, color="#4c72b0")
    for bar, value in zip(bars, med[order]):
        if not np.isfinite(value):
            bar.set_hatch("//")
            bar.set_facecolor("#c8d3e6")
    class_ticks(ax, [class_names[i] for i in order])
    ax.set_xlabel("class (most sensitive first)")
    ax.set_ylabel(f"median minimal eps ({norm}, pixel units)")
    ax.set_title("Per-class robustness (95% bootstrap intervals)")
    return to_png(fig)


def eps_distribution_figure(
    eps_star: Sequence[float], labels: Sequence[int], class_names: Sequence[str], eps_max: float, norm: str
) -> bytes:
    """Box plot of eps* per class over attackable examples (eps* > 0); censored ones drawn at eps_max."""
    values = np.asarray(eps_star, dtype=float)
    labels = np.asarray(labels)
    attackable = values > 0
    values = finite_or(values, eps_max)
    groups = [values[(labels == i) & attackable] for i in range(len(class_names))]
    fig, ax = plt.subplots(figsize=(max(4.5, 0.45 * len(class_names) + 2), 3.2))
    ax.boxplot([g if g.size else [np.nan] for g in groups], showfliers=True, flierprops={"markersize": 2})
    class_ticks(ax, class_names, offset=1)
    ax.axhline(eps_max, color="#c44e52", linestyle="--", linewidth=1, label=f"eps_max = {eps_max:g} (censored)")
    ax.set_xlabel("true class")
    ax.set_ylabel(f"minimal eps ({norm}, pixel units)")
    ax.set_title("Distribution of minimal eps per class (correct before the attack)")
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


def region_figure(class_names: Sequence[str], medians: dict[str, Sequence[float | None]], eps_max: float) -> bytes:
    """Grouped bars: median eps* per class for each region. A censored median (more than half of
    the class not flipped within eps_max) is only known to exceed eps_max: its bar stops at the
    eps_max line, hatched and marked ">", never drawn as a measured value."""
    regions = list(medians)
    width = 0.8 / len(regions)
    fig, ax = plt.subplots(figsize=(max(5.0, 0.6 * len(class_names) + 2), 3.2))
    for k, region in enumerate(regions):
        raw = np.asarray([np.nan if m is None else m for m in medians[region]], dtype=float)
        positions = np.arange(len(class_names)) + (k - (len(regions) - 1) / 2) * width
        bars = ax.bar(positions, finite_or(raw, eps_max), width, label=region)
        for bar, value in zip(bars, raw):
            if np.isinf(value):
                bar.set_hatch("//")
                bar.set_alpha(0.45)
                ax.annotate(">", (bar.get_x() + bar.get_width() / 2, eps_max), ha="center", va="bottom", fontsize=8)
    ax.axhline(
        eps_max, color="#c44e52", linestyle="--", linewidth=1, label=f"eps_max = {eps_max:g} (hatched: censored)"
    )
    ax.set_ylim(0, eps_max * 1.12)
    ax.set_xticks(range(len(class_names)), class_names)
    ax.set_xlabel("true class")
    ax.set_ylabel("median minimal eps (linf, input units)")
    ax.set_title("Where is the model fragile? Perturbing one region only")
    ax.legend(fontsize=7)
    return to_png(fig)


def bracket_curve_figure(
    eps: Sequence[float], certified: Sequence[float], empirical: Sequence[float], method: str, attack: str
) -> bytes:
    """Certified (lower bound) and empirical (attack, upper bound) robust accuracy on one axis; the
    true robust accuracy lies in the shaded band between them."""
    eps = np.asarray(eps, dtype=float)
    low, high = 100 * np.asarray(certified, dtype=float), 100 * np.asarray(empirical, dtype=float)
    fig, ax = plt.subplots(figsize=(5, 3.2))
    ax.fill_between(eps, low, high, color="#c8d3e6", label="true robust accuracy lies here")
    ax.plot(eps, high, color="#c44e52", label=f"empirical ({attack}): upper bound")
    ax.plot(eps, low, color="#4c72b0", label=f"certified ({method}): lower bound")
    ax.set_xlabel("perturbation budget eps (linf, pixel units)")
    ax.set_ylabel("robust accuracy (%)")
    ax.set_ylim(0, 100)
    ax.set_title("Certified and empirical robust accuracy")
    ax.legend(fontsize=7)
    return to_png(fig)


def bracket_figure(certified: Sequence[float], attacked: Sequence[float], eps_max: float) -> bytes:
    """Every attackable example's bracket [certified radius, attack's minimal eps] as a vertical
    segment, examples sorted by the certified radius; open brackets (no flip by eps_max) drawn to
    eps_max in a lighter colour."""
    low, high = np.asarray(certified, dtype=float), np.asarray(attacked, dtype=float)
    keep = high > 0  # wrong before any perturbation: no bracket
    low, high = low[keep], high[keep]
    order = np.lexsort((finite_or(high, eps_max), low))
    low, high = low[order], high[order]
    open_ = np.isinf(high)
    x = np.arange(low.size)
    fig, ax = plt.subplots(figsize=(5.5, 3.2))
    ax.vlines(x[~open_], low[~open_], high[~open_], color="#4c72b0", linewidth=0.6, label="bracket")
    ax.vlines(x[open_], low[open_], eps_max, color="#c8d3e6", linewidth=0.6, label="open: no flip by eps_max")
    ax.plot(x, low, color="#222222", linewidth=0.8, label="certified radius")
    ax.axhline(eps_max, color="#c44e52", linestyle="--", linewidth=1, label=f"eps_max = {eps_max:g}")
    ax.set_xlabel("examples correct before any perturbation (sorted by certified radius)")
    ax.set_ylabel("minimal eps (linf, pixel units)")
    ax.set_ylim(0, eps_max * 1.08)
    ax.set_title("Per-example bracket of the true minimal perturbation")
    ax.legend(fontsize=7, loc="upper left")
    return to_png(fig)


def smoothing_figure(radii: Sequence[float], accuracy: Sequence[float], max_radius: float, sigma: float) -> bytes:
    """Certified L2 accuracy of the smoothed classifier against the radius, with the largest radius
    the sample size allows."""
    fig, ax = plt.subplots(figsize=(5, 3.2))
    ax.plot(radii, 100 * np.asarray(accuracy, dtype=float), color="#4c72b0", label=f"smoothed, sigma {sigma:g}")
    ax.axvline(max_radius, color="#c44e52", linestyle="--", linewidth=1, label=f"largest certifiable {max_radius:.3g}")
    ax.set_xlabel("L2 radius (pixel units)")
    ax.set_ylabel("certified accuracy (%)")
    ax.set_ylim(0, 100)
    ax.set_title("Randomised smoothing: certified L2 accuracy")
    ax.legend(fontsize=7)
    return to_png(fig)
