"""Report section and figures for tabular explanations (correlations, LIME, SHAP).

Rendered from a :class:`TabularExplanationResult` only. LIME weights are in probability units
and SHAP values in log-odds, so the two are drawn on separate axes and compared by rank.
"""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
from markupsafe import Markup

from trustlab.explain.tabular import TabularExplanationResult
from trustlab.report import figures as base_figures
from trustlab.report.sections import Figure, Section, Table, section

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
    return base_figures.to_png(fig)


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
    return base_figures.to_png(fig)


def lime_shap_patients_figure(
    feature_names: Sequence[str],
    lime_weights: Sequence[Sequence[float]],
    shap_values: Sequence[Sequence[float]],
    labels: Sequence[str],
    lime_output: str,
    shap_output: str,
) -> bytes:
    """For each patient (row), LIME weights (left) and SHAP values (right) as horizontal bars in
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
    fig.suptitle("Single-patient explanations: LIME and SHAP side by side")
    fig.tight_layout(rect=(0, 0, 1, 0.98))
    return base_figures.to_png(fig)


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
    return base_figures.to_png(fig)


def _top(weights: Sequence[float], names: Sequence[str], k: int) -> str:
    w = np.abs(np.asarray(weights, dtype=float))
    order = np.argsort(-w, kind="stable")[:k]
    return ", ".join(names[i] for i in order)


def _corr(value: float) -> str:
    return "n/a" if value != value else f"{value:.2f}"


@section("tabular_explanations", order=40)
def _tabular_explanations(name: str, result: TabularExplanationResult) -> Section:
    names = result.feature_names
    k = result.top_k
    importance = np.asarray(result.global_importance, dtype=float)
    ranked = np.argsort(-importance, kind="stable")
    outcome = len(result.correlation_names) - 1
    with_outcome = [result.correlations[i][outcome] for i in range(len(names))]
    finite = np.isfinite(with_outcome)
    strongest = int(np.nanargmax(np.where(finite, np.abs(with_outcome), np.nan))) if finite.any() else None
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
            "For {} patients, LIME (local linear fit to P({}), quartile-discretised features) and SHAP ({}) rank "
            "the features by magnitude with mean Spearman correlation <b>{}</b> and Kendall tau <b>{}</b>; on "
            "average {:.0%} of their top {} features coincide. The two use different units, so only ranks are "
            "compared; a low LIME R<sup>2</sup> means the local linear fit, and so its weights, are unreliable."
        ).format(
            len(result.patients),
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
    patients = Table(
        [
            "patient (test index)",
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
                    result.patients,
                    result.patient_labels,
                    result.patient_probabilities,
                    result.lime_weights,
                    result.shap_values,
                )
            )
        ],
        "Per-patient top features by |weight| and rank agreement of LIME and SHAP",
    )
    global_table = Table(
        ["rank", "feature", f"mean |SHAP| ({result.shap_output})", "correlation with outcome (train)"],
        [[str(r + 1), names[i], f"{importance[i]:.4f}", _corr(with_outcome[i])] for r, i in enumerate(ranked)],
        "Global importance over the test split",
    )
    facts = [
        ("LIME", f"{result.explainers.get('lime', 'LIME')}: {_settings(result.settings.get('lime', {}))}"),
        ("SHAP", f"{result.explainers.get('shap', 'SHAP')}: {_settings(result.settings.get('shap', {}))}"),
        ("SHAP expected value", f"{result.expected_value:.4f} ({result.shap_output})"),
        ("seed", str(result.seed)),
        ("time", f"{result.seconds:.1f} s"),
    ]
    labels = [
        f"patient {p} ({result.class_names[label]}, P = {prob:.2f})"
        for p, label, prob in zip(result.patients, result.patient_labels, result.patient_probabilities)
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
            f"{name}-patients",
            "LIME weights and SHAP values for each explained patient (red: towards the positive class).",
            lime_shap_patients_figure(
                names, result.lime_weights, result.shap_values, labels, lime_unit, result.shap_output
            ),
        ),
    ]
    return Section(
        name,
        f"Tabular explanations: LIME and SHAP ({result.dataset}, {result.model})",
        40,
        paragraphs=paragraphs,
        facts=facts,
        tables=[quality, patients, global_table],
        figures=figs,
    )


def _settings(settings: dict) -> str:
    return ", ".join(
        f"{key}={value:g}" if isinstance(value, float) else f"{key}={value}" for key, value in settings.items()
    )


# ============================================================== image explanations ==========
from trustlab.explain.adversarial import AttackExplanationResult  # noqa: E402
from trustlab.explain.featurevis import FeatureVisResult  # noqa: E402
from trustlab.explain.gallery import AttributionGalleryResult  # noqa: E402
from trustlab.studies.robust_vs_natural import RobustVsNaturalResult  # noqa: E402


def _show(ax, image, *, kind: str = "image", title: str = "") -> None:
    """Draw an input ("image": grey, 0-1), a signed map ("signed": red-blue, symmetric about 0) or
    a non-negative map ("unsigned": 0 to its own maximum)."""
    values = np.asarray(image, dtype=float)
    if kind == "signed":
        bound = float(np.abs(values).max()) or 1.0
        ax.imshow(values, cmap="RdBu_r", vmin=-bound, vmax=bound)
    elif kind == "unsigned":
        ax.imshow(values, cmap="Reds", vmin=0.0, vmax=float(values.max()) or 1.0)
    else:
        ax.imshow(values, cmap="gray", vmin=0.0, vmax=max(1.0, float(values.max())))
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize=7)


def image_grid_figure(
    rows: Sequence[Sequence],
    row_labels: Sequence[str],
    column_labels: Sequence[str],
    kinds: Sequence[str],
    title: str,
) -> bytes:
    """Rows of images; column j drawn as ``kinds[j]`` (see ``_show``): signed maps in red (pushes
    towards the class) and blue (against it), each map scaled to its own largest |value|."""
    n_rows, n_cols = len(rows), len(column_labels)
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(1.15 * n_cols + 0.6, 1.15 * n_rows + 0.6), squeeze=False)
    for i, row in enumerate(rows):
        for j, image in enumerate(row):
            _show(axes[i][j], image, kind=kinds[j], title=column_labels[j] if i == 0 else "")
        axes[i][0].set_ylabel(row_labels[i], fontsize=7)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return base_figures.to_png(fig)


@section("attributions", order=41)
def _attributions(name: str, result: AttributionGalleryResult) -> Section:
    kinds = ["image"] + ["unsigned" if m in ("saliency_abs", "gradcam") else "signed" for m in result.methods]
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
    return Section(name, f"Explanations ({result.dataset})", 41, tables=[table], figures=[figure])


@section("feature_visualisation", order=42)
def _feature_visualisation(name: str, result: FeatureVisResult) -> Section:
    titles = [f"{result.class_names[c]}: p={p:.3f}" for c, p in zip(result.classes, result.probabilities)]
    fig, axes = plt.subplots(1, len(titles), figsize=(1.2 * len(titles) + 0.4, 1.6), squeeze=False)
    for ax, image, title in zip(axes[0], result.images, titles):
        _show(ax, image, title=title)
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
        42,
        paragraphs=paragraphs,
        facts=[("time", f"{result.seconds:.1f} s")],
        figures=[Figure(f"{name}-classes", "Optimised images and the model's probability.", base_figures.to_png(fig))],
    )


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}%"


@section("attack_explanations", order=43)
def _attack_explanations(name: str, result: AttackExplanationResult) -> Section:
    names = result.class_names
    table = Table(
        ["class", "recall before", "recall after", "change (points)"],
        [
            [c, _pct(b), _pct(a), "n/a" if a is None or b is None else f"{100 * (a - b):+.1f}"]
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
        f"Accuracy on {result.examples:,} inputs: {_pct(result.accuracy_before)} before, "
        f"{_pct(result.accuracy_after)} after {result.attack} at eps = {result.eps:g}."
    ]
    return Section(
        name, f"Explaining the attack ({result.dataset})", 43, paragraphs=paragraphs, tables=[table], figures=figures
    )


@section("robust_vs_natural", order=44)
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
    accuracy = ["accuracy", *[_pct(result.accuracy[m][k]) for m, k in cells]]
    table = Table(header, [accuracy, *rows], "Mean per cell with bootstrap 95% intervals")
    fig = plt.figure(figsize=(9, 5))
    outer = fig.add_gridspec(2, 2, wspace=0.08, hspace=0.25)
    for i, model in enumerate(result.models):
        for j, kind in enumerate(result.inputs):
            maps = result.gallery_maps[model][kind]
            inner = outer[i, j].subgridspec(2, max(1, len(maps)), hspace=0.05, wspace=0.05)
            for c, (image, saliency) in enumerate(zip(result.gallery_inputs[model][kind], maps)):
                _show(fig.add_subplot(inner[0, c]), image)
                _show(fig.add_subplot(inner[1, c]), saliency, kind="signed")
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
        44,
        paragraphs=paragraphs,
        facts=[("attack", result.attack), ("time", f"{result.seconds:.1f} s")],
        tables=[table],
        figures=[Figure(f"{name}-grid", "Saliency maps: 2 models x 2 kinds of input.", base_figures.to_png(fig))],
    )
