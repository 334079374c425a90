"""The shift check written into a run directory: the data split into held-out clean digits that
calibrate the OOD alarm and the digits audited under MNIST-C's corruptions."""

from __future__ import annotations

import math
from typing import Any

from trustlab.core.exceptions import InputError
from trustlab.core.validate import positive_int
from trustlab.models.classifier import Classifier
from trustlab.shift.evaluate import (
    DEFAULT_BASELINE,
    DEFAULT_RESAMPLES,
    calibrated_alarm,
    check_alarm_detector,
    check_shiftable,
    shift_audit,
)
from trustlab.shift.results import ShiftResult

DEFAULT_ALARM = "msp"
DEFAULT_ALPHA = 0.05
CALIBRATION_SHARE = 0.2  # of the data, held out to calibrate the alarm ...
MAX_CALIBRATION = 1000  # ... at most this many digits (the threshold's quantile is then within ~1.5 points)


def alarm_split(data: Any, *, alarm: str | None, alpha: float, seed: int = 0) -> tuple[Any, Any, str | None]:
    """(digits to audit, held-out clean digits to calibrate the alarm on or None, why there is no
    alarm or None). The calibration digits are a seeded random fifth of ``data`` (at most 1,000),
    never audited: their scores would make the realised false-alarm rate look better than it is."""
    if alarm is None:
        return data, None, None
    from trustlab.ood.calibration import split_holdout

    needed = math.ceil(1.0 / alpha) - 1
    count = min(MAX_CALIBRATION, int(len(data) * CALIBRATION_SHARE))
    if count < needed or len(data) - count < 1:
        why = (
            f"no OOD alarm: calibrating one at alpha = {alpha:g} needs {needed} held-out clean digits "
            f"(a fifth of the data), and the data has {len(data):,}"
        )
        return data, None, why
    calibration, rest = split_holdout(len(data), fraction=count / len(data), seed=seed)
    return data.subset(rest), data.subset(calibration), None


def run_shift(
    run: Any,
    classifier: Classifier,
    data: Any,
    *,
    examples: int | None = None,
    corruptions: Any = None,
    baseline: Classifier | str | None = DEFAULT_BASELINE,
    baseline_name: str | None = None,
    alarm: str | None = DEFAULT_ALARM,
    alpha: float = DEFAULT_ALPHA,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
    show_progress: bool = True,
) -> ShiftResult:
    """The shift audit of ``classifier`` on ``examples`` digits of ``data`` (a seeded sample; None:
    all but the alarm's calibration digits) into ``run``. ``alarm``: a post-hoc detector name
    (msp, energy, maxlogit) thresholded at ``alpha`` on held-out clean digits of ``data``, or None.
    ``baseline``: see :func:`~trustlab.shift.evaluate.shift_audit`."""
    check_shiftable(classifier)
    examples = None if examples is None else positive_int(examples, "examples")
    if alarm is not None:
        check_alarm_detector(alarm)
        if not 0.0 < alpha < 1.0:
            raise InputError(f"alpha must lie in (0, 1), got {alpha}")
    run.describe_data(data)
    audited, calibration, why = alarm_split(data, alarm=alarm, alpha=alpha, seed=seed)
    audited = audited.sample(examples, seed=seed)
    key = f"shift-{data.name}-{data.split}"
    with run.timed(key):
        guard = None if calibration is None else calibrated_alarm(classifier, calibration, detector=alarm, alpha=alpha)
        result = shift_audit(
            classifier, audited.x, audited.y, corruptions=corruptions, seed=seed, baseline=baseline,
            baseline_name=baseline_name, alarm=guard, resamples=resamples, dataset=f"{data.name}/{data.split}",
            show_progress=show_progress,
        )  # fmt: skip
    if why:
        from dataclasses import replace

        result = replace(result, notes=(*result.notes, why))
    return run.add(key, result)
