"""How the reliability alarm's result appears: report section, CLI summary lines, scorecard scores."""

from __future__ import annotations

from markupsafe import Markup

from trustlab.core import format as fmt
from trustlab.core.views import Figure, Score, Section, Table, register_view
from trustlab.ood import figures
from trustlab.ood.evaluate import AlarmResult

RATE_METRICS = ("fpr_ood_accepted_at_95_id", "fpr_id_rejected_at_95_ood", "detection_rate")


def _matrix(result: AlarmResult, metric: str, caption: str) -> Table:
    def cell(value: float) -> str:
        return fmt.pct(value) if metric in RATE_METRICS else fmt.number(value, 4)

    rows = [[d] + [cell(getattr(result.metrics[d][s], metric)) for s in result.sets] for d in result.detectors]
    return Table(["detector", *result.sets], rows, caption)


def _family_table(result: AlarmResult) -> Table:
    """Detectors ranked by their worst AUROC over the OOD families, with each family's worst AUROC."""
    families = result.family_names
    rows = []
    for d in result.ranking():
        by_family = result.family_auroc(d)
        rows.append(
            [d, fmt.number(result.worst_auroc(d), 4), result.weakest_family(d)]
            + [fmt.number(by_family[f], 4) for f in families]
        )
    return Table(
        ["detector", "worst AUROC", "weakest family", *families],
        rows,
        "Detectors ranked by their worst case: the lowest AUROC over every OOD family (per family: its worst set)",
        foldable=False,
    )


def _alarm(name: str, result: AlarmResult) -> Section:
    focus = result.focus
    best = result.best()
    best_metrics = result.metrics[best][focus]
    chosen = result.most_reliable()
    paragraphs = [
        Markup(
            "Detectors learn the training data ({}); each is thresholded at a target false-alarm rate "
            "alpha = {:g} on {:,} held-out in-distribution inputs ({}), with the finite-sample conformal "
            "correction, and its realised false-alarm rate is measured on {:,} other held-out inputs. "
            "Scores: higher = more out-of-distribution."
        ).format(
            result.train_dataset,
            result.alpha,
            result.calibration_examples,
            result.dataset,
            result.evaluation_examples,
        ),
        Markup(
            "Best worst case: <b>{}</b>, AUROC at least {} on every OOD set; its weakest family is <b>{}</b>. "
            "Choose a detector by its worst case when the kind of out-of-distribution input is not known in "
            "advance: the best on one set ({}: {}, AUROC {}) can fail on another."
        ).format(
            chosen,
            fmt.number(result.worst_auroc(chosen), 4),
            result.weakest_family(chosen),
            focus,
            best,
            fmt.number(best_metrics.auroc, 4),
        ),  # fmt: skip
    ]
    paragraphs += [f"Note: {note}." if not note.endswith(".") else f"Note: {note}" for note in result.notes]
    calibration = Table(
        ["detector", "threshold", "realised false alarms (95% CI)", "fit time", "scoring (ms / 1,000 inputs)", "fit"],
        [
            [
                d,
                f"{result.thresholds[d]:.5g}",
                f"{fmt.pct(result.false_alarm_rate[d])} ({fmt.pct_interval(result.false_alarm_interval[d])})",
                fmt.seconds(result.fit_seconds[d]),
                f"{result.score_ms_per_1000[d]:.0f}",
                result.fit_notes[d],
            ]
            for d in result.detectors
        ],
        f"Calibration at alpha = {result.alpha:g}: threshold and false-alarm rate on the separate split",
    )
    full = Table(
        [
            "detector",
            "AUROC",
            "AUPR-in",
            "AUPR-out",
            "OOD accepted at 95% ID accepted",
            "ID rejected at 95% OOD caught",
            "detected at threshold",
        ],
        [
            [d]
            + [fmt.number(getattr(result.metrics[d][focus], m), 4) for m in ("auroc", "aupr_in", "aupr_out")]
            + [fmt.pct(getattr(result.metrics[d][focus], m)) for m in RATE_METRICS]
            for d in result.detectors
        ],
        f"All metrics on {focus}",
    )
    sets = Table(
        ["OOD set", "family", "inputs", "what it is"],
        [[s, result.family(s), f"{result.set_sizes[s]:,}", result.set_descriptions[s]] for s in result.sets],
        "Out-of-distribution sets",
    )
    auroc_rows = [[result.metrics[d][s].auroc for s in result.sets] for d in result.detectors]
    figs = [
        Figure(
            f"{name}-auroc",
            "AUROC of every detector on every OOD set.",
            figures.auroc_heatmap_figure(result.detectors, result.sets, auroc_rows),
        ),
        Figure(
            f"{name}-histograms",
            "Score distributions with the calibrated threshold.",
            figures.score_histograms_figure(result.histograms, result.score_labels, result.thresholds, result.alpha),
        ),
        Figure(
            f"{name}-roc",
            "ROC curves (detection rate against false-alarm rate).",
            figures.roc_figure(result.roc_grid, result.roc),
        ),
    ]
    tables = [
        _family_table(result),
        calibration,
        _matrix(result, "auroc", "AUROC (1 = perfect, 0.5 = chance)"),
        _matrix(result, "fpr_ood_accepted_at_95_id", "OOD inputs accepted when 95% of in-distribution is accepted"),
        _matrix(result, "detection_rate", f"OOD inputs raising the alarm at the alpha = {result.alpha:g} threshold"),
        full,
        sets,
    ]
    return Section(name, f"Reliability alarm ({result.dataset})", paragraphs=paragraphs, tables=tables, figures=figs)


def _alarm_summary(result: AlarmResult) -> list[str]:
    lines = []
    for d in result.detectors:
        m = result.metrics[d][result.focus]
        lines.append(
            f"{d:<16} {result.focus} AUROC {fmt.number(m.auroc, 4)}, OOD accepted at 95% ID "
            f"{fmt.pct(m.fpr_ood_accepted_at_95_id)}; false alarms {fmt.pct(result.false_alarm_rate[d])} "
            f"(target {fmt.pct(result.alpha)})"
        )
    return lines


def _alarm_scores(result: AlarmResult) -> list[Score]:
    chosen = result.most_reliable()
    weakest = result.weakest_set(chosen)
    auroc = result.metrics[chosen][weakest].auroc
    detected = result.metrics[chosen][weakest].detection_rate
    family = result.family(weakest)
    where = weakest if family == weakest else f"{weakest} (family {family})"
    return [
        Score(
            "OOD alarm", "alarm.worst_auroc", f"worst-set AUROC ({chosen})", auroc, "AUROC", True,
            sentence=(
                f"the {chosen} alarm tells every tested OOD set from in-distribution inputs with AUROC at least "
                f"{fmt.number(auroc, 3)}; its weakest set is {where}, of which it flags {fmt.pct(detected)}."
            ),
        ),
        Score(
            "OOD alarm", "alarm.false_alarms", f"realised false alarms ({chosen}, target {fmt.pct(result.alpha)})",
            result.false_alarm_rate[chosen], "share of in-distribution inputs", False,
            tuple(result.false_alarm_interval[chosen]),
            sentence=(
                f"{fmt.pct(result.false_alarm_rate[chosen])} of held-out in-distribution inputs raise the alarm "
                f"(target {fmt.pct(result.alpha)})."
            ),
        ),
    ]  # fmt: skip


register_view(AlarmResult, order=30, section=_alarm, summary=_alarm_summary, scores=_alarm_scores)
