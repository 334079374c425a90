"""How studies appear: report sections and CLI summary lines."""

from __future__ import annotations

import numpy as np

from trustlab.core import format as fmt
from trustlab.core.plots import image_grid_figure, plt, show_image, to_png
from trustlab.core.views import Figure, Section, Table, register_view
from trustlab.studies.attack_explanations import AttackExplanationResult
from trustlab.studies.robust_vs_natural import RobustVsNaturalResult


def _robust_vs_natural(name: str, result: RobustVsNaturalResult) -> Section:
    cells = [(m, k) for m in result.models for k in result.inputs]
    header = ["metric", *[f"{m}, {k}" for m, k in cells]]
    rows = []
    for metric, description in result.metric_descriptions.items():
        row = [description]
        for m, k in cells:
            low, high = result.intervals[metric][m][k]
            row.append(f"{result.means[metric][m][k]:.3f} ({low:.3f}-{high:.3f})")
        rows.append(row)
    accuracy = ["accuracy", *[fmt.pct(result.accuracy[m][k]) for m, k in cells]]
    table = Table(header, [accuracy, *rows], "Mean per cell with bootstrap 95% intervals")
    fig = plt.figure(figsize=(9, 5))
    outer = fig.add_gridspec(2, 2, wspace=0.08, hspace=0.25)
    for i, model in enumerate(result.models):
        for j, kind in enumerate(result.inputs):
            maps = result.gallery_maps[model][kind]
            inner = outer[i, j].subgridspec(2, max(1, len(maps)), hspace=0.05, wspace=0.05)
            for c, (image, saliency) in enumerate(zip(result.gallery_inputs[model][kind], maps)):
                show_image(fig.add_subplot(inner[0, c]), image)
                show_image(fig.add_subplot(inner[1, c]), saliency, kind="signed")
            fig.text(0.3 + 0.42 * j, 0.93 - 0.46 * i, f"{model} model, {kind} inputs", ha="center", fontsize=9)
    fig.suptitle(f"{result.method} maps towards the true class (top: input, bottom: map; red = supports)", fontsize=9)
    cos = result.means["cosine_alignment"]
    natural, robust = result.models
    paragraphs = [
        f"On clean inputs, the {robust} model's maps align with the input with cosine "
        f"{cos[robust]['clean']:.3f} against {cos[natural]['clean']:.3f} for the {natural} model; on adversarial "
        f"inputs (PGD, eps {result.eps:g}, against each model) {cos[robust]['adversarial']:.3f} against "
        f"{cos[natural]['adversarial']:.3f}. {result.examples:,} images."
    ]
    return Section(
        name,
        f"Study: robust vs natural model ({result.dataset})",
        paragraphs=paragraphs,
        facts=[("attack", result.attack), ("time", fmt.seconds(result.seconds))],
        tables=[table],
        figures=[Figure(f"{name}-grid", "Saliency maps: 2 models x 2 kinds of input.", to_png(fig))],
    )


def _robust_vs_natural_summary(result: RobustVsNaturalResult) -> list[str]:
    return [
        f"{metric}: "
        + ", ".join(f"{m}/{k} {result.means[metric][m][k]:.3f}" for m in result.models for k in result.inputs)
        for metric in result.metric_descriptions
    ]


def _attack_explanations(name: str, result: AttackExplanationResult) -> Section:
    names = result.class_names
    table = Table(
        ["class", "recall before", "recall after", "change (points)"],
        [
            [c, fmt.pct(b), fmt.pct(a), "n/a" if a is None or b is None else f"{100 * (a - b):+.1f}"]
            for c, b, a in zip(names, result.recall_before, result.recall_after)
        ],
        f"Recall per class before and after the attack at eps = {result.eps:g}",
    )
    rows, labels = [], []
    for i in range(len(result.gallery_clean)):
        clean, adv = np.asarray(result.gallery_clean[i]), np.asarray(result.gallery_adversarial[i])
        rows.append([clean, adv, adv - clean, result.gallery_map_before[i], result.gallery_map_after[i]])
        labels.append(f"{names[result.gallery_clean_pred[i]]} -> {names[result.gallery_adv_pred[i]]}")
    figures = []
    if rows:
        figures.append(
            Figure(
                f"{name}-gallery",
                "Clean and adversarial images, the perturbation, and the maps before and after (towards each "
                "prediction).",
                image_grid_figure(
                    rows,
                    labels,
                    ["clean", "adversarial", "perturbation", f"{result.method} before", f"{result.method} after"],
                    ["image", "image", "signed", "signed", "signed"],
                    "What the attack changes",
                ),
            )
        )
    paragraphs = [
        f"Accuracy on {result.examples:,} inputs: {fmt.pct(result.accuracy_before)} before, "
        f"{fmt.pct(result.accuracy_after)} after {result.attack} at eps = {result.eps:g}."
    ]
    return Section(
        name, f"Explaining the attack ({result.dataset})", paragraphs=paragraphs, tables=[table], figures=figures
    )


def _attack_explanations_summary(result: AttackExplanationResult) -> list[str]:
    return [
        f"accuracy {fmt.pct(result.accuracy_before)} -> {fmt.pct(result.accuracy_after)} under {result.attack_name} "
        f"at eps {result.eps:g}"
    ]


register_view(AttackExplanationResult, order=43, section=_attack_explanations, summary=_attack_explanations_summary)
register_view(RobustVsNaturalResult, order=44, section=_robust_vs_natural, summary=_robust_vs_natural_summary)

# the recipe study's views live beside its result; importing them here registers them with the rest
from trustlab.studies import generalisation_views  # noqa: E402, F401
