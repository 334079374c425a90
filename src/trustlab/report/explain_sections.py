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
