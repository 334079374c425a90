"""How the shift audit appears: its report section, CLI summary lines and the scorecard's shift row."""

from __future__ import annotations

import math

from markupsafe import Markup

from trustlab.core import format as fmt
from trustlab.core.views import Figure, Score, Section, Table, register_view
from trustlab.shift.domain import ZERO_SHOT, TransferResult, TransferRow
from trustlab.shift.figures import accuracy_figure, gallery_figure, transfer_figure
from trustlab.shift.results import ShiftResult, ShiftRow

AXIS = "distribution shift"
SCORE_KEY = "shift.accuracy_drop"


def times(value: float | None) -> str:
    """A ratio as a factor ("3.20x"); n/a when missing."""
    if fmt.missing(value):
        return "n/a"
    return "inf" if math.isinf(value) else f"{value:.2f}x"


def points(value: float | None, digits: int = 1) -> str:
    """Percentage points with ``digits`` decimals; n/a when missing."""
    return "n/a" if fmt.missing(value) else f"{value:.{digits}f}"


def points_interval(interval: tuple[float, float] | None) -> str:
    """An interval of percentage points as "low to high"."""
    return "n/a" if interval is None else f"{points(interval[0])} to {points(interval[1])}"


def _accuracy_cell(row: ShiftRow) -> str:
    return f"{fmt.pct(row.accuracy)} ({fmt.pct_interval(row.interval)})"


def table_rows(result: ShiftResult) -> list[list[str]]:
    """The table's cells, one row per set: every figure is the result's own."""
    return [
        [
            row.corruption,
            "-" if row.severity is None else str(row.severity),
            _accuracy_cell(row),
            fmt.pct(row.error),
            times(result.relative_error(row)),
            fmt.pct(row.baseline_error),
            fmt.pct(result.corruption_error(row)),
            "-" if i == 0 else fmt.pct(result.relative_corruption_error(row)),
            fmt.pct(row.ece),
            fmt.pct(row.alarm_rate),
        ]
        for i, row in enumerate(result.rows)
    ]


HEADER = [
    "set",
    "severity",
    "accuracy (95% CI)",
    "error",
    "error / clean error",
    "baseline error",
    "CE (vs baseline)",
    "relative CE",
    "ECE",
    "alarm rate",
]


def headline(result: ShiftResult) -> str:
    """The accuracy drop in one sentence (also the scorecard's)."""
    worst = result.worst
    return (
        f"Accuracy falls from {fmt.pct(result.clean.accuracy)} on clean digits to a mean of "
        f"{fmt.pct(result.mean_accuracy)} under {len(result.corrupted)} MNIST-C corruptions, a drop of "
        f"{points(result.accuracy_drop)} points (95% CI {points_interval(result.drop_interval)}); worst: "
        f"{worst.corruption} at {fmt.pct(worst.accuracy)}."
    )


def _mce_paragraph(result: ShiftResult) -> str:
    if not result.has_baseline:
        return "No baseline model was given, so there is no mean corruption error (mCE)."
    definition = (
        "CE(c) = the model's error under corruption c / the baseline's; relative CE(c) = the rise in error "
        "from clean to c / the baseline's rise (unstable where the baseline barely notices c). Below 100% the "
        "model degrades less than the baseline."
    )
    left_out = ""
    if result.mce_left_out:
        left_out += f" The mCE leaves out {', '.join(result.mce_left_out)}: the baseline misreads none of those digits."
    if result.relative_mce_left_out:
        left_out += (
            f" The relative mCE leaves out {', '.join(result.relative_mce_left_out)}: they do not raise the "
            "baseline's error."
        )
    return str(
        Markup(
            "Mean corruption error (mCE, Hendrycks &amp; Dietterich 2019, against {}): <b>{}</b> (95% CI {}); "
            "relative mCE <b>{}</b> (95% CI {}). {}{}"
        ).format(
            result.baseline,
            fmt.pct(result.mce),
            fmt.pct_interval(result.mce_interval),
            fmt.pct(result.relative_mce),
            fmt.pct_interval(result.relative_mce_interval),
            definition,
            left_out,
        )
    )


def _alarm_paragraph(result: ShiftResult) -> str:
    if not result.has_alarm:
        return "No OOD alarm was measured on these sets."
    most = result.most_alarmed
    clean, corrupted = result.clean.alarm_rate, result.mean_alarm_rate
    verdict = (
        "fires more often on corrupted digits than on clean ones"
        if corrupted > clean
        else "fires no more often on corrupted digits than on clean ones"
    )
    return (
        f"The OOD alarm ({result.alarm}, the reliability alarm's post-hoc detector, thresholded here by conformal "
        f"calibration at alpha = {result.alpha:g} on {result.calibration_examples:,} held-out clean digits) {verdict}: "
        f"{fmt.pct(clean)} of the clean digits, {fmt.pct(corrupted)} of the corrupted ones on average, most on "
        f"{most.corruption} ({fmt.pct(most.alarm_rate)}). It flags {fmt.pct(result.errors_caught)} of the "
        "digits the model misreads under corruption."
    )


def _section(name: str, result: ShiftResult) -> Section:
    paragraphs = [
        Markup("{} ").format(headline(result))
        + Markup(
            "The same {:,} digits in every set, each corruption at MNIST-C's severity (Mu &amp; Gilmer 2019)."
        ).format(result.examples),
        Markup(_mce_paragraph(result)),
        f"Calibration: expected calibration error {fmt.pct(result.clean.ece)} on clean digits and "
        f"{fmt.pct(result.mean_ece)} on average under corruption (mean confidence "
        f"{fmt.pct(result.clean.mean_confidence)} clean; ECE over {result.ece_bins} equal-width bins of the "
        "largest class probability).",
        _alarm_paragraph(result),
        "Intervals: each set's accuracy has its 95% Wilson interval; the drop, the mean corrupted accuracy and "
        f"the mCE have 95% percentile intervals from a paired bootstrap over the digits ({result.resamples:,} "
        "resamples: a digit's clean and corrupted versions are drawn together).",
    ]
    paragraphs += [f"Note: {note}." for note in result.notes]
    alarm = (
        f"{result.alarm} at alpha {result.alpha:g} ({result.calibration_examples:,} calibration digits)"
        if result.has_alarm
        else "none"
    )
    return Section(
        name,
        f"Distribution shift: MNIST-C ({result.dataset})",
        paragraphs=paragraphs,
        facts=[
            ("digits per set", f"{result.examples:,}"),
            ("corruptions", str(len(result.corrupted))),
            (
                "mean accuracy under corruption (95% CI)",
                f"{fmt.pct(result.mean_accuracy)} ({fmt.pct_interval(result.mean_accuracy_interval)})",
            ),
            ("baseline", result.baseline or "none"),
            ("alarm", alarm),
            ("seed", str(result.seed)),
            ("time", fmt.seconds(result.seconds)),
        ],  # fmt: skip
        tables=[Table(HEADER, table_rows(result), "Accuracy, errors and calibration per set", foldable=False)],
        figures=[
            Figure(f"{name}-accuracy", "Accuracy per corruption with 95% Wilson intervals.", accuracy_figure(result)),
            Figure(f"{name}-gallery", "One digit as each corruption shows it.", gallery_figure(result)),
        ],
    )


def _summary(result: ShiftResult) -> list[str]:
    lines = [headline(result)]
    if result.has_baseline:
        lines.append(
            f"mCE {fmt.pct(result.mce)} of {result.baseline}'s errors (relative mCE {fmt.pct(result.relative_mce)})"
        )
    if result.has_alarm:
        lines.append(
            f"alarm ({result.alarm}, alpha {result.alpha:g}) fires on {fmt.pct(result.clean.alarm_rate)} of clean and "
            f"{fmt.pct(result.mean_alarm_rate)} of corrupted digits; flags {fmt.pct(result.errors_caught)} of the "
            "errors under corruption"
        )
    return lines


def _scores(result: ShiftResult) -> list[Score]:
    return [
        Score(
            AXIS, SCORE_KEY, "accuracy drop under MNIST-C corruptions (clean minus mean corrupted)",
            result.accuracy_drop, "percentage points", False, tuple(result.drop_interval), headline(result),
        )
    ]  # fmt: skip


register_view(ShiftResult, order=55, section=_section, summary=_summary, scores=_scores)


# ------------------------------------------------------------------ second domain (transfer) ------

TRANSFER_HEADER = ["setting", "examples per class", "mode", "seeds", "mean accuracy (95% CI)", "accuracy per seed"]


def _shots(row: TransferRow) -> str:
    if row.mode == ZERO_SHOT:
        return "0"
    return f"all ({row.per_class:.1f} on average)" if row.shots is None else str(row.shots)


def transfer_rows(result: TransferResult) -> list[list[str]]:
    """The transfer table's cells, one row per setting: every figure is the result's own."""
    return [
        [
            ZERO_SHOT if row.mode == ZERO_SHOT else "fine-tuned",
            _shots(row),
            "-" if row.mode == ZERO_SHOT else row.mode.replace("_", " "),
            str(len(row.seeds)) if row.seeds else "-",
            f"{fmt.pct(row.accuracy)} ({fmt.pct_interval(row.interval)})",
            ", ".join(fmt.pct(a) for a in row.seed_accuracies),
        ]
        for row in result.rows
    ]


def transfer_headline(result: TransferResult) -> str:
    """One sentence: the zero-shot accuracy on the second domain and what fine-tuning adds."""
    zero, best = result.zero_shot, result.best
    text = (
        f"{result.model} (trained on {result.source}) reads {fmt.pct(zero.accuracy)} of {zero.examples:,} "
        f"upsampled 8x8 digits correctly zero-shot (95% CI {fmt.pct_interval(zero.interval)})"
    )
    if best is None:
        return text + "."
    return text + (
        f"; fine-tuned ({best.mode.replace('_', ' ')}, {_shots(best)} examples per class) "
        f"{fmt.pct(best.accuracy)} (95% CI {fmt.pct_interval(best.interval)}), {points(result.gain)} points more."
    )


def _transfer_section(name: str, result: TransferResult) -> Section:
    paragraphs = [
        transfer_headline(result),
        f"Second domain: {result.target} (scikit-learn's UCI optical digits, each 8x8 frame resized bilinearly "
        "to 20x20 and given MNIST's 4-pixel border). Fine-tuning works on a copy of the model: 'last layer' "
        "trains only its final linear layer, 'full' every weight; Adam, cosine-decayed learning rate "
        f"{result.learning_rate:g}, {result.epochs} epochs, batches of {result.batch_size}. Each seed draws the "
        "examples per class and orders the batches.",
        "Intervals: zero-shot, the 95% Wilson interval; fine-tuned, a 95% percentile bootstrap over seeds x test "
        f"digits ({result.resamples:,} resamples drawing seeds and digits with replacement).",
    ]
    paragraphs += [f"Note: {note}." for note in result.notes]
    return Section(
        name,
        f"Distribution shift: a second digit domain ({result.model})",
        paragraphs=paragraphs,
        facts=[
            ("test digits", f"{result.test_examples:,}"),
            (
                "zero-shot accuracy (95% CI)",
                f"{fmt.pct(result.zero_shot.accuracy)} ({fmt.pct_interval(result.zero_shot.interval)})",
            ),
            ("fine-tuning", f"{result.epochs} epochs, batch {result.batch_size}, lr {result.learning_rate:g}"),
            ("time", fmt.seconds(result.seconds)),
        ],  # fmt: skip
        tables=[
            Table(TRANSFER_HEADER, transfer_rows(result), "Accuracy on the second domain per setting", foldable=False)
        ],
        figures=[
            Figure(
                f"{name}-transfer",
                "Accuracy against labelled examples per class, per fine-tuning mode, with 95% intervals.",
                transfer_figure(result),
            )
        ],
    )


def _transfer_summary(result: TransferResult) -> list[str]:
    return [transfer_headline(result)]


register_view(TransferResult, order=56, section=_transfer_section, summary=_transfer_summary)
