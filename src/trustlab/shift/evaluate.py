"""The shift audit: a classifier on clean digits and on each MNIST-C corruption of the same digits.

Per set (clean, then each of MNIST-C's 15 corruptions at its fixed severity, from
:mod:`trustlab.data.mnist_c`): accuracy with its 95% Wilson interval, expected calibration error,
and, when given, how often a calibrated OOD alarm fires and how a baseline model fares, from which
the result derives the error ratios and the mean corruption error (see :mod:`trustlab.shift.results`).

One corruption is built and scored at a time (memory: one corrupted copy of the digits), every
forward pass in batches of the classifier's ``batch_size``. A post-hoc alarm that reads the audited
classifier shares its forward pass (:class:`~trustlab.ood.guard.GuardedClassifier`).

Intervals: a set's accuracy is a proportion, so it gets the Wilson interval (closed form, exact
enough near 0 and 1, no randomness). The combined figures (mean corrupted accuracy, accuracy drop,
mCE, relative mCE) depend on all sets at once and on the same digits in each, so they get a paired
percentile bootstrap over the digits: a resample draws digits, and each drawn digit brings its clean
and corrupted versions and the baseline's answers on them.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from trustlab.core.exceptions import InputError
from trustlab.core.progress import progress
from trustlab.core.stats import percentile_interval, wilson_interval
from trustlab.core.validate import positive_int
from trustlab.data.mnist_c import DEFAULT_SEVERITY, ERR_UNKNOWN, NAMES, mnist_c_set
from trustlab.models.classifier import Classifier
from trustlab.shift.results import CLEAN, ShiftResult, ShiftRow

ECE_BINS = 15
DEFAULT_BASELINE = "mnist_cnn"
DEFAULT_RESAMPLES = 1000
DIGIT_SHAPE = (1, 28, 28)
ERR_NOT_DIGITS = (
    "the shift audit corrupts 1 x 28 x 28 greyscale digits in [0, 1] (MNIST-C); this model takes inputs of "
    "shape {shape} with {bounds}"
)
BOOTSTRAP_CELLS = 4_000_000  # resample x digit counts held at once


def check_shiftable(classifier: Classifier) -> None:
    """A one-line InputError unless ``classifier`` takes 1 x 28 x 28 images in [0, 1] (what MNIST-C
    corrupts). Cheap: commands and the audit plan call it before any work."""
    shape, bounds = tuple(classifier.input_shape), classifier.bounds
    if shape != DIGIT_SHAPE or bounds is None or tuple(bounds) != (0.0, 1.0):
        described = "no pixel bounds (tabular features)" if bounds is None else f"bounds {tuple(bounds)}"
        raise InputError(ERR_NOT_DIGITS.format(shape=shape, bounds=described))


def check_corruptions(corruptions: Sequence[str] | None) -> tuple[str, ...]:
    """The corruptions asked for, in MNIST-C's order (default: all 15); a one-line error for an unknown one."""
    if corruptions is None:
        return NAMES
    if isinstance(corruptions, str):
        corruptions = [corruptions]
    for name in corruptions:
        if name not in NAMES:
            raise InputError(ERR_UNKNOWN.format(name=name, known=", ".join(NAMES)))
    if not corruptions:
        raise InputError("corruptions must name at least one MNIST-C corruption (None: all 15)")
    return tuple(name for name in NAMES if name in set(corruptions))


def expected_calibration_error(probabilities: torch.Tensor, labels: torch.Tensor, *, bins: int = ECE_BINS) -> float:
    """Expected calibration error (Guo et al. 2017): confidence = the largest class probability,
    split into ``bins`` equal-width bins ``(k/B, (k+1)/B]``; the mean over inputs of
    ``|accuracy - mean confidence|`` of their bin, i.e. ``sum_b |correct_b - confidence_b| / n``.
    0 for an empty set."""
    n = probabilities.shape[0]
    if n == 0:
        return 0.0
    confidence, predicted = probabilities.double().max(dim=1)
    correct = (predicted == labels.to(predicted.device)).double()
    which = (torch.ceil(confidence * bins).long() - 1).clamp(0, bins - 1)
    gap = torch.bincount(which, weights=confidence, minlength=bins) - torch.bincount(
        which, weights=correct, minlength=bins
    )
    return float(gap.abs().sum() / n)


def check_alarm_detector(detector: str) -> str:
    """``detector`` if it is a post-hoc detector that needs no fitting (msp, energy, maxlogit), else a
    one-line error."""
    from trustlab.ood.checks import LOGIT_DETECTORS

    if detector not in LOGIT_DETECTORS:
        raise InputError(
            "the shift audit's alarm must be a post-hoc detector that needs no fitting "
            f"({', '.join(LOGIT_DETECTORS)}), got {detector!r}"
        )
    return detector


def calibrated_alarm(classifier: Classifier, calibration_inputs: Any, *, detector: str = "msp", alpha: float = 0.05):
    """An OOD alarm for the shift audit: post-hoc ``detector`` (one that needs no fitting: msp,
    energy, maxlogit) reading ``classifier``, thresholded at false-alarm rate ``alpha`` by conformal
    calibration on held-out clean inputs (never the audited ones). A
    :class:`~trustlab.ood.guard.GuardedClassifier`."""
    from trustlab.ood.base import make_detector
    from trustlab.ood.guard import GuardedClassifier

    check_alarm_detector(detector)
    x = calibration_inputs.x if hasattr(calibration_inputs, "x") else calibration_inputs
    fitted = make_detector(detector, classifier, batch_size=classifier.batch_size).fit(x)
    return GuardedClassifier.calibrate(classifier, fitted, x, alpha=alpha)


def _baseline(
    baseline: Classifier | str | None, name: str | None, classifier: Classifier
) -> tuple[Classifier | None, str]:
    if baseline is None:
        return None, ""
    if isinstance(baseline, str):
        from trustlab.models.reference import open_classifier

        baseline, source = open_classifier(baseline, input_shape=DIGIT_SHAPE, batch_size=classifier.batch_size)
        name = name or source
    if not isinstance(baseline, Classifier):
        raise InputError(f"baseline must be a trustlab Classifier, a model name or file, or None; got {baseline!r}")
    check_shiftable(baseline)
    if baseline.num_classes != classifier.num_classes:
        raise InputError(
            f"the baseline model has {baseline.num_classes} classes and the audited model {classifier.num_classes}; "
            "mCE compares models of the same classes"
        )
    return baseline, name or "the baseline model"


def _same_model(a: Classifier, b: Classifier) -> bool:
    if a is b:
        return True
    return a.num_parameters > 0 and a.describe() == b.describe() and a.weights_sha256() == b.weights_sha256()


def _mean_ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """Per resample (row), the mean of ``num / den`` over the columns where ``den > 0``; NaN where none is."""
    defined = den > 0
    ratios = np.where(defined, num / np.where(defined, den, 1.0), 0.0)
    count = defined.sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(count > 0, ratios.sum(axis=1) / count, np.nan)


def shift_bootstrap(
    model_wrong: np.ndarray, baseline_wrong: np.ndarray | None, *, resamples: int, seed: int
) -> dict[str, tuple[float, float] | None]:
    """Paired percentile bootstrap intervals (95%) of the combined figures, from (sets, digits)
    boolean matrices of misclassifications (row 0: clean). A resample draws digits with replacement;
    its counts per digit weight every set's errors at once (one matrix product per chunk). Each
    resample's mCE averages over the corruptions its baseline errs on, its relative mCE over those
    that raise the baseline's error (as :class:`~trustlab.shift.results.ShiftResult` does)."""
    sets, n = model_wrong.shape
    rng = np.random.default_rng(seed)
    stacked = model_wrong if baseline_wrong is None else np.concatenate([model_wrong, baseline_wrong])
    stacked = stacked.T.astype(np.float64)  # (digits, sets [+ sets])
    figures: dict[str, list[np.ndarray]] = {"drop": [], "mean": [], "mce": [], "relative_mce": []}
    chunk = max(1, BOOTSTRAP_CELLS // max(1, n))
    for start in range(0, resamples, chunk):
        size = min(chunk, resamples - start)
        drawn = rng.integers(0, n, size=(size, n)) + n * np.arange(size)[:, None]
        counts = np.bincount(drawn.ravel(), minlength=size * n).reshape(size, n).astype(np.float64)
        errors = counts @ stacked / n  # (size, sets [+ sets])
        accuracy = 1.0 - errors[:, :sets]
        mean = accuracy[:, 1:].mean(axis=1)
        figures["mean"].append(mean)
        figures["drop"].append(100.0 * (accuracy[:, 0] - mean))
        if baseline_wrong is not None:
            model, base = errors[:, :sets], errors[:, sets:]
            figures["mce"].append(_mean_ratio(model[:, 1:], base[:, 1:]))
            figures["relative_mce"].append(_mean_ratio(model[:, 1:] - model[:, :1], base[:, 1:] - base[:, :1]))
    return {key: _interval(np.concatenate(values)) if values else None for key, values in figures.items()}


def _interval(draws: np.ndarray) -> tuple[float, float]:
    """The 95% percentile interval of the resampled figures as two floats (NaN resamples, 0 / 0, left out)."""
    low, high = percentile_interval(draws)
    return (float(low), float(high))


def _set_outputs(classifier: Classifier, alarm: Any, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Class probabilities (and alarm flags) of one set: one forward pass per batch."""
    if alarm is None:
        return classifier.proba(x), None
    answer = alarm.predict(x)
    return answer.probabilities, answer.alarms


def _row(
    name: str,
    images: torch.Tensor,
    probabilities: torch.Tensor,
    y: torch.Tensor,
    wrong: torch.Tensor,
    alarms: torch.Tensor | None,
    base_wrong: torch.Tensor | None,
    example: int,
) -> ShiftRow:
    correct = int((~wrong).sum())
    low, high = wilson_interval(correct, len(wrong))
    alarms = None if alarms is None else alarms.cpu().bool()
    grey = torch.round(images[example, 0].detach().cpu().float() * 255).clamp(0, 255).to(torch.int64)
    return ShiftRow(
        corruption=name,
        severity=None if name == CLEAN else DEFAULT_SEVERITY[name],
        examples=len(wrong),
        correct=correct,
        accuracy_low=low,
        accuracy_high=high,
        ece=expected_calibration_error(probabilities, y),
        mean_confidence=float(probabilities.max(dim=1).values.double().mean()),
        alarms=None if alarms is None else int(alarms.sum()),
        alarms_on_errors=None if alarms is None else int((alarms & wrong).sum()),
        baseline_correct=None if base_wrong is None else int((~base_wrong).sum()),
        example=tuple(grey.flatten().tolist()),
        example_prediction=int(probabilities[example].argmax()),
    )


def shift_audit(
    classifier: Classifier,
    x: Any,
    y: Any,
    *,
    corruptions: Sequence[str] | None = None,
    seed: int = 0,
    baseline: Classifier | str | None = DEFAULT_BASELINE,
    baseline_name: str | None = None,
    alarm: Any = None,
    resamples: int = DEFAULT_RESAMPLES,
    dataset: str = "",
    cache: bool = True,
    cache_dir: Any = None,
    show_progress: bool = True,
) -> ShiftResult:
    """Audit ``classifier`` on digits ``x`` (N, 1, 28, 28) in [0, 1] with labels ``y`` and on their
    MNIST-C corruptions (``corruptions``: names, default all 15; built with ``seed``, cached as
    :func:`~trustlab.data.mnist_c.mnist_c_set` does unless ``cache=False``).

    ``baseline``: the model the corruption errors are measured against (ImageNet-C's AlexNet role): a
    Classifier, a shipped reference model's name or a model file (default: the reference
    ``mnist_cnn``), or None for no baseline (no mCE). ``baseline_name`` names it in the report.
    ``alarm``: None, or a :class:`~trustlab.ood.guard.GuardedClassifier` around ``classifier`` (a
    fitted detector and a conformal threshold, e.g. from :func:`calibrated_alarm` on held-out clean
    inputs): the result says how often it fires on each set. ``resamples``: bootstrap resamples of
    the combined figures' intervals.
    """
    start_time = time.perf_counter()
    check_shiftable(classifier)
    x = classifier.validate(x, name="digits")
    y = classifier.validate_labels(y, x.shape[0])
    if x.shape[0] == 0:
        raise InputError("the shift audit needs at least one digit, got none")
    names = check_corruptions(corruptions)
    resamples = positive_int(resamples, "resamples")
    if alarm is not None and getattr(alarm, "classifier", None) is not classifier:
        raise InputError("alarm must be a GuardedClassifier around the audited classifier (or None)")
    baseline_model, baseline_label = _baseline(baseline, baseline_name, classifier)
    is_model = baseline_model is not None and _same_model(classifier, baseline_model)
    notes = []
    if is_model:
        notes.append("the audited model is its own baseline, so every corruption error (CE) is 1 by definition")

    y_cpu = y.cpu()
    model_wrong, baseline_wrong, rows = [], [], []
    example = 0  # the gallery's digit: the first the model reads correctly when clean
    for name in progress((CLEAN, *names), desc="MNIST-C shift", enabled=show_progress, unit="set"):
        if name == CLEAN:
            images = x
        else:
            corrupted = mnist_c_set(
                x.cpu(), y_cpu, seed=seed, corruptions=[name], cache=cache, cache_dir=cache_dir,
                batch_size=classifier.batch_size, show_progress=False,
            )  # fmt: skip
            images = corrupted.images[name].to(x.device)
        probabilities, alarms = _set_outputs(classifier, alarm, images)
        probabilities = probabilities.cpu()
        predicted = probabilities.argmax(dim=1)
        wrong = predicted != y_cpu
        if name == CLEAN and (~wrong).any():
            example = int((~wrong).nonzero()[0])
        base_wrong = None
        if baseline_model is not None:
            base_wrong = wrong if is_model else baseline_model.predict(images).cpu() != y_cpu
            baseline_wrong.append(base_wrong.numpy())
        model_wrong.append(wrong.numpy())
        rows.append(_row(name, images, probabilities, y_cpu, wrong, alarms, base_wrong, example))

    intervals = shift_bootstrap(
        np.stack(model_wrong), np.stack(baseline_wrong) if baseline_wrong else None, resamples=resamples, seed=seed
    )
    threshold = getattr(alarm, "threshold", None)
    return ShiftResult(
        dataset=dataset,
        seed=seed,
        rows=tuple(rows),
        class_names=tuple(classifier.class_names),
        example_label=int(y_cpu[example]),
        baseline=baseline_label,
        baseline_is_model=is_model,
        alarm="" if alarm is None else alarm.detector.name,
        alpha=None if threshold is None else float(threshold.alpha),
        calibration_examples=0 if threshold is None else int(threshold.n),
        ece_bins=ECE_BINS,
        resamples=resamples,
        drop_interval=intervals["drop"],
        mean_accuracy_interval=intervals["mean"],
        mce_interval=intervals["mce"],
        relative_mce_interval=intervals["relative_mce"],
        seconds=time.perf_counter() - start_time,
        notes=tuple(notes),
    )
