"""How explanation results appear: tabular LIME/SHAP, attribution galleries and feature
visualisation (report sections and CLI summary lines)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from markupsafe import Markup

from trustlab.core import format as fmt
from trustlab.core.plots import image_grid_figure, plt, show_image, to_png
from trustlab.core.views import Figure, Score, Section, Table, register_view
from trustlab.explain.attributions import METHODS
from trustlab.explain.featurevis import FeatureVisResult
from trustlab.explain.figures import (
    correlation_heatmap_figure,
    global_importance_figure,
    lime_shap_rows_figure,
    shap_summary_figure,
)
from trustlab.explain.gallery import AttributionGalleryResult
from trustlab.explain.sanity import ExplanationSanityResult
from trustlab.explain.tabular import TabularExplanationResult


def _top(weights: Sequence[float], names: Sequence[str], k: int) -> str:
    w = np.abs(np.asarray(weights, dtype=float))
    order = np.argsort(-w, kind="stable")[:k]
    return ", ".join(names[i] for i in order)


def _corr(value: float) -> str:
    return "n/a" if value != value else f"{value:.2f}"


def _tabular_explanations(name: str, result: TabularExplanationResult) -> Section:
    names = result.feature_names
    k = result.top_k
    importance = result.global_importance
    ranked = result.importance_order
    with_outcome = result.outcome_correlations
    strongest = result.strongest_correlate
    mean = result.agreement_mean
    positive = result.class_names[1]
    paragraphs = [
        Markup(
            "A {} model trained on {:,} {} examples reaches accuracy <b>{:.1%}</b> and ROC AUC <b>{:.3f}</b> on "
            "{:,} {}/{} examples. Over that split the features that move the predicted {} most (mean |SHAP|) are "
            "<b>{}</b>; the strongest linear correlate of the outcome in training is <b>{}</b> (r = {})."
        ).format(
            result.model_description,
            result.train_examples,
            result.dataset,
            result.accuracy,
            result.roc_auc,
            result.test_examples,
            result.dataset,
            result.split,
            result.shap_output,
            ", ".join(f"{names[i]} ({importance[i]:.3f})" for i in ranked[:k]),
            names[strongest] if strongest is not None else "n/a",
            _corr(with_outcome[strongest]) if strongest is not None else "n/a",
        ),
        Markup(
            "For {} test rows, LIME (local linear fit to P({}), quartile-discretised features) and SHAP ({}) rank "
            "the features by magnitude with mean Spearman correlation <b>{}</b> and Kendall tau <b>{}</b>; on "
            "average {:.0%} of their top {} features coincide. The two use different units, so only ranks are "
            "compared; a low LIME R<sup>2</sup> means the local linear fit, and so its weights, are unreliable."
        ).format(
            len(result.rows),
            positive,
            result.explainers.get("shap", "SHAP"),
            _corr(mean["spearman"]),
            _corr(mean["kendall"]),
            mean["top_k_overlap"],
            k,
        ),
    ]
    quality = Table(
        ["model", "train examples", "test examples", "accuracy", "ROC AUC"],
        [
            [
                result.model_description,
                f"{result.train_examples:,}",
                f"{result.test_examples:,}",
                f"{result.accuracy:.1%}",
                f"{result.roc_auc:.3f}",
            ]
        ],
        f"Model quality on {result.dataset}/{result.split} (threshold 0.5)",
    )
    rows_table = Table(
        [
            "row (test index)",
            "true class",
            f"P({positive})",
            f"top {k} LIME",
            f"top {k} SHAP",
            "Spearman",
            "Kendall",
            f"top-{k} overlap",
            "LIME R^2",
        ],
        [
            [
                str(p),
                result.class_names[label],
                f"{prob:.3f}",
                _top(lime, names, k),
                _top(shap, names, k),
                _corr(result.agreement["spearman"][i]),
                _corr(result.agreement["kendall"][i]),
                f"{result.agreement['top_k_overlap'][i]:.0%}",
                f"{result.lime_scores[i]:.2f}",
            ]
            for i, (p, label, prob, lime, shap) in enumerate(
                zip(
                    result.rows,
                    result.row_labels,
                    result.row_probabilities,
                    result.lime_weights,
                    result.shap_values,
                )
            )
        ],
        "Per-row top features by |weight| and rank agreement of LIME and SHAP",
    )
    global_table = Table(
        ["rank", "feature", f"mean |SHAP| ({result.shap_output})", "correlation with outcome (train)"],
        [[str(r + 1), names[i], f"{importance[i]:.4f}", _corr(with_outcome[i])] for r, i in enumerate(ranked)],
        "Global importance over the test split",
    )
    facts = [
        ("LIME", f"{result.explainers.get('lime', 'LIME')}: {fmt.settings(result.settings.get('lime', {}))}"),
        ("SHAP", f"{result.explainers.get('shap', 'SHAP')}: {fmt.settings(result.settings.get('shap', {}))}"),
        ("SHAP expected value", f"{result.expected_value:.4f} ({result.shap_output})"),
        ("seed", str(result.seed)),
        ("time", fmt.seconds(result.seconds)),
    ]
    labels = [
        f"test row {p} ({result.class_names[label]}, P = {prob:.2f})"
        for p, label, prob in zip(result.rows, result.row_labels, result.row_probabilities)
    ]
    lime_unit = str(result.settings.get("lime", {}).get("output", f"probability of {positive}"))
    figs = [
        Figure(
            f"{name}-correlations",
            "Pearson correlation between the features and with the outcome (training split).",
            correlation_heatmap_figure(result.correlation_names, result.correlations),
        ),
        Figure(
            f"{name}-importance",
            "Global feature importance: mean absolute SHAP value over the test split.",
            global_importance_figure(names, result.global_importance, result.shap_output),
        ),
        Figure(
            f"{name}-summary",
            "SHAP summary: each dot is one test example; colour is the feature value's quantile.",
            shap_summary_figure(names, result.summary_shap, result.summary_features, result.shap_output),
        ),
        Figure(
            f"{name}-rows",
            "LIME weights and SHAP values for each explained test row (red: towards the positive class).",
            lime_shap_rows_figure(
                names, result.lime_weights, result.shap_values, labels, lime_unit, result.shap_output
            ),
        ),
    ]
    return Section(
        name,
        f"Tabular explanations: LIME and SHAP ({result.dataset}, {result.model})",
        paragraphs=paragraphs,
        facts=facts,
        tables=[quality, rows_table, global_table],
        figures=figs,
    )


def _attributions(name: str, result: AttributionGalleryResult) -> Section:
    kinds = ["image"] + ["signed" if METHODS[m].signed else "unsigned" for m in result.methods]
    rows = [[result.images[i]] + [result.maps[m][i] for m in result.methods] for i in range(len(result.images))]
    labels = [
        f"true {result.class_names[t]}, pred {result.class_names[p]}" for t, p in zip(result.labels, result.predictions)
    ]
    table = Table(
        ["method", "time for all images", "Gini (sparsity, higher = more compact)", "deletion AUC (lower = faithful)"],
        [
            [m, f"{result.seconds[m]:.2f} s", f"{result.gini[m]:.3f}", f"{result.deletion_auc[m]:.3f}"]
            for m in result.methods
        ],
        "Methods on the same images, towards each prediction",
    )
    figure = Figure(
        f"{name}-gallery",
        "Attribution maps (channels summed); red supports the predicted class, blue opposes it.",
        image_grid_figure(rows, labels, ["input", *result.methods], kinds, "What the model looks at"),
    )
    return Section(name, f"Explanations ({result.dataset})", tables=[table], figures=[figure])


def _feature_visualisation(name: str, result: FeatureVisResult) -> Section:
    titles = [f"{result.class_names[c]}: p={p:.3f}" for c, p in zip(result.classes, result.probabilities)]
    fig, axes = plt.subplots(1, len(titles), figsize=(1.2 * len(titles) + 0.4, 1.6), squeeze=False)
    for ax, image, title in zip(axes[0], result.images, titles):
        show_image(ax, image, title=title)
    fig.suptitle("Activation maximisation: the input each class likes best (pixel values 0-1)", fontsize=9)
    fig.tight_layout()
    low = min(result.probabilities)
    paragraphs = [
        f"One image per class, optimised for {result.settings['steps']:g} steps with jitter, L2, total "
        f"variation and blur. The lowest probability the model gives an image for its own class: {low:.3f}."
    ]
    return Section(
        name,
        "Feature visualisation",
        paragraphs=paragraphs,
        facts=[("time", fmt.seconds(result.seconds))],
        figures=[Figure(f"{name}-classes", "Optimised images and the model's probability.", to_png(fig))],
    )


def _tabular_summary(result: TabularExplanationResult) -> list[str]:
    top = result.importance_order[:3]
    return [
        f"{result.model_description}: accuracy {fmt.pct(result.accuracy)}, ROC AUC {fmt.number(result.roc_auc)}",
        "most important (mean |SHAP|): "
        + ", ".join(f"{result.feature_names[i]} {result.global_importance[i]:.2f}" for i in top),
        f"LIME vs SHAP rank agreement (mean Spearman): {fmt.number(result.agreement_mean['spearman'], 2)}",
    ]


def _attributions_summary(result: AttributionGalleryResult) -> list[str]:
    return [
        f"{m}: {result.seconds[m]:.2f} s, Gini {fmt.number(result.gini[m])}, "
        f"deletion AUC {fmt.number(result.deletion_auc[m])}"
        for m in result.methods
    ]


def _feature_visualisation_summary(result: FeatureVisResult) -> list[str]:
    return [
        "feature visualisation: "
        + ", ".join(f"{result.class_names[c]}: {p:.3f}" for c, p in zip(result.classes, result.probabilities))
    ]


register_view(TabularExplanationResult, order=40, section=_tabular_explanations, summary=_tabular_summary)
register_view(AttributionGalleryResult, order=41, section=_attributions, summary=_attributions_summary)
register_view(FeatureVisResult, order=42, section=_feature_visualisation, summary=_feature_visualisation_summary)


def _sanity(name: str, result: ExplanationSanityResult) -> Section:
    paragraphs = [
        Markup(
            "Randomisation check (Adebayo et al.) on {:,} images: the model's layers are re-initialised from the "
            "output down and the {} maps recomputed. Once every layer is random the maps correlate "
            "<b>{}</b> (mean Spearman of |maps|, 95% CI {} to {}) with the originals: near 0, they depend on what "
            "the model learned; near 1, they would look the same for any weights."
        ).format(
            result.examples,
            result.method,
            fmt.number(result.randomised_similarity),
            fmt.number(result.randomised_interval[0]),
            fmt.number(result.randomised_interval[1]),
        ),
        Markup(
            "Faithfulness: deleting pixels in the order of the {} map gives deletion AUC <b>{}</b> against {} for "
            "random maps (ratio {}; below 1 the map finds what the model needs sooner than chance)."
        ).format(
            result.method,
            fmt.number(result.deletion_auc),
            fmt.number(result.random_deletion_auc),
            fmt.number(result.deletion_ratio, 2),
        ),
    ]
    table = Table(
        ["layers randomised (output first)", "mean rank correlation with the original maps"],
        [[", ".join(result.layers[: i + 1]), fmt.number(v)] for i, v in enumerate(result.similarity)],
        "Cascading randomisation",
    )
    facts = [("method", result.method), ("time", fmt.seconds(result.seconds))]
    return Section(name, f"Explanation sanity ({result.dataset})", paragraphs=paragraphs, facts=facts, tables=[table])


def _sanity_summary(result: ExplanationSanityResult) -> list[str]:
    return [
        f"{result.method}: rank correlation with a randomised model's maps {fmt.number(result.randomised_similarity)}, "
        f"deletion AUC {fmt.number(result.deletion_auc)} (random maps {fmt.number(result.random_deletion_auc)})"
    ]


def _sanity_scores(result: ExplanationSanityResult) -> list[Score]:
    return [
        Score(
            "explanation sanity", "explanations.randomised_similarity",
            f"{result.method} maps vs a randomised model", result.randomised_similarity,
            "mean Spearman correlation", False, tuple(result.randomised_interval),
            sentence=(
                f"{result.method} maps of the trained model and of one with random weights correlate "
                f"{fmt.number(result.randomised_similarity, 2)} (0: the maps reflect what was learned)."
            ),
        ),
        Score(
            "explanation sanity", "explanations.deletion_ratio", f"{result.method} deletion AUC / random maps'",
            result.deletion_ratio, "ratio", False,
            sentence=(
                f"removing the pixels {result.method} ranks first lowers the model's confidence "
                f"{'faster' if result.deletion_ratio < 1 else 'no faster'} than removing random pixels "
                f"(deletion AUC ratio {fmt.number(result.deletion_ratio, 2)})."
            ),
        ),
    ]  # fmt: skip


register_view(ExplanationSanityResult, order=45, section=_sanity, summary=_sanity_summary, scores=_sanity_scores)
