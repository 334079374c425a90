"""The shift audit's typed, frozen result: one row per set (clean, then each MNIST-C corruption) holding
what was counted, and every derived figure (error ratios, mCE, the scorecard's accuracy drop)
computed here, once, from those counts.

Definitions (``err`` = share of examples misclassified, ``b_err`` = the same for the baseline model):

* relative error of corruption c: ``err(c) / err(clean)`` (how many times the clean error);
* corruption error (Hendrycks & Dietterich 2019, ImageNet-C): ``CE(c) = err(c) / b_err(c)``, and the
  mean corruption error ``mCE`` = the mean of ``CE(c)`` over the corruptions. ImageNet-C sums errors
  over five severities before dividing; MNIST-C has one severity per corruption, so the sums are
  single terms;
* relative CE: ``(err(c) - err(clean)) / (b_err(c) - b_err(clean))``, and relative mCE its mean: the
  degradation the corruption causes, against the baseline's. It is unstable when the baseline barely
  notices a corruption (a denominator near 0).

A ratio whose denominator is 0 is ``inf`` (or NaN when the numerator is 0 too), shown as such in the
table. The means leave out the corruptions where their ratio is not defined by the baseline: mCE those
the baseline makes no error on (possible on small samples), relative mCE those that do not raise the
baseline's error; the report names them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from trustlab.core.results import Record, Result

CLEAN = "clean"


def ratio(numerator: float, denominator: float) -> float:
    """``numerator / denominator``; inf (signed) for a zero denominator, NaN for 0 / 0."""
    if denominator == 0:
        return math.nan if numerator == 0 else math.copysign(math.inf, numerator)
    return numerator / denominator


@dataclass(frozen=True)
class ShiftRow(Record):
    """One set of the shift audit: the clean digits or one corruption of them, and what the model
    (and the baseline, the alarm) did on it. ``accuracy_low``/``accuracy_high``: the 95% Wilson
    interval. ``example``: one digit of the set (the same digit in every row) as 784 grey levels
    0-255, row by row, with the model's prediction on it."""

    kind = "shift.row"
    corruption: str  # "clean" or an MNIST-C corruption
    severity: int | None  # MNIST-C's severity; None where the corruption has none (and for clean)
    examples: int
    correct: int
    accuracy_low: float
    accuracy_high: float
    ece: float  # expected calibration error, 15 equal-width bins of max-probability confidence
    mean_confidence: float
    alarms: int | None  # inputs the OOD alarm fired on (None: no alarm)
    alarms_on_errors: int | None  # ... among the misclassified ones
    baseline_correct: int | None  # None: no baseline
    example: tuple[int, ...]
    example_prediction: int

    @property
    def accuracy(self) -> float:
        """Share of the set classified correctly."""
        return self.correct / self.examples if self.examples else math.nan

    @property
    def error(self) -> float:
        """Share of the set misclassified."""
        return (self.examples - self.correct) / self.examples if self.examples else math.nan

    @property
    def interval(self) -> tuple[float, float]:
        """The accuracy's 95% Wilson interval."""
        return (self.accuracy_low, self.accuracy_high)

    @property
    def baseline_error(self) -> float | None:
        """The baseline's share misclassified (None without a baseline)."""
        if self.baseline_correct is None or not self.examples:
            return None
        return (self.examples - self.baseline_correct) / self.examples

    @property
    def alarm_rate(self) -> float | None:
        """Share of the set the alarm fired on (None without an alarm)."""
        return None if self.alarms is None or not self.examples else self.alarms / self.examples


@dataclass(frozen=True)
class ShiftResult(Result):
    """Accuracy, calibration and the alarm's behaviour of one model on clean digits and on each
    MNIST-C corruption of them (same digits, same order), against a baseline model.

    ``rows[0]`` is the clean set. The intervals of the combined figures (accuracy drop, mean
    corrupted accuracy, mCE, relative mCE) are percentile intervals of a paired bootstrap over the
    digits (``resamples`` resamples: one digit's clean and corrupted versions are drawn together).
    """

    kind = "shift"
    dataset: str
    seed: int
    rows: tuple[ShiftRow, ...]
    class_names: tuple[str, ...]
    example_label: int  # true label of the gallery digit
    baseline: str  # what the baseline model is ("" for none)
    baseline_is_model: bool  # the model audited is its own baseline (every CE is 1)
    alarm: str  # the alarm's detector ("" for none)
    alpha: float | None  # the alarm's target false-alarm rate
    calibration_examples: int  # held-out clean digits its conformal threshold was fitted on
    ece_bins: int
    resamples: int
    drop_interval: tuple[float, float]  # accuracy drop, in percentage points
    mean_accuracy_interval: tuple[float, float]
    mce_interval: tuple[float, float] | None
    relative_mce_interval: tuple[float, float] | None
    seconds: float
    notes: tuple[str, ...] = ()

    # ----------------------------------------------------------------- the sets -------------------
    @property
    def clean(self) -> ShiftRow:
        """The clean digits' row."""
        return self.rows[0]

    @property
    def corrupted(self) -> tuple[ShiftRow, ...]:
        """The corruptions' rows, in MNIST-C's order."""
        return self.rows[1:]

    @property
    def examples(self) -> int:
        """Digits per set."""
        return self.clean.examples

    @property
    def has_baseline(self) -> bool:
        return self.clean.baseline_correct is not None

    @property
    def has_alarm(self) -> bool:
        return self.clean.alarms is not None

    def row(self, corruption: str) -> ShiftRow:
        """The row of ``corruption`` (or "clean")."""
        for row in self.rows:
            if row.corruption == corruption:
                return row
        raise KeyError(corruption)

    # ----------------------------------------------------------------- per corruption ------------
    def relative_error(self, row: ShiftRow) -> float:
        """``err(c) / err(clean)``: how many times the clean error."""
        return ratio(row.error, self.clean.error)

    def corruption_error(self, row: ShiftRow) -> float | None:
        """``CE(c) = err(c) / b_err(c)`` (None without a baseline)."""
        if not self.has_baseline:
            return None
        return ratio(row.error, row.baseline_error)

    def relative_corruption_error(self, row: ShiftRow) -> float | None:
        """``(err(c) - err(clean)) / (b_err(c) - b_err(clean))`` (None without a baseline)."""
        if not self.has_baseline:
            return None
        return ratio(row.error - self.clean.error, row.baseline_error - self.clean.baseline_error)

    # ----------------------------------------------------------------- headline figures ----------
    @property
    def mean_accuracy(self) -> float:
        """Mean accuracy over the corruptions (each corruption weighs the same)."""
        return sum(r.accuracy for r in self.corrupted) / len(self.corrupted) if self.corrupted else math.nan

    @property
    def accuracy_drop(self) -> float:
        """Clean accuracy minus the mean corrupted accuracy, in percentage points: the scorecard's figure."""
        return 100.0 * (self.clean.accuracy - self.mean_accuracy)

    @property
    def worst(self) -> ShiftRow | None:
        """The corruption the model is least accurate on (the first of ties, in MNIST-C's order)."""
        return min(self.corrupted, key=lambda r: r.accuracy) if self.corrupted else None

    @property
    def mce_rows(self) -> tuple[ShiftRow, ...]:
        """The corruptions the mCE averages over: those the baseline misreads at least one digit of
        (elsewhere CE is 0 / 0 or infinite, a single error away from another value)."""
        if not self.has_baseline:
            return ()
        return tuple(r for r in self.corrupted if r.baseline_error > 0)

    @property
    def relative_mce_rows(self) -> tuple[ShiftRow, ...]:
        """The corruptions the relative mCE averages over: those that raise the baseline's error."""
        if not self.has_baseline:
            return ()
        return tuple(r for r in self.corrupted if r.baseline_error > self.clean.baseline_error)

    @property
    def mce_left_out(self) -> tuple[str, ...]:
        """Corruptions the mCE leaves out (the baseline makes no error on them)."""
        kept = {r.corruption for r in self.mce_rows}
        return tuple(r.corruption for r in self.corrupted if r.corruption not in kept) if self.has_baseline else ()

    @property
    def relative_mce_left_out(self) -> tuple[str, ...]:
        """Corruptions the relative mCE leaves out (they do not raise the baseline's error)."""
        kept = {r.corruption for r in self.relative_mce_rows}
        return tuple(r.corruption for r in self.corrupted if r.corruption not in kept) if self.has_baseline else ()

    @property
    def mce(self) -> float | None:
        """Mean corruption error against the baseline over :attr:`mce_rows` (1 = the baseline's
        errors; None without a baseline, NaN when no corruption qualifies)."""
        if not self.has_baseline:
            return None
        rows = self.mce_rows
        return sum(self.corruption_error(r) for r in rows) / len(rows) if rows else math.nan

    @property
    def relative_mce(self) -> float | None:
        """Mean relative corruption error over :attr:`relative_mce_rows` (None without a baseline,
        NaN when no corruption qualifies)."""
        if not self.has_baseline:
            return None
        rows = self.relative_mce_rows
        return sum(self.relative_corruption_error(r) for r in rows) / len(rows) if rows else math.nan

    @property
    def mean_ece(self) -> float:
        """Mean expected calibration error over the corruptions."""
        return sum(r.ece for r in self.corrupted) / len(self.corrupted) if self.corrupted else math.nan

    @property
    def mean_alarm_rate(self) -> float | None:
        """Share of corrupted digits the alarm fired on, averaged over the corruptions (None: no alarm)."""
        if not self.has_alarm or not self.corrupted:
            return None
        return sum(r.alarm_rate for r in self.corrupted) / len(self.corrupted)

    @property
    def errors_caught(self) -> float | None:
        """Share of the misclassified corrupted digits (all corruptions pooled) the alarm fired on."""
        if not self.has_alarm:
            return None
        wrong = sum(r.examples - r.correct for r in self.corrupted)
        return sum(r.alarms_on_errors for r in self.corrupted) / wrong if wrong else None

    @property
    def most_alarmed(self) -> ShiftRow | None:
        """The corruption the alarm fires on most often (None without an alarm)."""
        if not self.has_alarm or not self.corrupted:
            return None
        return max(self.corrupted, key=lambda r: r.alarms)
