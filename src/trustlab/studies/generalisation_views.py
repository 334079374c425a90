"""How the recipe study appears: its table, its figure and its summary lines (formatting only; every
figure comes from :class:`~trustlab.studies.generalisation.GeneralisationResult`)."""

from __future__ import annotations

import numpy as np

from trustlab.core import format as fmt
from trustlab.core.plots import plt, to_png
from trustlab.core.views import Figure, Section, Table, register_view
from trustlab.studies.generalisation import DOMAIN, MNIST_C, GeneralisationResult, RecipeRow

SHOWN_EFFECTS = 4  # corruptions named per recipe in the table's help / hurt columns


def _accuracy(row: RecipeRow, index: int) -> str:
    return f"{fmt.pct(row.accuracy[index], 1)} ({fmt.pct(row.low[index], 1)}-{fmt.pct(row.high[index], 1)})"


def _delta(row: RecipeRow, index: int) -> str:
    if row.delta is None:
        return "-"
    low, high = row.delta_low[index], row.delta_high[index]
    noise = "" if low > 0 or high < 0 else " ~"
    return f"{row.delta[index]:+.1f} ({low:+.1f} to {high:+.1f}){noise}"


def _effects(effects) -> str:
    if not effects:
        return "-"
    shown = [
        f"{e.set.replace('_', ' ')} {e.points:+.1f} ({e.low:+.1f} to {e.high:+.1f})" for e in effects[:SHOWN_EFFECTS]
    ]
    more = len(effects) - SHOWN_EFFECTS
    return "; ".join(shown) + (f"; +{more} more" if more > 0 else "")


def _main_table(result: GeneralisationResult) -> Table:
    mean, domain = result.sets.index(MNIST_C), result.sets.index(DOMAIN)
    rows = [
        [
            row.recipe,
            row.summary,
            _accuracy(row, 0),
            _accuracy(row, mean),
            _delta(row, mean),
            _accuracy(row, domain),
            _delta(row, domain),
        ]
        for row in result.rows
    ]
    header = [
        "recipe", "what changes", "clean", "MNIST-C mean", "vs baseline (points)", "digits (zero-shot)",
        "vs baseline (points)",
    ]  # fmt: skip
    caption = (
        "Accuracy with 95% bootstrap intervals over seeds and test digits; differences to the baseline in "
        "accuracy points, paired on the digits; '~' marks a difference within noise (its interval holds 0)."
    )
    return Table(header, rows, caption, foldable=False)


def _effects_table(result: GeneralisationResult) -> Table:
    rows = [
        [row.recipe, _effects(result.helps(row)), _effects(result.hurts(row))]
        for row in result.rows
        if row.delta is not None
    ]
    return Table(
        ["recipe", "helps (beyond noise)", "hurts (beyond noise)"],
        rows,
        f"Where each recipe differs from the baseline beyond noise (points, 95% interval; the {SHOWN_EFFECTS} largest)",
    )


def _error_table(result: GeneralisationResult) -> Table:
    header = ["corruption", *[row.recipe for row in result.rows]]
    rows = []
    for name in ("clean", *result.corruptions):
        index = result.sets.index(name)
        rows.append([name.replace("_", " "), *[fmt.pct(1.0 - row.accuracy[index], 1) for row in result.rows]])
    return Table(header, rows, "Error per corruption (mean over seeds): the per-corruption error table")


def effect_figure(result: GeneralisationResult) -> bytes:
    """Heat map of every recipe's difference to the baseline (points) on every set; cells whose
    interval holds 0 are left uncoloured and marked '~'."""
    rows = [row for row in result.rows if row.delta is not None]
    values = np.array([row.delta for row in rows], dtype=float)
    noise = np.array([[lo <= 0 <= hi for lo, hi in zip(r.delta_low, r.delta_high)] for r in rows])
    limit = max(1.0, float(np.nanmax(np.abs(values)))) if values.size else 1.0
    fig, ax = plt.subplots(figsize=(0.55 * len(result.sets) + 3.0, 0.38 * len(rows) + 1.8))
    shown = np.where(noise, np.nan, values)
    ax.imshow(np.zeros_like(values), cmap="Greys", vmin=0, vmax=8, aspect="auto")
    image = ax.imshow(shown, cmap="RdBu", vmin=-limit, vmax=limit, aspect="auto")
    for i in range(values.shape[0]):
        for j in range(values.shape[1]):
            text = f"{values[i, j]:+.0f}" + ("~" if noise[i, j] else "")
            ax.text(j, i, text, ha="center", va="center", fontsize=6, color="#555555" if noise[i, j] else "black")
    ax.set_xticks(
        range(len(result.sets)), [s.replace("_", " ") for s in result.sets], rotation=60, ha="right", fontsize=7
    )
    ax.set_yticks(range(len(rows)), [row.recipe for row in rows], fontsize=7)
    ax.set_xlabel("test set (clean, MNIST-C mean, second domain, then each corruption)")
    ax.set_ylabel("recipe")
    bar = fig.colorbar(image, ax=ax, fraction=0.03, pad=0.01)
    bar.set_label("accuracy difference to the baseline (points)", fontsize=7)
    ax.set_title("What each recipe changes against the baseline ('~', uncoloured: within noise)", fontsize=9)
    fig.tight_layout()
    return to_png(fig)


def _section(name: str, result: GeneralisationResult) -> Section:
    seeds = max((len(r.seeds) for r in result.rows), default=0)
    paragraphs = [
        f"{sum(1 for r in result.rows if r.seeds)} training recipes x {seeds} seeds, each trained for {result.epochs} "
        f"epochs on {result.train_examples:,} MNIST digits, then scored on {result.clean_examples:,} clean test "
        f"digits, on MNIST-C's 15 corruptions of {result.corrupted_examples:,} of them and on "
        f"{result.domain_examples:,} 8 x 8 scikit-learn digits upsampled to 28 x 28 (a second domain, zero-shot). "
        f"Every difference is measured against the '{result.baseline}' recipe.",
    ]
    for row in result.rows:
        helps, hurts = result.helps(row), result.hurts(row)
        if row.delta is None or not (helps or hurts):
            continue
        parts = []
        if helps:
            parts.append("helps on " + ", ".join(e.set.replace("_", " ") for e in helps))
        if hurts:
            parts.append("hurts on " + ", ".join(e.set.replace("_", " ") for e in hurts))
        paragraphs.append(f"{row.recipe}: " + "; ".join(parts) + ".")
    return Section(
        name,
        "Study: which training recipes help a digit classifier generalise",
        paragraphs=paragraphs,
        facts=[
            ("models", f"{result.trained} trained here, {result.cached} from the cache"),
            ("run on", result.executor),
            ("bootstrap", f"{result.resamples:,} resamples over seeds and digits"),
            ("time", fmt.seconds(result.seconds)),
        ],
        tables=[_main_table(result), _effects_table(result), _error_table(result)],
        figures=[
            Figure(
                f"{name}-effects",
                "Difference to the baseline per recipe and test set, in accuracy points.",
                effect_figure(result),
            )
        ]
        if len(result.rows) > 1
        else [],
    )


def _summary(result: GeneralisationResult) -> list[str]:
    mean, domain = result.sets.index(MNIST_C), result.sets.index(DOMAIN)
    lines = []
    for row in result.rows:
        lines.append(
            f"{row.recipe}: clean {fmt.pct(row.accuracy[0], 1)}, MNIST-C {fmt.pct(row.accuracy[mean], 1)} "
            f"[{_delta(row, mean)}], digits {fmt.pct(row.accuracy[domain], 1)} [{_delta(row, domain)}]"
        )
    lines.append(f"{result.trained} models trained, {result.cached} from the cache, {fmt.seconds(result.seconds)}")
    return lines


register_view(GeneralisationResult, order=45, section=_section, summary=_summary)
