"""How fairness results appear: the report section, CLI summary lines and the scorecard's fairness row."""

from __future__ import annotations

from trustlab.core import format as fmt
from trustlab.core.views import Figure, Score, Section, Table, register_view
from trustlab.fairness.figures import reliability_figure, roc_figure, selection_rate_figure, tradeoff_figure
from trustlab.fairness.metrics import PAIR_METRICS
from trustlab.fairness.mitigation import METHODS, MitigationResult
from trustlab.fairness.table import FOUR_FIFTHS, METRIC_NAMES, Estimate, FairnessResult


def number(est: Estimate | None, digits: int = 3) -> str:
    """An estimate as ``value (low to high)``, unitless (``n/a`` when absent)."""
    if est is None:
        return "n/a"
    return f"{fmt.number(est.value, digits)} ({fmt.number(est.low, digits)} to {fmt.number(est.high, digits)})"


def share(est: Estimate | None) -> str:
    """An estimate of a share as ``value% (low% to high%)`` (``n/a`` when absent)."""
    if est is None:
        return "n/a"
    return f"{fmt.pct(est.value)} ({fmt.pct_interval(est.interval)})"


def verdict(result: FairnessResult) -> str:
    """One plain sentence on disparate impact: the worst group's selection rate against the privileged one's."""
    worst = result.worst("disparate_impact")
    rates = {row.group: row.selection_rate for row in result.groups}
    ratio = result.four_fifths_ratio
    side = "at or above" if result.passes_four_fifths else "below"
    return (
        f"{worst.group} is selected (predicted positive) at {fmt.pct(rates[worst.group].value)} against "
        f"{fmt.pct(rates[result.privileged].value)} for {result.privileged}: the lower rate is "
        f"{fmt.number(ratio.value, 3)} of the higher ({fmt.number(ratio.low, 3)} to {fmt.number(ratio.high, 3)}, "
        f"{100 * result.level:.0f}% interval), {side} the four-fifths line of {FOUR_FIFTHS:g}."
    )


def _section(name: str, result: FairnessResult) -> Section:
    level = f"{100 * result.level:.0f}% CI"
    group_rows = [
        [
            row.group,
            f"{row.size:,}",
            f"{row.positives:,}",
            share(row.selection_rate),
            share(row.tpr),
            share(row.fpr),
            number(row.ece),
            ", ".join(
                note for note, on in (("privileged", row.group == result.privileged), ("small", row.small)) if on
            ),
        ]
        for row in result.groups
    ]
    pair_rows = [[row.group, *(number(row.metric(m)) for m in PAIR_METRICS)] for row in result.pairs]
    privileged_how = "the largest selection rate" if result.privileged_rule != "chosen" else "chosen by the user"
    paragraphs = [
        verdict(result),
        f"Groups by {result.group_label}; the privileged group, {result.privileged}, is {privileged_how}. "
        "Differences are unprivileged minus privileged and disparate impact is unprivileged over privileged "
        "(AIF360's conventions): below 0 (or below 1) the unprivileged group is worse off. Zemel et al.'s "
        f"discrimination is the absolute statistical parity difference: {number(result.discrimination)} for the "
        f"worst group. Intervals: percentile bootstrap over {result.resamples:,} resamples of the "
        f"{result.examples:,} examples (seed {result.seed}).",
        *result.warnings,
    ]
    facts = [
        ("model", result.model),
        ("decision", "given predictions" if result.threshold is None else f"score >= {result.threshold:g}"),
        (f"accuracy ({level})", share(result.accuracy)),
        (f"equalised odds difference, all groups ({level})", number(result.equalized_odds_all_groups)),
        ("time", fmt.seconds(result.seconds)),
    ]
    if result.consistency is not None:
        own = "each point counted as its own neighbour (as AIF360)" if result.include_self else "itself excluded"
        facts.insert(
            3,
            (
                f"consistency, k = {result.neighbours} ({level})",
                f"{number(result.consistency)}; standardised features, {own}",
            ),
        )
    ece = "" if result.threshold is None else f"; ECE over {result.bins} equal-width bins of the score"
    figures = [
        Figure(
            f"{name}-selection",
            f"Selection rate per group ({result.group_label}) with {level}; dashed: the four-fifths line.",
            selection_rate_figure(result),
        )
    ]
    if result.curves is not None:
        figures += [
            Figure(
                f"{name}-roc",
                f"ROC curve of the score per group ({result.group_label}), with its AUC; dots: each group's "
                "decisions. A lower curve: the score ranks that group's examples worse, and no threshold "
                "gives it the other groups' error rates.",
                roc_figure(result),
            ),
            Figure(
                f"{name}-reliability",
                f"Reliability per group ({result.group_label}): observed positive rate against mean score in "
                f"each of {result.bins} equal-width score bins (larger dots: more examples), with each group's "
                "ECE. Off the diagonal, the score means something else for that group.",
                reliability_figure(result),
            ),
        ]
    return Section(
        name,
        f"Fairness by {result.group_label} ({result.dataset})",
        paragraphs=paragraphs,
        facts=facts,
        tables=[
            Table(
                ["group", "size", "positives", "selection rate", "TPR", "FPR", "ECE", ""],
                group_rows,
                f"Per group, each figure with its {level}{ece}",
                foldable=False,
            ),
            Table(
                ["group", *(METRIC_NAMES[m] for m in PAIR_METRICS)],
                pair_rows,
                f"Metrics of each group against {result.privileged}, with {level}",
                foldable=False,
            ),
        ],
        figures=figures,
    )


def _summary(result: FairnessResult) -> list[str]:
    worst = result.worst("statistical_parity_difference")
    return [
        f"fairness by {result.group_label} ({result.dataset}): " + verdict(result),
        f"worst statistical parity difference {number(worst.statistical_parity_difference)} ({worst.group}), "
        f"equalised odds difference {number(result.equalized_odds_all_groups)}, "
        f"accuracy {share(result.accuracy)}",
        *result.warnings,
    ]


def _scores(result: FairnessResult) -> list[Score]:
    ratio = result.four_fifths_ratio
    odds = result.equalized_odds_all_groups
    return [
        Score(
            "fairness",
            "fairness.disparate_impact",
            f"disparate impact by {result.group_label} (lower selection rate / higher)",
            ratio.value,
            "ratio",
            True,
            interval=ratio.interval,
            sentence=verdict(result),
        ),
        Score(
            "fairness",
            "fairness.equalized_odds_difference",
            f"equalised odds difference by {result.group_label}",
            odds.value,
            "rate difference",
            False,
            interval=odds.interval,
            sentence=(
                f"Between the groups, true positive rates or false positive rates differ by up to "
                f"{fmt.pct(odds.value)} (0 when every group has the same error rates)."
            ),
        ),
    ]


register_view(FairnessResult, order=50, section=_section, summary=_summary, scores=_scores)


def _mitigation_verdict(result: MitigationResult) -> str:
    base, best = result.row("baseline"), result.best
    start = (
        f"The baseline ({result.model}) has accuracy {share(base.accuracy)} and disparate impact "
        f"{number(base.disparate_impact)} by {result.group_label}."
    )
    if best is None:
        return f"{start} No method tried reaches the four-fifths line (0.8) on the test split."
    if best.method == "baseline":
        return f"{start} It already passes the four-fifths line."
    return (
        f"{start} The most accurate method that passes the four-fifths line is {best.method}: disparate impact "
        f"{number(best.disparate_impact)} for {result.accuracy_cost(best.method):.2f} points of accuracy."
    )


def _mitigation_section(name: str, result: MitigationResult) -> Section:
    level = f"{100 * result.level:.0f}% CI"
    rows = [
        [
            row.method,
            row.stage,
            share(row.accuracy),
            f"{result.accuracy_cost(row.method):+.2f}" if row.method != "baseline" else "",
            number(row.disparate_impact),
            number(row.statistical_parity_difference),
            number(row.equal_opportunity_difference),
            number(row.equalized_odds_difference),
            fmt.seconds(row.seconds),
            row.change,
        ]
        for row in result.rows
    ]
    methods = "; ".join(f"{m}: {METHODS[m][1]}" for m in (r.method for r in result.rows))
    return Section(
        name,
        f"Fairness mitigations by {result.group_label} ({result.dataset})",
        paragraphs=[
            _mitigation_verdict(result),
            f"Each method is fitted on the {result.train_examples:,} training examples and measured on the "
            f"{result.test_examples:,} test examples against the same privileged group, {result.privileged}. "
            f"Disparate impact is the lower selection rate over the higher (at most 1); differences are the worst "
            f"unprivileged group minus the privileged one. Intervals: percentile bootstrap over "
            f"{result.resamples:,} resamples of the test examples (seed {result.seed}). Methods: {methods}.",
        ],
        facts=[("model", result.model), ("time", fmt.seconds(result.seconds))],
        tables=[
            Table(
                [
                    "method",
                    "stage",
                    "accuracy",
                    "accuracy lost (points)",
                    "disparate impact",
                    "statistical parity difference",
                    "equal opportunity difference",
                    "equalised odds difference",
                    "time",
                    "what changed",
                ],  # fmt: skip
                rows,
                f"Every method on the test split, each figure with its {level}",
                foldable=False,
            )
        ],
        figures=[
            Figure(
                f"{name}-tradeoff",
                f"Accuracy against disparate impact for every method, with {level} on both axes; dashed: the "
                "four-fifths line. Up and to the right is better.",
                tradeoff_figure(result),
            )
        ],
    )


def _mitigation_summary(result: MitigationResult) -> list[str]:
    lines = [f"mitigations by {result.group_label} ({result.dataset}), {result.model}:"]
    for row in result.rows:
        lines.append(
            f"  {row.method:<24} accuracy {share(row.accuracy)}  disparate impact {number(row.disparate_impact)}"
        )
    lines.append(_mitigation_verdict(result))
    return lines


register_view(MitigationResult, order=51, section=_mitigation_section, summary=_mitigation_summary)
